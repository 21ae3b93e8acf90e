//! The whole network end to end: a real dev chain with the contract, a real
//! relay on loopback, node daemons as real `hydrogen-node` processes on the
//! tiny random-weight model, and apps through the SDK's `Client`.
//!
//! Every test starts its own network (contract, keys, relay, daemons) on the
//! process's shared dev node. A cheating node is the test-only `cheat`
//! engine behind the daemon's real engine interface; a silent one is the
//! `fail` engine, which reports a local fault, so the daemon stays silent.

use hydrogen_sdk::app::{AppError, Client, GenerateOptions, Generated};
use hydrogen_sdk::chain::ss58;
use hydrogen_sdk::task::{Lora, SchedulerMethod, Strength, TaskArgs};
use hydrogen_sdk::types::{
    fee_share, AbortReason, AccountId, Balance, Event, NodeStatus, TaskId, UNIT,
};
use hydrogen_tests::localnet::{self, LocalNet, Options};
use hydrogen_tests::nginx::{self, Nginx};
use hydrogen_tests::{bundle_path, shared_node};
use std::collections::BTreeMap;
use std::time::Duration;

const FEE: Balance = 25 * UNIT;

/// A network called `name` with one daemon per engine, or `None` when chain
/// tests are skipped.
async fn network(
    name: &str,
    engines: &[&str],
    apps: usize,
) -> Option<(LocalNet, tempfile::TempDir)> {
    let url = shared_node().await?;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut options = Options::new(&format!("e2e/{name}"), dir.path(), engines.len());
    options.engines = engines.iter().map(|e| e.to_string()).collect();
    options.apps = apps;
    let net = LocalNet::start(&url, &bundle_path(), options)
        .await
        .unwrap_or_else(|e| panic!("local network {name}: {e}"));
    Some((net, dir))
}

/// The tests' task: the trained model, 64×64, 4 steps.
fn task(seed: u64) -> TaskArgs {
    localnet::shapes_task(seed, 4)
}

fn options() -> GenerateOptions {
    GenerateOptions {
        fee: Some(FEE),
        ..GenerateOptions::default()
    }
}

async fn generate(net: &LocalNet, app: &Client, seed: u64) -> Generated {
    match app.generate(&task(seed), options()).await {
        Ok(done) => done,
        Err(e) => panic!("generate: {e}\n{}", net.logs()),
    }
}

/// The task's payment events so far: read backwards from the finalized
/// head to the block that created the task (the dev node keeps the state,
/// hence the events, of its last 256 blocks only).
async fn settlement(net: &LocalNet, app: &Client, task_id: TaskId) -> Settlement {
    let task = app.task(task_id).await.expect("task");
    let mut s = Settlement {
        nodes: task.nodes,
        ..Settlement::default()
    };
    let mut number = net.client.finalized_number().await.expect("finalized");
    loop {
        let block = net.hydrogen.events_at(number).await.expect("block events");
        let mut created = false;
        for e in block.events {
            match e.event {
                Event::TaskCreated { task_id: t, .. } if t == task_id => created = true,
                Event::NodePaid {
                    task_id: t,
                    node,
                    amount,
                } if t == task_id => {
                    *s.paid.entry(node).or_default() += amount;
                }
                Event::NodeSlashed {
                    task_id: t, node, ..
                } if t == task_id => s.slashed.push(node),
                Event::NodeMissed {
                    task_id: t, node, ..
                } if t == task_id => s.missed.push(node),
                Event::Refunded {
                    task_id: t, amount, ..
                } if t == task_id => s.refunded += amount,
                _ => {}
            }
        }
        if created || number == 0 {
            break;
        }
        number -= 1;
    }
    s
}

/// Waits (up to 4 minutes) until task `id` is final, without acting on it.
async fn wait_final(net: &LocalNet, app: &Client, id: TaskId) {
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        let status = app.task(id).await.expect("task").status;
        if status.is_final() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task {id} never ended: {status:?}\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[derive(Debug, Default)]
struct Settlement {
    nodes: Vec<AccountId>,
    paid: BTreeMap<AccountId, Balance>,
    slashed: Vec<AccountId>,
    missed: Vec<AccountId>,
    refunded: Balance,
}

#[tokio::test(flavor = "multi_thread")]
async fn honest_task_succeeds_and_pays_exactly() {
    let Some((net, _dir)) = network("honest", &["burn", "burn", "burn"], 1).await else {
        return;
    };
    let app = net.app(0).await.expect("app");
    let before = app.balance().await.expect("balance");
    let done = generate(&net, &app, 7).await;

    assert_eq!(done.images.len(), 1);
    let img = image::load_from_memory(&done.images[0]).expect("a PNG");
    assert_eq!((img.width(), img.height()), (64, 64));
    assert_eq!(
        app.balance().await.expect("balance"),
        before - FEE,
        "the app paid the fee once"
    );

    let s = settlement(&net, &app, done.task_id).await;
    assert!(s.slashed.is_empty() && s.missed.is_empty(), "{s:?}");
    let mut paid: Vec<Balance> = s.paid.values().copied().collect();
    paid.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(
        paid,
        vec![10 * UNIT, 9 * UNIT, 6 * UNIT],
        "40/36/24 % by commit order"
    );
    assert_eq!(s.refunded, 0);
    for node in &s.nodes {
        let info = net
            .hydrogen
            .node_info(*node)
            .await
            .expect("node")
            .expect("joined");
        assert_eq!(
            info.status,
            NodeStatus::Available,
            "released after the task"
        );
        assert_eq!(
            net.hydrogen.balance_of(*node).await.expect("balance"),
            s.paid[node],
            "the node's tokens are exactly its fee share (its stake is locked)"
        );
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cheating_node_is_audited_then_slashed_and_the_others_paid() {
    let engines = ["burn", "burn", "cheat", "burn", "burn", "burn"];
    let Some((net, _dir)) = network("cheat", &engines, 1).await else {
        return;
    };
    let cheater = net.daemons[2].account();
    let app = net.app(0).await.expect("app");
    // Three honest nodes sit the first task out, so the cheater is in it.
    for d in &net.daemons[3..] {
        net.hydrogen.pause(&d.key).await.expect("pause");
    }
    let done = generate(&net, &app, 11).await;
    assert_ne!(
        done.uploader, cheater,
        "the accepted result is an honest one"
    );
    // The cheater's contradicting reveal opened an audit instead of a slash.
    let audit = app
        .task(done.task_id)
        .await
        .expect("task")
        .audit
        .unwrap_or_else(|| panic!("an audit was opened\n{}", net.logs()));
    let held = net
        .hydrogen
        .node_info(cheater)
        .await
        .expect("node")
        .unwrap();
    assert_eq!(held.disputes, 1, "its stake is held: {held:?}");
    // The three fresh nodes come back and re-execute the task.
    for d in &net.daemons[3..] {
        net.hydrogen.resume(&d.key).await.expect("resume");
    }
    wait_final(&net, &app, audit).await;
    // The audit judges once its last node is settled, which may be a block
    // after it completed (two agreeing reveals complete it).
    let s = verdict_of(&net, &app, done.task_id, cheater).await;
    assert_eq!(s.slashed, vec![cheater], "{s:?}\n{}", net.logs());
    assert!(!s.paid.contains_key(&cheater));
    let info = net.hydrogen.node_info(cheater).await.expect("node");
    assert!(
        info.as_ref()
            .is_none_or(|i| i.stake == 0 && i.status == NodeStatus::Quit),
        "the cheater lost its stake: {info:?}"
    );
    let auditors = app.task(audit).await.expect("audit").nodes;
    assert!(auditors.iter().all(|a| !s.nodes.contains(a)));
    assert!(net.hydrogen.burned().await.expect("burned") > 0);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_node_misses_and_the_task_still_settles() {
    let Some((net, _dir)) = network("silent", &["burn", "burn", "fail"], 1).await else {
        return;
    };
    let silent = net.daemons[2].account();
    let app = net.app(0).await.expect("app");
    let done = generate(&net, &app, 13).await;

    let s = settlement(&net, &app, done.task_id).await;
    assert_eq!(s.missed, vec![silent], "{s:?}");
    assert!(s.slashed.is_empty(), "a local fault is never slashed");
    assert_eq!(s.paid.len(), 2);
    assert_eq!(
        s.paid.values().sum::<Balance>() + s.refunded,
        FEE,
        "the silent node's share goes back to the app"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_task_resumes_and_finishes_honestly() {
    let Some((mut net, _dir)) = network("killed", &["burn", "burn", "burn"], 1).await else {
        return;
    };
    // Node 0 dies right after it committed (the crash point exits the
    // process like a kill -9), then comes back.
    restart_with(&mut net, 0, &[("HYDROGEN_NODE_CRASH_AT", "committed")]).await;
    let app = net.app(0).await.expect("app");
    let task = generate_in_background(&app, 17);
    exits_failing(&mut net, 0, Duration::from_secs(180), "the crash point").await;
    net.daemons[0].start(&[]).expect("restart");

    let done = task
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{e}\n{}", net.logs()));
    // The other two may settle the task before the restarted node reveals;
    // its late, agreeing reveal is paid when it lands.
    let node0 = net.daemons[0].account();
    let s = verdict_of(&net, &app, done.task_id, node0).await;
    assert!(
        s.paid.contains_key(&node0),
        "the restarted node was paid: {s:?}\n{}",
        net.logs()
    );
    assert!(s.slashed.is_empty() && s.missed.is_empty(), "{s:?}");
    net.shutdown().await;
}

/// Polls `daemon`'s log until it contains `needle`, for up to `within`.
async fn log_shows(daemon: &localnet::Daemon, needle: &str, within: Duration) -> bool {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if daemon.log().contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Stops daemon `i` (SIGKILL) and starts it again with `env` (a crash
/// point, a limit).
async fn restart_with(net: &mut LocalNet, i: usize, env: &[(&str, &str)]) {
    net.daemons[i].kill().await;
    net.daemons[i].start(env).expect("restart");
}

/// Waits up to `within` for daemon `i` to exit on its own (a crash point, a
/// second signal) and asserts that it failed; `what` names the expectation.
async fn exits_failing(net: &mut LocalNet, i: usize, within: Duration, what: &str) {
    let exit = tokio::time::timeout(within, net.daemons[i].wait_exit())
        .await
        .unwrap_or_else(|_| panic!("{what}: no exit within {within:?}"));
    assert!(exit.is_some_and(|s| !s.success()), "{what}: {exit:?}");
}

/// `app.generate` of a tiny task, in the background.
fn generate_in_background(
    app: &Client,
    seed: u64,
) -> tokio::task::JoinHandle<Result<Generated, AppError>> {
    let app = app.clone();
    tokio::spawn(async move { app.generate(&task(seed), options()).await })
}

/// The task's settlement once `node`'s verdict (paid, slashed or missed)
/// is in: a node that came back late reveals after the other two settled.
async fn verdict_of(net: &LocalNet, app: &Client, task_id: TaskId, node: AccountId) -> Settlement {
    let mut s = settlement(net, app, task_id).await;
    for _ in 0..60 {
        if s.paid.contains_key(&node) || s.slashed.contains(&node) || s.missed.contains(&node) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        s = settlement(net, app, task_id).await;
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_twice_mid_generation_exits_at_once_and_the_task_resumes() {
    let Some((mut net, _dir)) = network("sigint", &["slow", "burn", "burn"], 1).await else {
        return;
    };
    let app = net.app(0).await.expect("app");
    let task = generate_in_background(&app, 23);
    // The slow engine takes a second a step: node 0 is mid-generation.
    assert!(
        log_shows(
            &net.daemons[0],
            "arguments_fetched",
            Duration::from_secs(120)
        )
        .await,
        "node 0 started generating\n{}",
        net.logs()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The first Ctrl-C is acknowledged in the log while the engine runs.
    net.daemons[0].signal("INT");
    assert!(
        log_shows(
            &net.daemons[0],
            "stopping: finishing",
            Duration::from_secs(2)
        )
        .await,
        "the first signal was acknowledged at once\n{}",
        net.daemons[0].log()
    );
    // The second exits at once, with the generation unfinished.
    net.daemons[0].signal("INT");
    exits_failing(&mut net, 0, Duration::from_secs(3), "the second signal").await;
    assert!(net.daemons[0].log().contains("second signal: exiting now"));
    // Restarted, it picks the task up where it stood and is paid for it.
    net.daemons[0].start(&[]).expect("restart");
    let done = task
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{e}\n{}", net.logs()));
    let node0 = net.daemons[0].account();
    let s = verdict_of(&net, &app, done.task_id, node0).await;
    assert!(
        s.paid.contains_key(&node0),
        "the restarted node finished the task and was paid: {s:?}\n{}",
        net.logs()
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_too_large_for_the_node_is_declined_without_a_crash() {
    let Some((mut net, _dir)) = network("too-large", &["burn", "burn", "burn"], 1).await else {
        return;
    };
    // Node 0 may spend 1 MB on a generation: less than the tiny model's weights.
    restart_with(&mut net, 0, &[("HYDROGEN_NODE_MEMORY_LIMIT_MB", "1")]).await;
    let app = net.app(0).await.expect("app");
    let done = generate(&net, &app, 31).await;
    assert!(
        log_shows(
            &net.daemons[0],
            "this node allows 1 MB",
            Duration::from_secs(30)
        )
        .await,
        "{}",
        net.daemons[0].log()
    );
    assert!(net.daemons[0].is_running(), "{}", net.daemons[0].log());
    assert_eq!(done.images.len(), 1);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_died_generating_a_task_does_not_retry_into_the_same_crash() {
    let Some((mut net, _dir)) = network("oom", &["burn", "burn", "burn"], 1).await else {
        return;
    };
    // Node 0 dies at its first denoising step, as under the kernel's OOM
    // killer, and the cause is still there when it comes back.
    let crash = [("HYDROGEN_NODE_CRASH_AT", "generating")];
    restart_with(&mut net, 0, &crash).await;
    let app = net.app(0).await.expect("app");
    let task = generate_in_background(&app, 29);
    exits_failing(
        &mut net,
        0,
        Duration::from_secs(180),
        "died while generating",
    )
    .await;
    net.daemons[0].start(&crash).expect("restart");
    // The other two settle the task; node 0 gives it up instead of dying again.
    let done = task
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{e}\n{}", net.logs()));
    assert!(
        log_shows(
            &net.daemons[0],
            "not trying it again",
            Duration::from_secs(30)
        )
        .await,
        "{}",
        net.daemons[0].log()
    );
    assert!(net.daemons[0].is_running(), "{}", net.daemons[0].log());
    assert!(!done.nodes.is_empty());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_restart_mid_task_loses_nothing() {
    let Some((mut net, _dir)) = network("relay-restart", &["burn", "burn", "burn"], 1).await else {
        return;
    };
    let app = net.app(0).await.expect("app");
    let pending = app
        .submit(&task(19), FEE, Duration::from_secs(30))
        .await
        .expect("submit");
    // The arguments are stored; the relay goes away while the nodes work.
    net.stop_relay().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    net.start_relay()
        .await
        .expect("relay back on the same port");
    let settled = app
        .wait(&pending, Duration::from_secs(300))
        .await
        .expect("wait");
    let hydrogen_sdk::app::Settled::Completed(task) = settled else {
        panic!("not completed: {settled:?}\n{}", net.logs());
    };
    let done = app.download(&task).await.expect("verified images");
    assert_eq!(done.images.len(), 1);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_arguments_are_refused_and_refunded() {
    let Some((net, _dir)) = network("invalid", &["burn", "burn", "burn"], 1).await else {
        return;
    };
    let app = net.app(0).await.expect("app");
    let before = app.balance().await.expect("balance");
    let mut args = task(23);
    args.task_config.steps = 0;
    let err = app.generate(&args, options()).await.unwrap_err();
    assert!(
        matches!(err, AppError::Task(_)) && err.to_string().contains("task_config.steps"),
        "{err}"
    );
    assert_eq!(
        app.balance().await.expect("balance"),
        before,
        "nothing was charged"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_apps_and_several_tasks_at_once() {
    let Some((net, _dir)) = network("concurrent", &["burn", "burn", "burn"], 2).await else {
        return;
    };
    let apps = [
        net.app(0).await.expect("app"),
        net.app(1).await.expect("app"),
    ];
    let runs = (0..4).map(|i| {
        let app = apps[i % 2].clone();
        async move { app.generate(&task(100 + i as u64), options()).await }
    });
    let results = futures::future::join_all(runs).await;
    let mut ids = Vec::new();
    for r in results {
        let done = r.unwrap_or_else(|e| panic!("{e}\n{}", net.logs()));
        assert_eq!(done.images.len(), 1);
        ids.push(done.task_id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four distinct tasks");
    net.shutdown().await;
}

/// Finding 4 of the consensus review: a task no selected node can run (each
/// has a local fault — a model it lacks, say) and whose app went away must
/// not lock the nodes or cost them a miss: past the deadline the daemons
/// settle it themselves, nobody is missed, and the fee comes back.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_nobody_can_run_frees_its_nodes_without_misses() {
    let Some((net, _dir)) = network("unrunnable", &["fail", "fail", "fail"], 1).await else {
        return;
    };
    let app = net.app(0).await.expect("app");
    let before = app.balance().await.expect("balance");
    let err = app
        .generate(&task(29), options())
        .await
        .expect_err("nobody can run it");
    // The app says who was selected and that none of them committed.
    let AppError::Aborted {
        task_id,
        reason,
        nodes,
        someone_committed,
        ..
    } = &err
    else {
        panic!("{err}\n{}", net.logs());
    };
    assert_eq!(*reason, AbortReason::Timeout, "{err}");
    assert_eq!(nodes.len(), 3);
    assert!(!someone_committed);
    let message = err.to_string();
    assert!(message.contains("none of the selected nodes"), "{message}");
    assert!(message.contains(&ss58(&nodes[0])), "{message}");
    wait_final(&net, &app, *task_id).await;
    for d in &net.daemons {
        let info = net.hydrogen.node_info(d.account()).await.expect("node");
        let info = info.expect("joined");
        assert_eq!(
            (info.status, info.missed),
            (NodeStatus::Available, 0),
            "{}",
            net.logs()
        );
    }
    assert_eq!(
        app.balance().await.expect("balance"),
        before,
        "refunded in full"
    );
    net.shutdown().await;
}

/// Finding 6 of the consensus review, end to end: the designated uploader
/// withholds the images (a test switch in the real daemon). It is not paid;
/// past the upload deadline the other agreeing node takes over, uploads
/// against the relay's receipt and earns the uploader's share, and the app
/// gets its images.
#[tokio::test(flavor = "multi_thread")]
async fn a_withholding_uploader_is_replaced_and_the_app_still_gets_its_images() {
    let Some(url) = shared_node().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut network = Options::new("e2e/withhold", dir.path(), 3);
    network.daemon_env = vec![("HYDROGEN_TEST_WITHHOLD_UPLOAD".into(), "1".into())];
    let net = LocalNet::start(&url, &bundle_path(), network)
        .await
        .unwrap_or_else(|e| panic!("local network: {e}"));
    let app = net.app(0).await.expect("app");
    let done = match app.generate(&task(31), options()).await {
        Ok(done) => done,
        Err(e) => panic!("generate: {e}\n{}", net.logs()),
    };
    let s = settlement(&net, &app, done.task_id).await;
    assert_eq!(s.missed.len(), 1, "the withholding uploader: {s:?}");
    let withholder = s.missed[0];
    assert_ne!(done.uploader, withholder, "a stand-in uploaded");
    assert!(!s.paid.contains_key(&withholder), "{s:?}");
    // Its own share and the missing uploader's: more than any one share
    // (the smallest pair is 9 + 6 units of 25, the largest share 10).
    assert!(
        s.paid[&done.uploader] > fee_share(FEE, 0),
        "the stand-in earns its own share and the uploader's: {s:?}"
    );
    assert_eq!(s.paid.values().sum::<Balance>() + s.refunded, FEE, "{s:?}");
    net.shutdown().await;
}

/// Every node paid, none slashed or missed: the three agreed.
async fn assert_all_agreed(net: &LocalNet, app: &Client, task_id: TaskId) {
    let s = settlement(net, app, task_id).await;
    assert!(
        s.slashed.is_empty() && s.missed.is_empty(),
        "{s:?}\n{}",
        net.logs()
    );
    assert_eq!(s.paid.len(), 3, "{s:?}");
}

/// A LoRA by URL, served by a real web server on loopback the way Civitai
/// serves them (`/api/download/models/<id>`), and an LCM task: each node
/// downloads the LoRA into its cache, merges it into the tiny model and
/// agrees with the others; the LoRA changes the image. The same for a
/// textual inversion with a weighted prompt and a VAE. A node that cannot
/// fetch a LoRA stays silent and the task settles without it.
#[tokio::test(flavor = "multi_thread")]
async fn a_lora_by_url_and_an_lcm_task_run_and_agree() {
    if !nginx::installed() {
        eprintln!("skipped: nginx is not installed (scripts/install.sh installs it)");
        return;
    }
    let Some((mut net, dir)) = network("lora", &["burn", "burn", "burn"], 1).await else {
        return;
    };
    let site = dir.path().join("site");
    let lora_path = site.join("www/api/download/models/7");
    std::fs::create_dir_all(lora_path.parent().expect("parent")).expect("site dir");
    let tiny_lora = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../offchain-node/engine/tests/data/lora/kohya.safetensors");
    std::fs::copy(&tiny_lora, &lora_path).expect("the tiny LoRA");
    let server = Nginx::static_files(&site);
    let app = net.app(0).await.expect("app");

    let plain = match app.generate(&localnet::tiny_task(41, 4), options()).await {
        Ok(done) => done,
        Err(e) => panic!("plain tiny task: {e}\n{}", net.logs()),
    };
    let mut args = localnet::tiny_task(41, 4);
    args.lora = Some(Lora {
        model: format!("{}/api/download/models/7", server.url()),
        weight_file_name: String::new(),
        weight: Strength::Integer(80),
    });
    let with_lora = match app.generate(&args, options()).await {
        Ok(done) => done,
        Err(e) => panic!("LoRA task: {e}\n{}", net.logs()),
    };
    assert_all_agreed(&net, &app, with_lora.task_id).await;
    assert_ne!(with_lora.images, plain.images, "the LoRA changed the image");

    // The reference's LCM-LoRA recipe: the LoRA, LCMScheduler, few steps, cfg 1.
    let mut lcm = localnet::tiny_task(43, 4);
    lcm.scheduler.method = SchedulerMethod::Lcm;
    lcm.task_config.cfg = 1.0;
    lcm.lora = args.lora.clone();
    let done = match app.generate(&lcm, options()).await {
        Ok(done) => done,
        Err(e) => panic!("LCM task: {e}\n{}", net.logs()),
    };
    assert_all_agreed(&net, &app, done.task_id).await;

    // A textual inversion by URL with its token in a weighted prompt, and a
    // VAE named by id (the tiny model's own folder, a pipeline with `vae/`).
    let ti_fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../offchain-node/engine/tests/data/textual_inversion/emb_params.safetensors");
    std::fs::copy(&ti_fixture, site.join("www/api/download/models/9")).expect("the tiny TI");
    let mut ti = localnet::tiny_task(45, 4);
    ti.prompt = "a emb_params lighthouse, (stormy sea)1.3, fog-".into();
    ti.textual_inversion = format!("{}/api/download/models/9", server.url());
    ti.vae = localnet::TINY_MODEL.into();
    let done = match app.generate(&ti, options()).await {
        Ok(done) => done,
        Err(e) => panic!("textual inversion task: {e}\n{}", net.logs()),
    };
    assert_all_agreed(&net, &app, done.task_id).await;

    // A node that cannot have the LoRA (here: task URLs into its own network
    // are off, its default) stays silent; the task settles with the others.
    restart_with(
        &mut net,
        0,
        &[("HYDROGEN_NODE_SOURCES__ALLOW_PRIVATE_URLS", "false")],
    )
    .await;
    std::fs::copy(&tiny_lora, site.join("www/api/download/models/8")).expect("another URL");
    let mut refused = localnet::tiny_task(47, 4);
    refused.lora = Some(Lora {
        model: format!("{}/api/download/models/8", server.url()),
        weight_file_name: String::new(),
        weight: Strength::Integer(60),
    });
    let done = match app.generate(&refused, options()).await {
        Ok(done) => done,
        Err(e) => panic!("LoRA task with one node refusing: {e}\n{}", net.logs()),
    };
    let s = settlement(&net, &app, done.task_id).await;
    assert_eq!(s.missed, vec![net.daemons[0].account()], "{s:?}");
    assert!(
        s.slashed.is_empty(),
        "a model a node cannot fetch is never slashed"
    );
    assert_eq!(s.paid.len(), 2, "{s:?}");
    assert!(
        net.daemons[0].log().contains("sources.allow_private_urls"),
        "the node says why it stayed silent"
    );
    net.shutdown().await;
}

/// The web UI's control on a real chain: `POST /control/pause` with the
/// daemon's control token pauses the node on chain, `/control/resume` makes
/// it available again; without the token nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_control_pauses_and_resumes_the_node_on_chain() {
    let Some((mut net, _dir)) = network("web_control", &["burn"], 0).await else {
        return;
    };
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("its address").to_string()
    };
    let token = "e2e-control-token-0123456789";
    restart_with(
        &mut net,
        0,
        &[
            ("HYDROGEN_NODE_HTTP_LISTEN", &listen),
            ("HYDROGEN_NODE_CONTROL_TOKEN", token),
        ],
    )
    .await;
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let node = net.daemons[0].account();
    let on_chain = |net: &LocalNet| {
        let hydrogen = net.hydrogen.clone();
        async move {
            hydrogen
                .node_info(node)
                .await
                .expect("node")
                .expect("joined")
                .status
        }
    };
    let until = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let running = match http.get(format!("{base}/status")).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .is_some_and(|s| s["daemon"] == "running"),
            Err(_) => false,
        };
        if running {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "no status server\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(on_chain(&net).await, NodeStatus::Available);

    let refused = http
        .post(format!("{base}/control/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(on_chain(&net).await, NodeStatus::Available);

    for (action, expected) in [
        ("pause", NodeStatus::Paused),
        ("resume", NodeStatus::Available),
    ] {
        let response = http
            .post(format!("{base}/control/{action}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let code = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(code, 200, "{action}: {body}\n{}", net.logs());
        assert_eq!(body["ok"], true, "{body}");
        assert_eq!(body["node_status"], format!("{expected:?}"), "{body}");
        assert_eq!(on_chain(&net).await, expected, "{action}");
    }
    // The daemon logged the actions, and /logs shows them.
    let logs: serde_json::Value = http
        .get(format!("{base}/logs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lines = logs["lines"].to_string();
    assert!(
        lines.contains("control: done") && lines.contains("pause"),
        "{lines}"
    );
    net.shutdown().await;
}
