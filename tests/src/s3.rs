//! A real S3-compatible server on loopback for the relay's S3 tests: moto's
//! standalone server (`moto_server`, PyPI `moto[server]`, installed by
//! `scripts/install.sh` into `~/.cache/hydrogen/s3`). It speaks the S3 HTTP
//! API (PutObject, GetObject with ranges, ListObjectsV2, DeleteObject...)
//! with any credentials.

use hydrogen_relay::StorageConfig;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `moto_server`, stopped when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `moto_server` from `$HYDROGEN_CACHE_DIR/s3` (install.sh), else on PATH.
fn binary() -> Option<PathBuf> {
    let cache = std::env::var_os("HYDROGEN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hydrogen")))?;
    let installed = cache.join("s3/bin/moto_server");
    if installed.exists() {
        return Some(installed);
    }
    let on_path = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    on_path.then(|| PathBuf::from("moto_server"))
}

impl S3Server {
    /// Starts a server, or `None` (the caller skips) when `moto_server` is
    /// not installed and chain tests may skip; with `HYDROGEN_REQUIRE_CHAIN=1`
    /// (CI) a missing server is a failure.
    pub async fn start() -> Option<S3Server> {
        let Some(binary) = binary() else {
            assert!(
                !crate::chain_required(),
                "moto_server is not installed: run scripts/install.sh"
            );
            eprintln!("skipped: no moto_server (scripts/install.sh installs it)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(&server.endpoint).send().await.is_ok() {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer on {}", server.endpoint);
    }

    /// Creates `bucket` and returns the relay's storage configuration for it.
    pub async fn bucket(&self, bucket: &str) -> StorageConfig {
        let created = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("CreateBucket");
        assert!(
            created.status().is_success(),
            "CreateBucket: {}",
            created.status()
        );
        StorageConfig::S3 {
            url: format!("s3://{bucket}"),
            region: Some("us-east-1".into()),
            endpoint: Some(self.endpoint.clone()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: true,
        }
    }
}
