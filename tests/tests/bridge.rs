//! The HTTP bridge end to end: a local network (dev chain, contract, relay,
//! three `hydrogen-node` daemons on the trained shapes model) and the bridge
//! as a library on loopback, paying from an app account. A task created
//! over HTTP is followed through its Server-Sent Events to completion, read
//! back with its image, and an OpenAI-style request returns its image.

use base64::Engine as _;
use hydrogen_bridge::store::TaskRow;
mod support;

use hydrogen_bridge::{start, Config, Store, TaskState};
use hydrogen_sdk::chain::ss58;
use hydrogen_sdk::types::UNIT;
use hydrogen_tests::localnet::{self, LocalNet, Options};
use hydrogen_tests::{bundle_path, shared_node};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::bridge::{get_json, start_bridge};

const FEE: u128 = 25 * UNIT;

/// Reads an SSE body until a terminal event; returns the events' names and data.
async fn events(mut response: reqwest::Response, within: Duration) -> Vec<(String, Value)> {
    let until = Instant::now() + within;
    let mut text = String::new();
    let mut out = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no terminal event within {within:?}; got {out:?}"))
            .expect("the event stream");
        let Some(chunk) = chunk else {
            return out;
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut name, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if name.is_empty() {
                continue; // a keep-alive comment
            }
            let value: Value = serde_json::from_str(&data).expect("JSON event data");
            let terminal = ["completed", "aborted", "cancelled", "failed"].contains(&name.as_str());
            out.push((name, value));
            if terminal {
                return out;
            }
        }
    }
}

/// Task `id`'s row, read from the database of a stopped bridge.
async fn store_row(config: &Config, id: &str) -> TaskRow {
    let store = Store::open(&config.database_url).await.unwrap();
    let row = store.task(id).await.unwrap().expect("the task's row");
    store.close().await;
    row
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_created_over_http_completes_and_its_image_is_served() {
    let Some(url) = shared_node().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = Options::new("bridge/http", dir.path(), 3);
    let net = LocalNet::start(&url, &bundle_path(), options)
        .await
        .unwrap_or_else(|e| panic!("local network: {e}"));

    let (bridge, config, key) = start_bridge(&net, dir.path(), "e2e").await;
    let http = reqwest::Client::new();

    let network: Value = get_json(&http, &format!("{}/v1/network", bridge.url()), &key).await;
    assert_eq!(
        network["account"],
        ss58(&hydrogen_sdk::chain::account_of(&net.apps[0]))
    );
    let balance_before: u128 = network["balance"].as_str().unwrap().parse().unwrap();

    // The reference task JSON, as any app would send it.
    let args = localnet::shapes_task(7, 4);
    let response = http
        .post(format!("{}/v1/tasks?fee={FEE}", bridge.url()))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(args.to_canonical_json())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["fee"], FEE.to_string());
    assert!(created["task_id"].as_u64().is_some(), "{created}");

    let stream = http
        .get(format!("{}/v1/tasks/{id}/events", bridge.url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let seen = events(stream, Duration::from_secs(300)).await;
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"queued"), "{names:?}\n{}", net.logs());
    assert_eq!(
        names.last(),
        Some(&"completed"),
        "{names:?}\n{}",
        net.logs()
    );
    assert_eq!(
        names.iter().filter(|n| **n == "node_selected").count(),
        3,
        "{names:?}"
    );
    let order = [
        "queued",
        "node_selected",
        "succeeded",
        "uploaded",
        "completed",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|o| {
            names
                .iter()
                .position(|n| n == o)
                .unwrap_or_else(|| panic!("{o} in {names:?}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{names:?}");

    let task: Value = get_json(&http, &format!("{}/v1/tasks/{id}", bridge.url()), &key).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["nodes"].as_array().unwrap().len(), 3, "{task}");
    assert_eq!(task["result"].as_array().unwrap().len(), 1, "{task}");
    let image_url = task["images"][0].as_str().expect("an image URL").to_owned();
    let png = http.get(&image_url).send().await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    let png = png.bytes().await.unwrap();
    let img = image::load_from_memory(&png).expect("a PNG");
    assert_eq!((img.width(), img.height()), (64, 64));
    let phash = hydrogen_sdk::phash::phash_dynamic(&img);
    assert_eq!(hex::encode(phash), task["result"][0].as_str().unwrap());

    // A bridge stopped right after creating a task resumes it at start.
    let response = http
        .post(format!("{}/v1/tasks?fee={FEE}", bridge.url()))
        .bearer_auth(&key)
        .body(localnet::shapes_task(9, 4).to_canonical_json())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let resumed: Value = response.json().await.unwrap();
    let resumed = resumed["id"].as_str().unwrap().to_owned();
    bridge.shutdown().await;
    let row = store_row(&config, &resumed).await;
    assert!(
        matches!(row.state, TaskState::Created | TaskState::Uploaded),
        "{row:?}"
    );
    let bridge = start(config.clone(), net.apps[0].clone())
        .await
        .expect("bridge again");
    let task = final_view(
        &bridge.url(),
        &key,
        &resumed,
        Duration::from_secs(300),
        || net.logs(),
    )
    .await;
    assert_eq!(task["status"], "completed", "{task}\n{}", net.logs());
    assert_eq!(task["images"].as_array().unwrap().len(), 1, "{task}");

    // OpenAI's images API, answered with the PNG inline.
    let response = http
        .post(format!("{}/v1/images/generations", bridge.url()))
        .bearer_auth(&key)
        .json(&json!({
            "prompt": localnet::SHAPES_PROMPT,
            "model": "dall-e-2",
            "n": 1,
            "size": "64x64",
            "response_format": "b64_json",
            "steps": 4,
            "seed": 8,
            "fee": FEE.to_string()
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answer}\n{}", net.logs());
    let b64 = answer["data"][0]["b64_json"].as_str().expect("b64_json");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let img = image::load_from_memory(&png).expect("a PNG");
    assert_eq!((img.width(), img.height()), (64, 64));

    let key_record = bridge.store().keys().await.unwrap();
    assert_eq!(key_record[0].used_tasks, 3);
    assert_eq!(key_record[0].used_tokens, 3 * FEE);
    let balance_after: u128 = get_json(&http, &format!("{}/v1/network", bridge.url()), &key).await
        ["balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        balance_after,
        balance_before - 3 * FEE,
        "paid each fee once"
    );

    bridge.shutdown().await;
    net.shutdown().await;
}

/// A free loopback address for a process of its own.
fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap()
}

/// Polls task `id` until it leaves `submitting`, `created` and `uploaded`.
async fn final_view(
    base: &str,
    key: &str,
    id: &str,
    within: Duration,
    logs: impl Fn() -> String,
) -> Value {
    let http = reqwest::Client::new();
    let until = Instant::now() + within;
    loop {
        let task: Value = get_json(&http, &format!("{base}/v1/tasks/{id}"), key).await;
        if !["submitting", "created", "uploaded"].contains(&task["status"].as_str().unwrap_or("")) {
            return task;
        }
        assert!(Instant::now() < until, "{task}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The bridge as a process of its own, killed with SIGKILL (no shutdown of
/// any kind) at the moments that matter, then started again on its data
/// directory: after `create_task` was recorded; between `create_task` and
/// its record (the call reached the chain, the row still says
/// `submitting`); before `create_task` was sent. Every paid task completes,
/// each fee is paid once, the unsent one fails with its quota given back,
/// and another API key sees none of the tasks. On SQLite, the default.
#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_killed_at_any_moment_loses_no_task_and_pays_for_none_twice() {
    killed_at_any_moment("bridge/kill", None).await;
}

/// The same on a real PostgreSQL server, as replicas would share it
/// (skipped when none is installed, unless `HYDROGEN_REQUIRE_CHAIN=1`).
#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_killed_at_any_moment_on_postgres_loses_no_task() {
    let Some(server) = support::postgres::Postgres::start().await else {
        return;
    };
    killed_at_any_moment("bridge/kill-pg", Some(server.url())).await;
}

async fn killed_at_any_moment(name: &str, database: Option<String>) {
    use hydrogen_tests::bridge_process::BridgeProcess;
    let Some(url) = shared_node().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = Options::new(name, dir.path(), 3);
    let net = LocalNet::start(&url, &bundle_path(), options)
        .await
        .unwrap_or_else(|e| panic!("local network: {e}"));
    let data = dir.path().join("bridge");
    let mut bridge = BridgeProcess::start(
        &net,
        &data,
        free_addr(),
        localnet::SHAPES_MODEL,
        database.as_deref(),
        &[],
    )
    .await
    .unwrap_or_else(|e| panic!("bridge: {e}"));
    let (base, key) = (bridge.url(), bridge.api_key.clone());
    let app = net.app(0).await.expect("the app's SDK client");
    let balance_before = app.balance().await.unwrap();
    let http = reqwest::Client::new();

    // 1. Killed once the task is created (and maybe uploaded).
    let response = http
        .post(format!("{base}/v1/tasks?fee={FEE}"))
        .bearer_auth(&key)
        .body(localnet::shapes_task(21, 4).to_canonical_json())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let recorded: Value = response.json().await.unwrap();
    let recorded = recorded["id"].as_str().unwrap().to_owned();
    bridge.kill().await.unwrap();

    // 2. Killed between create_task and its record, and 3. before sending
    // it: the rows as the API writes them (quota reserved, `submitting`,
    // the finalized block before the call), the call made for 2 only.
    // (Written as the bridge writes them: under its instance id.)
    let store = Store::open(&bridge.database)
        .await
        .unwrap()
        .with_owner(&bridge.instance());
    let key_id = store.keys().await.unwrap()[0].id.clone();
    let mut rows = Vec::new();
    for seed in [22, 23] {
        let args = localnet::shapes_task(seed, 4);
        store.reserve(&key_id, FEE).await.unwrap().unwrap();
        let after = app.finalized_block().await.unwrap();
        let canonical = String::from_utf8(args.to_canonical_json()).unwrap();
        let row = TaskRow::submitting(&key_id, canonical, FEE, after);
        store.insert_task(&row).await.unwrap();
        rows.push((row.id, args));
    }
    let paid = app.create(&rows[0].1, FEE).await.expect("create_task");
    let (_, other_key) = store.create_key("other", None, None).await.unwrap();
    store.close().await;

    bridge
        .restart()
        .await
        .unwrap_or_else(|e| panic!("restart: {e}"));
    let logs = || format!("{}\n{}", bridge.log(), net.logs());
    let within = Duration::from_secs(300);
    let first = final_view(&base, &key, &recorded, within, logs).await;
    assert_eq!(first["status"], "completed", "{first}\n{}", logs());
    let lost = final_view(&base, &key, &rows[0].0, within, logs).await;
    assert_eq!(lost["status"], "completed", "{lost}\n{}", logs());
    assert_eq!(lost["task_id"], paid.task_id, "{lost}");
    let unsent = final_view(&base, &key, &rows[1].0, within, logs).await;
    assert_eq!(unsent["status"], "failed", "{unsent}");
    assert!(
        unsent["error"]
            .as_str()
            .unwrap()
            .contains("nothing was paid"),
        "{unsent}"
    );
    for task in [&first, &lost] {
        let png = http
            .get(task["images"][0].as_str().expect("an image URL"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let img = image::load_from_memory(&png).expect("a PNG");
        let phash = hydrogen_sdk::phash::phash_dynamic(&img);
        assert_eq!(hex::encode(phash), task["result"][0].as_str().unwrap());
    }

    // Two fees, each paid once; the unsent task's quota came back.
    assert_eq!(app.balance().await.unwrap(), balance_before - 2 * FEE);
    let network: Value = get_json(&http, &format!("{base}/v1/network"), &key).await;
    assert_eq!(network["balance"], (balance_before - 2 * FEE).to_string());
    let nodes = &network["nodes"];
    let joined: u64 = ["available", "busy", "paused"]
        .iter()
        .map(|s| nodes[s].as_u64().unwrap())
        .sum();
    assert_eq!(joined, 3, "{network}");
    assert_eq!(network["queue_length"], 0, "{network}");
    let tiers = network["capacity"].as_array().unwrap();
    let at = |gb: u64| {
        tiers
            .iter()
            .find(|t| t["min_vram_gb"] == gb)
            .map(|t| t["available_nodes"].as_u64().unwrap())
    };
    assert_eq!(at(8), nodes["available"].as_u64(), "{network}");
    assert_eq!(at(80), Some(0), "the nodes have 24 GB: {network}");
    // The two tasks that reached the chain, one image each.
    let fees = &network["recent_fees"];
    assert_eq!(
        (fees["tasks"].as_u64(), fees["completed"].as_u64()),
        (Some(2), Some(2)),
        "{network}"
    );
    assert_eq!(fees["median"], FEE.to_string(), "{network}");
    let models: Value = get_json(&http, &format!("{base}/v1/models"), &key).await;
    assert_eq!(
        models["base_models"][0]["id"],
        localnet::SHAPES_MODEL,
        "{models}"
    );
    assert_eq!(models["base_models"][0]["tasks"], 3, "{models}");
    assert_eq!(models["base_models"][0]["completed"], 2, "{models}");
    assert_eq!(
        models["loras"].as_array().map(Vec::len),
        Some(0),
        "{models}"
    );

    // Another key cannot see, read or cancel them.
    for id in [&recorded, &rows[0].0] {
        let read = http
            .get(format!("{base}/v1/tasks/{id}"))
            .bearer_auth(&other_key)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 404);
        let cancel = http
            .post(format!("{base}/v1/tasks/{id}/cancel"))
            .bearer_auth(&other_key)
            .send()
            .await
            .unwrap();
        assert_eq!(cancel.status(), 404);
    }
    let listed: Value = get_json(&http, &format!("{base}/v1/tasks"), &other_key).await;
    assert_eq!(
        listed["tasks"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );

    // A fee beyond the account's balance: refused in words, nothing
    // recorded against the key.
    let response = http
        .post(format!("{base}/v1/tasks?fee={}", 1_000_000 * FEE))
        .bearer_auth(&key)
        .body(localnet::shapes_task(25, 4).to_canonical_json())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 402);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "insufficient_funds", "{refused}");

    // A task no node can take (it needs more VRAM than theirs) stays
    // queued; cancelling it refunds the fee less the 1% the contract burns
    // (so that queue spam costs something).
    let mut big = localnet::shapes_task(24, 4);
    for side in (1024..=4096).step_by(512) {
        big.task_config.image_width = side;
        big.task_config.image_height = side;
        if big.min_vram_gb() > localnet::NODE_VRAM_GB {
            break;
        }
    }
    assert!(big.min_vram_gb() > localnet::NODE_VRAM_GB);
    let response = http
        .post(format!("{base}/v1/tasks?fee={FEE}"))
        .bearer_auth(&key)
        .body(big.to_canonical_json())
        .send()
        .await
        .unwrap();
    let created: Value = response.json().await.unwrap();
    assert!(created["task_id"].is_u64(), "{created}\n{}", logs());
    let id = created["id"].as_str().unwrap();
    assert_eq!(app.balance().await.unwrap(), balance_before - 3 * FEE);
    let cancel = http
        .post(format!("{base}/v1/tasks/{id}/cancel"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202, "{}", cancel.text().await.unwrap());
    let cancelled = final_view(&base, &key, id, within, logs).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let burned = FEE * hydrogen_sdk::types::QUEUED_CANCEL_FEE_PERCENT / 100;
    assert_eq!(
        app.balance().await.unwrap(),
        balance_before - 2 * FEE - burned
    );

    bridge.stop().await;
    let store = Store::open(&bridge.database).await.unwrap();
    let usage = store.key(&key_id).await.unwrap().unwrap();
    // Three tasks reached the chain; the cancelled one's refund is not spent.
    assert_eq!((usage.used_tasks, usage.used_tokens), (3, 2 * FEE + burned));
    store.close().await;
    net.shutdown().await;
}

/// Two bridges sharing one PostgreSQL database as replicas: one dies
/// (SIGKILL) holding a created task and a `submitting` row whose paid
/// `create_task` it never recorded; the live one takes both over once the
/// dead one's leases (3 s here) run out, completes them, and pays nothing
/// twice. Tasks stay readable through either replica with the same key.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_replica_takes_over_the_tasks_of_one_that_died() {
    use hydrogen_tests::bridge_process::BridgeProcess;
    let Some(server) = support::postgres::Postgres::start().await else {
        return;
    };
    let Some(url) = shared_node().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = Options::new("bridge/replicas", dir.path(), 3);
    let net = LocalNet::start(&url, &bundle_path(), options)
        .await
        .unwrap_or_else(|e| panic!("local network: {e}"));
    let database = server.url();
    let flags = ["--lease-secs", "3"];
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let replica = async |data: &std::path::Path| {
        BridgeProcess::start(
            &net,
            data,
            free_addr(),
            localnet::SHAPES_MODEL,
            Some(&database),
            &flags,
        )
        .await
    };
    let mut dying = replica(&a)
        .await
        .unwrap_or_else(|e| panic!("replica a: {e}"));
    let mut live = replica(&b)
        .await
        .unwrap_or_else(|e| panic!("replica b: {e}"));
    assert_ne!(dying.instance(), live.instance());
    let key = dying.api_key.clone();
    let app = net.app(0).await.expect("the app's SDK client");
    let balance_before = app.balance().await.unwrap();
    let http = reqwest::Client::new();

    let response = http
        .post(format!("{}/v1/tasks?fee={FEE}", dying.url()))
        .bearer_auth(&key)
        .body(localnet::shapes_task(31, 4).to_canonical_json())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let created = created["id"].as_str().unwrap().to_owned();
    // A second task replica a was sending when it died: its row, under a's
    // lease, and its create_task on chain.
    let store = Store::open(&database)
        .await
        .unwrap()
        .with_owner(&dying.instance())
        .with_lease(Duration::from_secs(3));
    let key_id = store.keys().await.unwrap()[0].id.clone();
    let args = localnet::shapes_task(32, 4);
    store.reserve(&key_id, FEE).await.unwrap().unwrap();
    let after = app.finalized_block().await.unwrap();
    let row = TaskRow::submitting(
        &key_id,
        String::from_utf8(args.to_canonical_json()).unwrap(),
        FEE,
        after,
    );
    store.insert_task(&row).await.unwrap();
    let paid = app.create(&args, FEE).await.expect("create_task");
    store.close().await;
    dying.kill().await.unwrap();

    let logs = || format!("{}\n{}", live.log(), net.logs());
    let within = Duration::from_secs(300);
    for (id, task_id) in [(&created, None), (&row.id, Some(paid.task_id))] {
        let task = final_view(&live.url(), &key, id, within, logs).await;
        assert_eq!(task["status"], "completed", "{task}\n{}", logs());
        if let Some(task_id) = task_id {
            assert_eq!(task["task_id"], task_id, "{task}");
        }
        assert_eq!(task["images"].as_array().map(Vec::len), Some(1), "{task}");
    }
    assert!(
        live.log().contains("resuming task") && live.log().contains("found the create_task"),
        "the live replica took both over:\n{}",
        live.log()
    );
    assert_eq!(app.balance().await.unwrap(), balance_before - 2 * FEE);
    live.stop().await;
    net.shutdown().await;
}
