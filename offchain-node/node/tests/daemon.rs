//! The daemon as operators run it: three `hydrogen-node run` processes on a
//! real dev chain with a real relay on loopback and the Burn engine on the
//! tiny model, killed with SIGKILL at each point of the task's life
//! (`HYDROGEN_NODE_CRASH_AT`), restarted, and checked against the chain:
//! the task completes, every node is paid, and each node sent each call
//! exactly once (its account nonce counts every extrinsic it ever sent).

use codec::Decode;
use hydrogen_node::keys;
use hydrogen_sdk::chain::devnode::DevNode;
use hydrogen_sdk::chain::{account_of, ss58, Keypair};
use hydrogen_sdk::relay::RelayClient;
use hydrogen_sdk::task::TaskArgs;
use hydrogen_sdk::types::{AccountId, Event, Params, TaskId, TaskStatus, TaskType};
use hydrogen_tests::{shared_node, Network, FEE};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 3;
/// Room for three debug-build daemons and their restarts on two busy cores.
const TASK_TIMEOUT: Duration = Duration::from_secs(300);

fn params() -> Params {
    Params {
        // Long enough that no deadline passes on a loaded machine.
        timeout_ms: 10 * 60 * 1000,
        warmup_ms: 0,
        ..Params::default()
    }
}

/// A small task for the tiny model.
fn task_args(prompt: &str) -> TaskArgs {
    let mut args = TaskArgs::new(hydrogen_engine::tiny::MODEL_NAME, prompt);
    args.task_config.image_width = 64;
    args.task_config.image_height = 64;
    args.task_config.steps = 2;
    args.task_config.num_images = 2;
    args.task_config.seed = 11;
    args
}

/// One node's files and process.
struct Daemon {
    key: Keypair,
    home: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// How its process ended each time it was restarted.
    exits: Vec<std::process::ExitStatus>,
}

impl Daemon {
    fn new(root: &Path, i: usize, key: Keypair, suri: &str, common: &[(String, String)]) -> Daemon {
        let home = root.join(format!("node{i}"));
        std::fs::create_dir_all(&home).unwrap();
        let key_file = home.join("key.json");
        keys::write(&key_file, suri, None).unwrap();
        let mut env = common.to_vec();
        env.push((
            "HYDROGEN_NODE_KEY_FILE".into(),
            key_file.display().to_string(),
        ));
        env.push((
            "HYDROGEN_NODE_DATA_DIR".into(),
            home.join("data").display().to_string(),
        ));
        Daemon {
            key,
            home,
            env,
            child: None,
            exits: Vec::new(),
        }
    }

    fn start(&mut self, crash_at: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("node.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hydrogen-node"));
        cmd.arg("run")
            .env_remove("HYDROGEN_NODE_CRASH_AT")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(point) = crash_at {
            cmd.env("HYDROGEN_NODE_CRASH_AT", point);
        }
        self.child = Some(cmd.spawn().expect("spawn hydrogen-node"));
    }

    /// Restarts the process if it died; returns whether it had.
    fn restart_if_dead(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait().unwrap() {
            Some(status) => {
                self.exits.push(status);
                self.start(None);
                true
            }
            None => false,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("node.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A network of three daemons with a relay.
struct Cluster {
    net: Network,
    relay: Option<hydrogen_relay::RunningRelay>,
    relay_config: hydrogen_relay::Config,
    daemons: Vec<Daemon>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn new(test: &str, chain_url: &str) -> Cluster {
        let net = Network::setup(chain_url, test, params(), NODES).await;
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        hydrogen_node::models::create_tiny(&models).unwrap();
        let contract = ss58(&net.contract());
        let mut relay_config = hydrogen_relay::Config::new(chain_url, contract.clone());
        relay_config.listen = "127.0.0.1:0".parse().unwrap();
        relay_config.storage = hydrogen_relay::StorageConfig::Local {
            path: dir.path().join("relay"),
        };
        let relay = hydrogen_relay::start(relay_config.clone())
            .await
            .expect("relay");
        // Restarts must come back on the same address.
        relay_config.listen = relay.addr;
        let common: Vec<(String, String)> = [
            ("HYDROGEN_NODE_CHAIN_URL", chain_url.to_string()),
            ("HYDROGEN_NODE_CONTRACT", contract),
            ("HYDROGEN_NODE_RELAY_URL", relay.url()),
            ("HYDROGEN_NODE_MODELS_DIR", models.display().to_string()),
            ("HYDROGEN_NODE_ENGINE", "burn".into()),
            ("HYDROGEN_NODE_BACKEND", "cpu".into()),
            ("HYDROGEN_NODE_GPU__VRAM_GB", "24".into()),
            ("HYDROGEN_NODE_HTTP_LISTEN", String::new()),
            ("HYDROGEN_NODE_POLL_INTERVAL_SECS", "1".into()),
            ("HYDROGEN_NODE_LOG__LEVEL", "info".into()),
            ("NO_COLOR", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let daemons = (0..NODES)
            .map(|i| {
                let suri = format!("//chain-it/{test}/node{i}");
                Daemon::new(dir.path(), i, net.nodes[i].clone(), &suri, &common)
            })
            .collect();
        Cluster {
            net,
            relay: Some(relay),
            relay_config,
            daemons,
            _dir: dir,
        }
    }

    fn start_all(&mut self, crash_at: Option<&str>) {
        for d in &mut self.daemons {
            d.start(crash_at);
        }
    }

    /// Waits until all three daemons have joined.
    async fn wait_joined(&mut self) {
        let started = Instant::now();
        loop {
            let counts = self.net.hydrogen.node_counts().await.unwrap();
            if counts.available as usize == NODES {
                return;
            }
            for d in &mut self.daemons {
                d.restart_if_dead();
            }
            assert!(
                started.elapsed() < TASK_TIMEOUT,
                "daemons did not join: {counts:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The creator creates a task for `args`; uploads them when `upload`.
    async fn create_task(&self, args: &TaskArgs, upload: bool) -> TaskId {
        let created = self
            .net
            .hydrogen
            .create_task(
                &self.net.creator,
                TaskType::StableDiffusion,
                args.args_hash(),
                args.min_vram_gb(),
                args.num_images() as u8,
                FEE,
            )
            .await
            .expect("create_task");
        if upload {
            self.upload_args(created.value, args).await;
        }
        created.value
    }

    async fn upload_args(&self, task: TaskId, args: &TaskArgs) {
        let relay = RelayClient::new(
            &format!("http://{}", self.relay_config.listen),
            self.net.creator.clone(),
        )
        .unwrap();
        relay
            .upload_args(task, &args.to_canonical_json())
            .await
            .expect("upload the arguments");
    }

    /// Waits for `task` to complete, restarting daemons that died.
    async fn wait_completed(&mut self, task: TaskId) {
        let started = Instant::now();
        loop {
            for d in &mut self.daemons {
                d.restart_if_dead();
            }
            if let Ok(Some(info)) = self.net.hydrogen.task(task).await {
                match info.status {
                    TaskStatus::Completed => return,
                    TaskStatus::Aborted(reason) => {
                        panic!("task aborted: {reason:?}\n{}", self.logs())
                    }
                    _ => {}
                }
            }
            assert!(
                started.elapsed() < TASK_TIMEOUT,
                "task {task} did not complete\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn logs(&self) -> String {
        self.daemons
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let log = d.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                format!(
                    "--- node{i} ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The contract's events since deployment, per block, up to now.
    async fn events(&self) -> Vec<Event> {
        let client = &self.net.client;
        let last = client.finalized_number().await.unwrap();
        let mut all = Vec::new();
        for block in self.net.deployed.included.block_number..=last {
            let events = self.net.hydrogen.events_at(block).await.unwrap();
            all.extend(events.events.into_iter().map(|e| e.event));
        }
        all
    }

    /// The contract messages each account's extrinsics ran since the
    /// deployment, by name. An extrinsic that failed in its block (the SDK
    /// resubmits once after running out of gas) changed nothing and is left
    /// out; a call the contract refused still counts.
    async fn calls_sent(&self) -> HashMap<AccountId, HashMap<&'static str, usize>> {
        let api = self.net.client.api();
        let names: HashMap<[u8; 4], &'static str> = hydrogen_sdk::chain::msg::ALL
            .iter()
            .map(|name| (hydrogen_sdk::chain::selector(name), *name))
            .collect();
        let last = self.net.client.finalized_number().await.unwrap();
        let mut sent: HashMap<AccountId, HashMap<&'static str, usize>> = HashMap::new();
        for number in self.net.deployed.included.block_number..=last {
            let block = api.at_block(number).await.unwrap();
            let extrinsics = block.extrinsics().fetch().await.unwrap();
            let mut succeeded = std::collections::HashSet::new();
            for event in block.events().fetch().await.unwrap().iter() {
                let event = event.unwrap();
                if let subxt::events::Phase::ApplyExtrinsic(i) = event.phase() {
                    if event.pallet_name() == "System" && event.event_name() == "ExtrinsicSuccess" {
                        succeeded.insert(i as usize);
                    }
                }
            }
            for ext in extrinsics.iter() {
                let ext = ext.unwrap();
                if !succeeded.contains(&ext.index()) {
                    continue;
                }
                if ext.pallet_name() != "Contracts" || ext.call_name() != "call" {
                    continue;
                }
                // MultiAddress::Id: variant 0, then the 32-byte account.
                let Some([0, account @ ..]) = ext.address_bytes() else {
                    continue;
                };
                let account = AccountId::try_from(account).unwrap();
                let data = ext
                    .iter_call_data_fields()
                    .find(|f| f.name() == "data")
                    .expect("Contracts::call has a data field");
                let data = <Vec<u8> as Decode>::decode(&mut data.bytes()).unwrap();
                let name = names
                    .get(&<[u8; 4]>::try_from(&data[..4]).unwrap())
                    .copied()
                    .unwrap_or("unknown");
                *sent.entry(account).or_default().entry(name).or_default() += 1;
            }
        }
        sent
    }

    /// Waits until the contract released every node from `task` (the last
    /// revealer may reveal after the uploader confirmed).
    async fn wait_released(&self, task: TaskId) {
        let started = Instant::now();
        for d in &self.daemons {
            let me = account_of(&d.key);
            loop {
                let info = self.net.hydrogen.node_info(me).await.unwrap().unwrap();
                if info.current_task != Some(task) {
                    break;
                }
                assert!(
                    started.elapsed() < TASK_TIMEOUT,
                    "node still on task {task}\n{}",
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }

    /// Asserts that `task` ended with every node paid and each node's
    /// commit, reveal and confirmation sent exactly once.
    async fn check_exactly_once(&self, task: TaskId) {
        self.wait_released(task).await;
        let events = self.events().await;
        let info = self.net.hydrogen.task(task).await.unwrap().unwrap();
        let uploader = info.uploader.expect("an uploader");
        let count = |pred: &dyn Fn(&Event) -> bool| events.iter().filter(|e| pred(e)).count();
        assert_eq!(count(&|e| matches!(e, Event::ResultsUploaded { .. })), 1);
        let sent = self.calls_sent().await;
        for d in &self.daemons {
            let me = account_of(&d.key);
            let paid = count(
                &|e| matches!(e, Event::NodePaid { node, task_id, .. } if *node == me && *task_id == task),
            );
            assert_eq!(paid, 1, "node {} paid once", ss58(&me));
            let calls = sent.get(&me).cloned().unwrap_or_default();
            let once = |name: &str| calls.get(name).copied().unwrap_or(0);
            let expected = [
                ("join", 1),
                ("commit", 1),
                ("reveal", 1),
                ("confirm_upload", usize::from(me == uploader)),
                ("pause", 0),
                ("resume", 0),
                ("quit", 0),
            ];
            for (name, n) in expected {
                assert_eq!(
                    once(name),
                    n,
                    "{name} sent by {}: {calls:?}\n{}",
                    ss58(&me),
                    self.logs()
                );
            }
        }
        // The images on the relay are the ones the chain accepted.
        let relay = RelayClient::new(
            &format!("http://{}", self.relay_config.listen),
            self.net.creator.clone(),
        )
        .unwrap();
        let pngs = relay
            .download_images(task)
            .await
            .expect("images on the relay");
        let images: Vec<_> = pngs
            .iter()
            .map(|png| image::load_from_memory(png).unwrap().to_rgb8())
            .collect();
        let result = info.result.expect("an accepted result");
        let distances =
            hydrogen_sdk::types::distances(&hydrogen_sdk::phash::phash_images(&images), &result)
                .unwrap();
        assert!(distances.iter().all(|&d| d <= 10), "{distances:?}");
    }
}

async fn chain() -> Option<String> {
    shared_node().await
}

/// Kills all three daemons at `point` (those that reach it), restarts them,
/// and checks the task completes with each call made once.
async fn crash_and_resume(point: &str, uploader_only: bool) {
    let Some(url) = chain().await else { return };
    let mut cluster = Cluster::new(&format!("crash-{point}"), &url).await;
    cluster.start_all(Some(point));
    cluster.wait_joined().await;
    let task = cluster
        .create_task(&task_args(&format!("crash at {point}")), true)
        .await;
    cluster.wait_completed(task).await;
    // A daemon killed after a call that completed the task (confirm_sent)
    // may die just after the chain shows the task completed: give its
    // death a moment to be seen, and let it resume.
    let expected = if uploader_only { 1 } else { NODES };
    let mut killed = 0;
    for _ in 0..100 {
        for d in &mut cluster.daemons {
            d.restart_if_dead();
        }
        killed = cluster
            .daemons
            .iter()
            .map(|d| {
                d.exits
                    .iter()
                    .filter(|s| s.signal() == Some(libc_sigkill()))
                    .count()
            })
            .sum::<usize>();
        if killed >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.check_exactly_once(task).await;
    if uploader_only {
        assert_eq!(
            killed,
            1,
            "the uploader alone reaches {point}\n{}",
            cluster.logs()
        );
    } else {
        assert_eq!(
            killed,
            NODES,
            "every node reaches {point}\n{}",
            cluster.logs()
        );
    }
}

fn libc_sigkill() -> i32 {
    9
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_selected() {
    crash_and_resume("selected", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_arguments_fetched() {
    crash_and_resume("arguments_fetched", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_generated() {
    crash_and_resume("generated", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_after_commit_sent_before_recorded() {
    crash_and_resume("commit_sent", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_committed() {
    crash_and_resume("committed", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_after_reveal_sent_before_recorded() {
    crash_and_resume("reveal_sent", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_revealed() {
    crash_and_resume("revealed", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_after_upload_sent_before_recorded() {
    crash_and_resume("upload_sent", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_at_images_uploaded() {
    crash_and_resume("images_uploaded", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_after_confirm_sent_before_recorded() {
    crash_and_resume("confirm_sent", true).await;
}

/// A dev node of its own, to restart under the daemons.
async fn restartable_chain() -> Option<DevNode> {
    // The shared node tells whether chain tests run here at all.
    shared_node().await?;
    let node = DevNode::spawn_with_chain_spec(hydrogen_tests::chain_spec_path()).await;
    Some(node.expect("spawn a dev node"))
}

/// The relay is down when the task starts and the chain node restarts
/// while the nodes wait for the arguments: the daemons reconnect, catch up
/// and finish the task, each call still made once.
#[tokio::test(flavor = "multi_thread")]
async fn relay_down_and_chain_restart_mid_task() {
    let Some(mut chain) = restartable_chain().await else {
        return;
    };
    let url = chain.url().to_owned();
    let mut cluster = Cluster::new("restart", &url).await;
    cluster.start_all(None);
    cluster.wait_joined().await;

    cluster.relay.take().expect("relay").shutdown().await;
    let args = task_args("relay down, chain restarted");
    let task = cluster.create_task(&args, false).await;
    let started = Instant::now();
    while cluster.net.task(task).await.status != TaskStatus::Running {
        assert!(
            started.elapsed() < TASK_TIMEOUT,
            "task did not start\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Let the daemons find the relay unreachable a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The test's own client (cluster.net) rides out the restart as the
    // daemons' do.
    chain.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    chain.restart().await.expect("chain node back");

    cluster.relay = Some(
        hydrogen_relay::start(cluster.relay_config.clone())
            .await
            .expect("relay again"),
    );
    cluster.upload_args(task, &args).await;
    cluster.wait_completed(task).await;
    cluster.check_exactly_once(task).await;
    for d in &cluster.daemons {
        assert!(d.exits.is_empty(), "no daemon died\n{}", cluster.logs());
    }
}

/// `hydrogen-node <args>` with a fresh key in `home` and the given settings;
/// returns the exit code, stdout and stderr.
fn cli(home: &Path, settings: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let key_file = home.join("key.json");
    if !key_file.exists() {
        keys::write(&key_file, "//Node1", None).unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hydrogen-node"))
        .args(args)
        .env("HYDROGEN_NODE_KEY_FILE", &key_file)
        .env("HYDROGEN_NODE_DATA_DIR", home.join("data"))
        .env("HYDROGEN_NODE_MODELS_DIR", home.join("models"))
        .env("HYDROGEN_NODE_HTTP_LISTEN", "")
        .envs(settings.iter().copied())
        .env("HOME", home)
        .output()
        .expect("hydrogen-node runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_says_what_is_missing_and_fails_when_the_chain_is_unreachable() {
    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = cli(home.path(), &[("HYDROGEN_NODE_CONTRACT", "")], &["status"]);
    assert_ne!(code, 0);
    assert!(err.contains("no contract configured"), "{err}");

    let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    let unreachable = [
        ("HYDROGEN_NODE_CONTRACT", alice),
        ("HYDROGEN_NODE_CHAIN_URL", "ws://127.0.0.1:1"),
    ];
    let (code, out, err) = cli(home.path(), &unreachable, &["status"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("chain:        unreachable"), "{out}");
    assert!(err.contains("the chain is unreachable"), "{err}");
    // The same facts as JSON, in the daemon's /status shape.
    let (code, out, _) = cli(home.path(), &unreachable, &["status", "--json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["chain_connected"], false);
    assert_eq!(
        json["account"],
        "5CtGW7s83TAuCsVq5b8i2E2riF2hw2nCwNp68hDnHzALk8MG"
    );
}

#[test]
fn an_http_chain_url_is_refused_at_start_not_retried() {
    let home = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, _, err) = cli(
        home.path(),
        &[
            (
                "HYDROGEN_NODE_CONTRACT",
                "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
            ),
            ("HYDROGEN_NODE_CHAIN_URL", "http://127.0.0.1:9944"),
            ("HYDROGEN_NODE_ENGINE", "burn"),
            ("HYDROGEN_NODE_BACKEND", "cpu"),
            ("HYDROGEN_NODE_GPU__VRAM_GB", "8"),
        ],
        &["run"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("use ws://"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
