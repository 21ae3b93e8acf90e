//! A throwaway `substrate-contracts-node --dev` for tests: spawned on free
//! ports with instant finality, restartable on the same port and chain,
//! killed and deleted when dropped.

use super::client::ChainClient;
use super::error::ChainError;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The node binary: `$HYDROGEN_NODE_BIN`, else `substrate-contracts-node` on `PATH`.
pub fn node_binary() -> PathBuf {
    std::env::var_os("HYDROGEN_NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("substrate-contracts-node"))
}

/// A running dev node. Its chain lives in a temporary directory and dies with it.
#[derive(Debug)]
pub struct DevNode {
    child: Child,
    args: Vec<String>,
    port: u16,
    url: String,
    base: PathBuf,
    log: PathBuf,
}

impl DevNode {
    /// Starts a node on the built-in `--dev` chain (Alice is sudo; the
    /// well-known dev accounts are funded) and waits until its RPC answers
    /// (up to a minute).
    pub async fn spawn() -> Result<DevNode, ChainError> {
        Self::spawn_with(&["--dev"]).await
    }

    /// Starts a node on the chain spec at `spec` (such as the repository's
    /// `chain-spec/dev-raw.json`, which also funds `//Node1`..`//Node12` and
    /// `//HydrogenApp`). The spec must be named "Development" to get instant
    /// seal.
    pub async fn spawn_with_chain_spec(spec: impl AsRef<Path>) -> Result<DevNode, ChainError> {
        let spec = spec.as_ref().to_str().ok_or_else(|| {
            ChainError::DevNode(format!("chain spec path {:?} is not UTF-8", spec.as_ref()))
        })?;
        Self::spawn_with(&["--chain", spec, "--reserved-only"]).await
    }

    async fn spawn_with(chain_args: &[&str]) -> Result<DevNode, ChainError> {
        let port = free_port()?;
        let name = format!("hydrogen-devnode-{}-{port}", std::process::id());
        let base = std::env::temp_dir().join(&name);
        let log = std::env::temp_dir().join(format!("{name}.log"));
        // Left by an earlier process that had this id and port and was killed.
        let _ = std::fs::remove_dir_all(&base);
        let _ = std::fs::remove_file(&log);
        let args: Vec<String> = chain_args.iter().map(|a| a.to_string()).collect();
        let child = start(&args, &base, port, &log)?;
        let mut node = DevNode {
            child,
            args,
            port,
            url: format!("ws://127.0.0.1:{port}"),
            base,
            log,
        };
        node.wait_ready().await?;
        Ok(node)
    }

    /// Kills the node (if [`kill`](Self::kill) has not) and starts it again
    /// on the same port and chain, as an operator's restart would; waits
    /// until its RPC answers.
    pub async fn restart(&mut self) -> Result<(), ChainError> {
        self.kill();
        self.child = start(&self.args, &self.base, self.port, &self.log)?;
        self.wait_ready().await
    }

    /// Kills the node, keeping its chain for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn wait_ready(&mut self) -> Result<(), ChainError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ChainError::DevNode(format!(
                    "node exited ({status}): {}",
                    self.log_tail()
                )));
            }
            if ChainClient::connect(&self.url).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ChainError::DevNode(format!(
                    "RPC not up within 60 s: {}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The node process's id, for a watchdog that must outlive this handle.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's log file (removed when the handle drops).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client connected to this node.
    pub async fn client(&self) -> Result<ChainClient, ChainError> {
        ChainClient::connect(&self.url).await
    }

    /// The last lines of the node's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.base);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Starts the node process; its log is appended to `log`, so a restart
/// keeps the earlier lines.
fn start(args: &[String], base: &Path, port: u16, log: &Path) -> Result<Child, ChainError> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| ChainError::DevNode(format!("{}: {e}", log.display())))?;
    let binary = node_binary();
    Command::new(&binary)
        .args(args)
        .arg("--base-path")
        .arg(base)
        .args([
            "--finalize-delay-sec",
            "0",
            "--port",
            "0",
            "--no-prometheus",
            "--no-mdns",
        ])
        .args(["--rpc-port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| {
            ChainError::DevNode(format!(
                "{}: {e}; install substrate-contracts-node 0.42 or set HYDROGEN_NODE_BIN",
                binary.display()
            ))
        })
}

fn free_port() -> Result<u16, ChainError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ChainError::DevNode(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| ChainError::DevNode(format!("no free port: {e}")))
}
