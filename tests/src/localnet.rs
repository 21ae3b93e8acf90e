//! A whole Hydrogen network on this machine: a dev chain with the contract,
//! a relay, and node daemons as real processes (`hydrogen-node run`), each
//! with its own key, database and models directory. The README's run
//! command and the end-to-end tests both start one.
//!
//! The dev chain seals a block only when a transaction arrives, so its clock
//! stands still while it is idle and no deadline could ever pass; a
//! [`Ticker`] sends a remark every second to stand in for a real chain's
//! block time.

use crate::{fund_native, now_ms};
use futures::future::join_all;
use hydrogen_relay::{Config as RelayConfig, RunningRelay, StorageConfig};
use hydrogen_sdk::app::Client;
use hydrogen_sdk::chain::{
    account_of, keypair_from_suri, ss58, ChainClient, ContractBundle, Hydrogen, Keypair, Ticker,
};
use hydrogen_sdk::task::TaskArgs;
use hydrogen_sdk::types::{AccountId, Balance, Params, UNIT};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The tiny random-weight model's id (the LoRA and textual-inversion
/// fixtures are made for it): what tasks put in `base_model` to run on it.
pub const TINY_MODEL: &str = "hydrogen/tiny-sd";
/// The trained small model's id (`offchain-node/engine/shapes`): it draws
/// the shapes its prompt names, 64x64. The local network's default model.
pub const SHAPES_MODEL: &str = "hydrogen/shapes-sd";
/// A prompt the trained model follows.
pub const SHAPES_PROMPT: &str = "a large red circle in the center on a blue background";
/// GPU memory every local node reports.
pub const NODE_VRAM_GB: u32 = 24;
/// The dev relay's receipt key (a well-known dev secret, like `//Alice`).
pub const RELAY_RECEIPT_KEY: &str = "//HydrogenRelay";
/// Tokens minted to each app.
pub const APP_TOKENS: Balance = 1_000 * UNIT;

type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Key names derive from it (`//<name>/node0`...), so networks sharing a
    /// chain never share keys.
    pub name: String,
    /// Files (configs, keys, databases, logs, relay storage) go here.
    pub dir: PathBuf,
    /// One engine name per node daemon (`burn`; test builds also `cheat`, `fail`).
    pub engines: Vec<String>,
    /// A models directory to use instead of writing the tiny and the trained model.
    pub models_dir: Option<PathBuf>,
    /// Backend of the node daemons: `cpu`, `wgpu`, `wgpu-cpu`.
    pub backend: String,
    pub params: Params,
    /// Apps to fund, by key name (`//<name>/app<i>`).
    pub apps: usize,
    /// Environment for every daemon (test switches such as
    /// `HYDROGEN_TEST_WITHHOLD_UPLOAD`).
    pub daemon_env: Vec<(String, String)>,
    /// Each daemon's web UI and status server on a free loopback port
    /// ([`Daemon::web`]), with this control token (at least 16 characters)
    /// for its `POST /control/...`; `None`: no status server.
    pub web_ui: Option<String>,
}

impl Options {
    pub fn new(name: &str, dir: &Path, nodes: usize) -> Options {
        Options {
            name: name.into(),
            dir: dir.into(),
            engines: vec!["burn".into(); nodes],
            models_dir: None,
            backend: "cpu".into(),
            params: Params {
                // Long enough for a tiny model on a busy 2-core machine,
                // short enough that tests of silent nodes end in minutes.
                timeout_ms: 45_000,
                min_fee: UNIT,
                warmup_ms: 0,
                ..Params::default()
            },
            apps: 1,
            daemon_env: Vec::new(),
            web_ui: None,
        }
    }
}

/// A one-image task for the trained model: 64×64, `steps`, `seed`.
pub fn shapes_task(seed: u64, steps: u32) -> TaskArgs {
    let mut args = TaskArgs::new(SHAPES_MODEL, SHAPES_PROMPT);
    args.task_config.image_width = 64;
    args.task_config.image_height = 64;
    args.task_config.steps = steps;
    args.task_config.num_images = 1;
    args.task_config.seed = seed;
    args.task_config.cfg = 5.0;
    args
}

/// A one-image task for the tiny random model: 64×64, a few steps, `seed`.
pub fn tiny_task(seed: u64, steps: u32) -> TaskArgs {
    let mut args = TaskArgs::new(TINY_MODEL, "a lighthouse on a cliff");
    args.task_config.image_width = 64;
    args.task_config.image_height = 64;
    args.task_config.steps = steps;
    args.task_config.num_images = 1;
    args.task_config.seed = seed;
    args
}

/// The `hydrogen-node` binary: `$HYDROGEN_DAEMON_BIN`, else next to this
/// executable's directory (cargo puts test binaries in `target/<profile>/deps`
/// and binaries in `target/<profile>`).
pub fn daemon_binary() -> PathBuf {
    workspace_binary("hydrogen-node", "HYDROGEN_DAEMON_BIN")
}

/// The `hydrogen-relay` binary: `$HYDROGEN_RELAY_BIN`, else beside the
/// node's (tests that kill a relay run it as a process of its own).
pub fn relay_binary() -> PathBuf {
    workspace_binary("hydrogen-relay", "HYDROGEN_RELAY_BIN")
}

/// The `hydrogen-bridge` binary: `$HYDROGEN_BRIDGE_BIN`, else beside the
/// node's (`hydrogen-localnet --web` serves the Image Generator with it).
pub fn bridge_binary() -> PathBuf {
    workspace_binary("hydrogen-bridge", "HYDROGEN_BRIDGE_BIN")
}

fn workspace_binary(name: &str, variable: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// One node daemon process and what it was started with.
pub struct Daemon {
    pub key: Keypair,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub engine: String,
    /// The address of its web UI and status server (`http_listen`), when
    /// [`Options::web_ui`] asked for one.
    pub web: Option<SocketAddr>,
    child: Option<Child>,
}

impl Daemon {
    pub fn account(&self) -> AccountId {
        account_of(&self.key)
    }

    /// Starts `hydrogen-node run` (again) with this daemon's config; its
    /// output is appended to `<dir>/node.log`.
    pub fn start(&mut self, extra_env: &[(&str, &str)]) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))?;
        let mut cmd = Command::new(daemon_binary());
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        self.child = Some(
            cmd.spawn()
                .map_err(|e| format!("cannot start {}: {e}", daemon_binary().display()))?,
        );
        Ok(())
    }

    /// SIGKILL, as a crash or power loss would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Waits for the process to exit by itself (a crash point).
    pub async fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        match self.child.as_mut() {
            Some(child) => {
                let status = child.wait().await.ok();
                self.child = None;
                status
            }
            None => None,
        }
    }

    /// Whether the process runs (it has not exited since it was started).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends `signal` (`INT`, `TERM`, ...) to the running process.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            let _ = std::process::Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// SIGTERM: the daemon finishes or hands back its task, then exits.
    pub async fn terminate(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status();
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// The web UI's URL (`http://127.0.0.1:PORT/`), when it has one.
    pub fn web_url(&self) -> Option<String> {
        self.web.map(|addr| format!("http://{addr}/"))
    }
}

/// A running local network.
pub struct LocalNet {
    pub options: Options,
    pub chain_url: String,
    pub client: ChainClient,
    pub hydrogen: Hydrogen,
    pub owner: Keypair,
    pub apps: Vec<Keypair>,
    pub relay: Option<RunningRelay>,
    relay_config: RelayConfig,
    pub daemons: Vec<Daemon>,
    pub models_dir: PathBuf,
    _ticker: Ticker,
}

impl LocalNet {
    /// Deploys a contract on the chain at `chain_url`, funds and mints for
    /// the apps and nodes, starts the relay and the node daemons, and waits
    /// until every node has joined.
    pub async fn start(chain_url: &str, bundle: &Path, options: Options) -> Result<LocalNet> {
        std::fs::create_dir_all(&options.dir)?;
        let key = |name: String| keypair_from_suri(&format!("//{}/{name}", options.name));
        let owner = key("owner".into())?;
        let ticker_key = key("ticker".into())?;
        let apps: Vec<Keypair> = (0..options.apps)
            .map(|i| key(format!("app{i}")))
            .collect::<std::result::Result<_, _>>()?;
        let node_keys: Vec<Keypair> = (0..options.engines.len())
            .map(|i| key(format!("node{i}")))
            .collect::<std::result::Result<_, _>>()?;

        let client = ChainClient::connect(chain_url).await?;
        let mut accounts = vec![account_of(&owner), account_of(&ticker_key)];
        accounts.extend(apps.iter().map(account_of));
        accounts.extend(node_keys.iter().map(account_of));
        fund_native(&client, &accounts, crate::NATIVE_FUNDS).await?;

        let bundle = ContractBundle::load(bundle)?;
        let (hydrogen, _) =
            Hydrogen::deploy(client.clone(), &owner, &bundle, &options.params, 0).await?;
        let mut mints: Vec<(AccountId, Balance)> =
            apps.iter().map(|a| (account_of(a), APP_TOKENS)).collect();
        mints.extend(
            node_keys
                .iter()
                .map(|n| (account_of(n), options.params.required_stake)),
        );
        for minted in join_all(mints.into_iter().map(|(to, value)| {
            let (hydrogen, owner) = (hydrogen.clone(), owner.clone());
            async move { hydrogen.mint(&owner, to, value).await }
        }))
        .await
        {
            minted?;
        }
        let ticker = Ticker::start(client.clone(), ticker_key, Duration::from_secs(1));

        let contract = ss58(&hydrogen.address());
        let mut relay_config = RelayConfig::new(chain_url, contract.clone());
        relay_config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        relay_config.storage = StorageConfig::Local {
            path: options.dir.join("relay"),
        };
        // The relay signs upload receipts and the contract requires them, as
        // in a real deployment: an uploader is paid only for stored images.
        relay_config.receipt_key = Some(RELAY_RECEIPT_KEY.into());
        let receipts = hydrogen_sdk::relay::receipt::keypair_from_uri(RELAY_RECEIPT_KEY)
            .map_err(Error::from)?;
        hydrogen
            .set_relay_key(
                &owner,
                Some(hydrogen_sdk::relay::receipt::public_key(&receipts)),
            )
            .await?;
        let relay = hydrogen_relay::start(relay_config.clone()).await?;
        // A restarted relay comes back on the same port.
        relay_config.listen = relay.addr;

        let models_dir = match &options.models_dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = options.dir.join("models");
                write_tiny_model(&dir).await?;
                install_shapes_model(&dir)?;
                dir
            }
        };

        let mut daemons = Vec::new();
        for (i, (key, engine)) in node_keys.into_iter().zip(&options.engines).enumerate() {
            let dir = options.dir.join(format!("node{i}"));
            std::fs::create_dir_all(&dir)?;
            let config = dir.join("node.toml");
            let web = match options.web_ui {
                Some(_) => Some(free_loopback_port()?),
                None => None,
            };
            std::fs::write(
                &config,
                node_config(NodeConfig {
                    chain_url,
                    contract: &contract,
                    relay_url: &relay.url(),
                    dir: &dir,
                    models_dir: &models_dir,
                    engine,
                    backend: &options.backend,
                    web,
                    control_token: options.web_ui.as_deref(),
                }),
            )?;
            if !dir.join("key.json").exists() {
                import_key(&config, &format!("//{}/node{i}", options.name)).await?;
            }
            let mut daemon = Daemon {
                key,
                dir,
                config,
                engine: engine.clone(),
                web,
                child: None,
            };
            let env: Vec<(&str, &str)> = options
                .daemon_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            daemon.start(&env)?;
            daemons.push(daemon);
        }

        let net = LocalNet {
            options,
            chain_url: chain_url.into(),
            client,
            hydrogen,
            owner,
            apps,
            relay: Some(relay),
            relay_config,
            daemons,
            models_dir,
            _ticker: ticker,
        };
        net.wait_joined(Duration::from_secs(120)).await?;
        Ok(net)
    }

    /// Waits until every daemon's node is registered on chain.
    pub async fn wait_joined(&self, within: Duration) -> Result<()> {
        let until = now_ms() + within.as_millis() as u64;
        for (i, daemon) in self.daemons.iter().enumerate() {
            loop {
                if self.hydrogen.node_info(daemon.account()).await?.is_some() {
                    break;
                }
                if now_ms() > until {
                    return Err(format!(
                        "node {i} did not join within {} s; its log:\n{}",
                        within.as_secs(),
                        daemon.log()
                    )
                    .into());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    pub fn relay_url(&self) -> String {
        format!("http://{}", self.relay_config.listen)
    }

    /// An app client signing with app key `i`.
    pub async fn app(&self, i: usize) -> Result<Client> {
        Ok(Client::connect(
            &self.chain_url,
            &self.relay_url(),
            self.hydrogen.address(),
            self.apps[i].clone(),
        )
        .await?
        .with_poll_interval(Duration::from_millis(500)))
    }

    /// Stops the relay (requests in flight finish).
    pub async fn stop_relay(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.shutdown().await;
        }
    }

    /// Starts the relay again on the same port and storage.
    pub async fn start_relay(&mut self) -> Result<()> {
        if self.relay.is_none() {
            self.relay = Some(hydrogen_relay::start(self.relay_config.clone()).await?);
        }
        Ok(())
    }

    /// Every daemon's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.daemons
            .iter()
            .enumerate()
            .map(|(i, d)| format!("---- node {i} ({}) ----\n{}", d.engine, d.log()))
            .collect()
    }

    /// Stops the daemons (SIGTERM, then SIGKILL) and the relay.
    pub async fn shutdown(mut self) {
        join_all(
            self.daemons
                .iter_mut()
                .map(|d| d.terminate(Duration::from_secs(10))),
        )
        .await;
        self.stop_relay().await;
    }
}

struct NodeConfig<'a> {
    chain_url: &'a str,
    contract: &'a str,
    relay_url: &'a str,
    dir: &'a Path,
    models_dir: &'a Path,
    engine: &'a str,
    backend: &'a str,
    web: Option<SocketAddr>,
    control_token: Option<&'a str>,
}

/// A loopback address whose port was free a moment ago (the daemon binds it
/// when it starts; another process could take it in between, which on a
/// test machine does not happen in practice).
fn free_loopback_port() -> Result<SocketAddr> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?)
}

fn node_config(c: NodeConfig<'_>) -> String {
    format!(
        r#"chain_url = "{chain}"
contract = "{contract}"
relay_url = "{relay}"
key_file = "{dir}/key.json"
data_dir = "{dir}/data"
models_dir = "{models}"
engine = "{engine}"
backend = "{backend}"
on_shutdown = "stay"
poll_interval_secs = 1
http_listen = "{http_listen}"
{control_token}

[gpu]
name = "local test node"
vram_gb = {vram}

[log]
level = "info,hydrogen_node=debug"

[sources]
mirror = ""                 # no downloads by id: the machine may be offline
allow_private_urls = true   # tests serve LoRAs on loopback
"#,
        chain = c.chain_url,
        contract = c.contract,
        relay = c.relay_url,
        dir = c.dir.display(),
        models = c.models_dir.display(),
        engine = c.engine,
        backend = c.backend,
        vram = NODE_VRAM_GB,
        http_listen = c.web.map(|a| a.to_string()).unwrap_or_default(),
        control_token = c
            .control_token
            .map(|t| format!("control_token = {t:?}"))
            .unwrap_or_default(),
    )
}

/// Runs a `hydrogen-node` command to completion, with `stdin` as its input.
async fn run_daemon_cli(args: &[&str], stdin: &str) -> Result<String> {
    run_cli(&daemon_binary(), args, stdin).await
}

/// Runs `binary` with `args` to completion, with `stdin` as its input;
/// returns its standard output, or an error with both outputs.
pub(crate) async fn run_cli(binary: &Path, args: &[&str], stdin: &str) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        let name = binary.file_name().unwrap_or_default().to_string_lossy();
        return Err(format!(
            "{name} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes the tiny random-weight model under `<dir>/hydrogen/tiny-sd`.
async fn write_tiny_model(dir: &Path) -> Result<()> {
    if dir.join(TINY_MODEL).join("model_index.json").exists() {
        return Ok(());
    }
    let dir = dir.to_str().ok_or("models dir is not UTF-8")?;
    run_daemon_cli(&["models", "create-tiny", dir], "").await?;
    Ok(())
}

/// The trained model's folder in this repository.
pub fn shapes_model_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../offchain-node/engine/shapes/model")
}

/// Copies the trained model to `<dir>/hydrogen/shapes-sd` (the node layout).
pub fn install_shapes_model(dir: &Path) -> Result<()> {
    copy_tree(&shapes_model_source(), &dir.join(SHAPES_MODEL))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Imports `suri` into the (unencrypted) key file `config` names.
async fn import_key(config: &Path, suri: &str) -> Result<()> {
    let config = config.to_str().ok_or("config path is not UTF-8")?;
    run_daemon_cli(
        &["--config", config, "init", "--import"],
        &format!("{suri}\n"),
    )
    .await?;
    Ok(())
}
