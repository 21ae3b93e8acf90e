//! What the bridge's end-to-end and browser tests share: the bridge as a
//! library on a local network, and JSON over HTTP with an API key.

use hydrogen_bridge::{start, Config, RunningBridge};
use hydrogen_sdk::chain::ss58;
use hydrogen_sdk::types::UNIT;
use hydrogen_tests::localnet::{self, LocalNet};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The bridge on `net` (SQLite in `dir`, any free loopback port, the shapes
/// model by default), paying from its first app account, with an API key
/// named `key_name` (10 tasks, 100 tokens); returns once it reached the
/// chain, with its configuration (to start it again) and the key.
pub async fn start_bridge(
    net: &LocalNet,
    dir: &Path,
    key_name: &str,
) -> (RunningBridge, Config, String) {
    let mut config = Config::new(
        &net.chain_url,
        &net.relay_url(),
        &ss58(&net.hydrogen.address()),
        &format!("sqlite://{}/bridge.db?mode=rwc", dir.display()),
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.poll = Duration::from_millis(500);
    config.default_model = localnet::SHAPES_MODEL.into();
    // Kept across the tests' restarts, as the binary keeps it.
    config.instance = Some(hydrogen_bridge::store::new_instance_id());
    let bridge = start(config.clone(), net.apps[0].clone())
        .await
        .expect("bridge");
    let (_, key) = bridge
        .store()
        .create_key(key_name, Some(10), Some(100 * UNIT))
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while !bridge.connected() {
        assert!(Instant::now() < until, "the bridge reached the chain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (bridge, config, key)
}

/// `GET url` with `key`, as JSON.
#[allow(dead_code)] // not every test file that includes this reads JSON
pub async fn get_json(http: &reqwest::Client, url: &str, key: &str) -> Value {
    http.get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
