//! `hydrogen-localnet`: the whole network on this machine, one task through
//! it, and the images on disk. `scripts/run.sh` builds and runs it.
//!
//! Starts a dev chain in a temporary directory, deploys the contract, starts
//! the relay and three node daemons (on the small model trained to draw
//! shapes, `offchain-node/engine/shapes`, or on the models directory given), submits one task through the SDK and writes the
//! PNGs and `summary.json` to the output directory. Ctrl-C (or the end of
//! the task) stops everything it started.
//!
//! With `--web` it submits nothing: it serves the bridge's Image Generator
//! (`hydrogen-bridge serve`, paying from the network's funded app account)
//! and each node's web UI, prints their URLs (the generator's with an API
//! key in its fragment, the nodes' with their control token) and runs until
//! Ctrl-C.

use clap::Parser;
use hydrogen_sdk::app::{GenerateOptions, TaskUpdate};
use hydrogen_sdk::chain::ss58;
use hydrogen_sdk::task::TaskArgs;
use hydrogen_sdk::types::{distances, Event, Outcome, UNIT};
use hydrogen_tests::bridge_process::BridgeProcess;
use hydrogen_tests::localnet::{LocalNet, Options, APP_TOKENS, SHAPES_MODEL, SHAPES_PROMPT};
use hydrogen_tests::{bundle_path, spawn_dev_node, stop_node_at_exit};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Where the PNGs and summary.json go.
    #[arg(long, default_value = "hydrogen-output")]
    out: PathBuf,
    /// A models directory in the node layout (`<dir>/<model id>/unet/...`)
    /// for real images; the trained small model (and the tiny random one) otherwise.
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// The model id to run (a folder under --models-dir).
    #[arg(long, default_value = SHAPES_MODEL)]
    model: String,
    #[arg(long, default_value = SHAPES_PROMPT)]
    prompt: String,
    #[arg(long, default_value = "")]
    negative_prompt: String,
    /// Image width and height (multiples of 8).
    #[arg(long, default_value_t = 64)]
    size: u32,
    #[arg(long, default_value_t = 20)]
    steps: u32,
    /// Classifier-free guidance scale (the task's `cfg`).
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    #[arg(long, default_value_t = 1)]
    num_images: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Node daemons to start.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Backend of the node daemons: cpu, wgpu, wgpu-cpu.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Files of the run (configs, keys, databases, logs); a temporary
    /// directory, removed at the end, when not given.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Submit nothing: serve the Image Generator (the HTTP bridge, paying
    /// from the app account) and each node's web UI until Ctrl-C, and print
    /// their URLs. The bridge's default model is --model.
    #[arg(long)]
    web: bool,
    /// Where the bridge listens with --web.
    #[arg(long, default_value = "127.0.0.1:8780")]
    bridge_listen: SocketAddr,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let tmp;
    let work_dir = match &cli.work_dir {
        Some(dir) => dir.clone(),
        None => {
            tmp = tempfile::tempdir().expect("a temporary directory");
            tmp.path().to_path_buf()
        }
    };
    let outcome = if cli.web {
        // Ctrl-C is how this mode ends: it stops what it started itself.
        run_web(&cli, &work_dir).await
    } else {
        tokio::select! {
            outcome = run(&cli, &work_dir) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    };
    // Dropping what `run` started (chain, relay, daemons) has stopped it.
    if let Err(e) = outcome {
        eprintln!("hydrogen-localnet: {e}");
        eprintln!("(logs were in {})", work_dir.display());
        std::process::exit(1);
    }
}

async fn run(cli: &Cli, work_dir: &std::path::Path) -> hydrogen_tests::localnet::Result<()> {
    let t0 = Instant::now();
    let chain = spawn_dev_node().await?;
    let _watchdog = stop_node_at_exit(&chain)?;
    println!(
        "chain      {} ({:.1} s)",
        chain.url(),
        t0.elapsed().as_secs_f64()
    );

    let mut options = Options::new("localnet", work_dir, cli.nodes);
    options.models_dir = cli.models_dir.clone();
    options.backend = cli.backend.clone();
    let t1 = Instant::now();
    let net = LocalNet::start(chain.url(), &bundle_path(), options).await?;
    println!(
        "network    contract {}, relay {}, {} nodes joined ({:.1} s)",
        ss58(&net.hydrogen.address()),
        net.relay_url(),
        net.daemons.len(),
        t1.elapsed().as_secs_f64()
    );

    let result = submit(cli, &net).await;
    if result.is_err() {
        eprintln!("{}", net.logs());
    }
    net.shutdown().await;
    result
}

/// `--web`: the network, the bridge and the node UIs until Ctrl-C.
async fn run_web(cli: &Cli, work_dir: &Path) -> hydrogen_tests::localnet::Result<()> {
    // Interrupted while starting, dropping the future stops what it started.
    let (chain, watchdog, net, mut bridge) = tokio::select! {
        started = start_web(cli, work_dir) => started?,
        _ = tokio::signal::ctrl_c() => return Err("interrupted".into()),
    };
    println!();
    println!("Press Ctrl-C to stop.");
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        status = bridge.exited() => Err(format!(
            "the bridge exited ({status:?}); its log:\n{}",
            bridge.log()
        )
        .into()),
    };
    println!();
    println!("stopping");
    bridge.stop().await;
    net.shutdown().await;
    drop(watchdog);
    drop(chain);
    outcome
}

type Web = (
    hydrogen_sdk::chain::devnode::DevNode,
    std::process::ChildStdin,
    LocalNet,
    BridgeProcess,
);

async fn start_web(cli: &Cli, work_dir: &Path) -> hydrogen_tests::localnet::Result<Web> {
    let t0 = Instant::now();
    let chain = spawn_dev_node().await?;
    let watchdog = stop_node_at_exit(&chain)?;
    println!(
        "chain      {} ({:.1} s)",
        chain.url(),
        t0.elapsed().as_secs_f64()
    );
    let control_token = random_hex(16)?;
    let mut options = Options::new("localnet", work_dir, cli.nodes);
    options.models_dir = cli.models_dir.clone();
    options.backend = cli.backend.clone();
    options.web_ui = Some(control_token.clone());
    let t1 = Instant::now();
    let net = LocalNet::start(chain.url(), &bundle_path(), options).await?;
    let contract = ss58(&net.hydrogen.address());
    println!(
        "network    contract {contract}, relay {}, {} nodes joined ({:.1} s)",
        net.relay_url(),
        net.daemons.len(),
        t1.elapsed().as_secs_f64()
    );

    // The bridge pays from the app account LocalNet funded (native funds
    // for fees, APP_TOKENS for task fees).
    let mut bridge = BridgeProcess::start(
        &net,
        &work_dir.join("bridge"),
        cli.bridge_listen,
        &cli.model,
        None,
        &[],
    )
    .await?;
    let network = bridge.wait_ready().await?;
    let (base, api_key, account) = (bridge.url(), bridge.api_key.clone(), bridge.account.clone());
    println!(
        "bridge     {base}, paying from {account} ({}; minted {} HYD), log {}",
        network["balance_tokens"].as_str().unwrap_or("?"),
        APP_TOKENS / UNIT,
        bridge.dir.join("bridge.log").display()
    );
    println!();
    println!("Image Generator   {base}/#key={api_key}");
    println!("HTTP API          {base}/v1  (Authorization: Bearer {api_key}; bridge/README.md)");
    for (i, daemon) in net.daemons.iter().enumerate() {
        println!(
            "node {i} web UI     {}  (control token {control_token})",
            daemon.web_url().unwrap_or_default()
        );
    }
    Ok((chain, watchdog, net, bridge))
}

/// `bytes` random bytes from the kernel, in hex.
fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = vec![0; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(hex::encode(buf))
}

async fn submit(cli: &Cli, net: &LocalNet) -> hydrogen_tests::localnet::Result<()> {
    let app = net.app(0).await?;
    let mut args = TaskArgs::new(cli.model.clone(), cli.prompt.clone());
    args.negative_prompt = cli.negative_prompt.clone();
    args.task_config.image_width = cli.size;
    args.task_config.image_height = cli.size;
    args.task_config.steps = cli.steps;
    args.task_config.cfg = cli.guidance;
    args.task_config.num_images = cli.num_images;
    args.task_config.seed = cli.seed;
    args.validate()?;
    let before = app.balance().await?;

    let t = Instant::now();
    let fee = app.default_fee(&args).await?;
    let pending = app
        .submit(&args, fee, GenerateOptions::default().upload_timeout)
        .await?;
    println!(
        "task       #{} created, fee {} tokens",
        pending.task_id,
        fee / UNIT
    );
    let reveals_seen = Arc::new(Mutex::new(Vec::new()));
    let printer = {
        let updates = app.updates(&pending, None).await?;
        tokio::spawn(print_updates(updates, reveals_seen.clone()))
    };
    let settled = app
        .wait(&pending, GenerateOptions::default().queue_timeout)
        .await;
    // The printer reads the same finalized blocks; give it a moment to
    // reach the last one before it stops.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    printer.abort();
    let task = match settled? {
        hydrogen_sdk::app::Settled::Completed(task) => task,
        hydrogen_sdk::app::Settled::Aborted {
            reason, refunded, ..
        } => {
            return Err(format!("the task aborted ({reason:?}); {refunded} refunded").into());
        }
    };
    let generated = app.download(&task).await?;
    let elapsed = t.elapsed();

    std::fs::create_dir_all(&cli.out)?;
    let mut files = Vec::new();
    for (i, png) in generated.images.iter().enumerate() {
        let path = cli.out.join(format!("task-{}-{i}.png", task.id));
        std::fs::write(&path, png)?;
        files.push(path.display().to_string());
    }
    let mut reveals = Vec::new();
    let seen = reveals_seen.lock().expect("not poisoned").clone();
    for (block, index) in seen {
        let reveal = net
            .client
            .reveal_at(&net.hydrogen.address(), block, index)
            .await?;
        if let Outcome::Images(result) = reveal.outcome {
            reveals.push((reveal.node, result));
        }
    }
    let phashes: Vec<_> = reveals
        .iter()
        .map(|(node, result)| json!({ "node": ss58(node), "phashes": hex::encode(result) }))
        .collect();
    let mut pairs = Vec::new();
    for (i, (a_node, a)) in reveals.iter().enumerate() {
        for (b_node, b) in reveals.iter().skip(i + 1) {
            pairs.push(json!({
                "nodes": [ss58(a_node), ss58(b_node)],
                "bits": distances(a, b),
            }));
        }
    }
    let mut payouts = Vec::new();
    for node in &task.nodes {
        payouts.push(json!({
            "node": ss58(node),
            "balance": net.hydrogen.balance_of(*node).await?,
        }));
    }
    let summary = json!({
        "task_id": task.id,
        "model": cli.model,
        "prompt": cli.prompt,
        "fee": task.fee,
        "app_paid": before.saturating_sub(app.balance().await?),
        "nodes": task.nodes.iter().map(ss58).collect::<Vec<_>>(),
        "uploader": ss58(&generated.uploader),
        "accepted_result": hex::encode(&generated.result),
        "revealed": phashes,
        "distances": pairs,
        "node_token_balances": payouts,
        "seconds_submit_to_images": elapsed.as_secs_f64(),
        "images": files,
    });
    let summary_path = cli.out.join("summary.json");
    std::fs::write(&summary_path, serde_json::to_string_pretty(&summary)?)?;
    println!(
        "done       {} image(s) in {:.1} s → {}",
        files.len(),
        elapsed.as_secs_f64(),
        summary_path.display()
    );
    println!("{}", serde_json::to_string_pretty(&summary)?);
    for file in &files {
        println!("image      {file}  ← {:?}", cli.prompt);
    }
    Ok(())
}

/// Prints the task's events as they finalize and notes where reveals are.
async fn print_updates(
    updates: impl futures::Stream<Item = Result<TaskUpdate, hydrogen_sdk::chain::ChainError>>,
    reveals: Arc<Mutex<Vec<(u64, u32)>>>,
) {
    use futures::StreamExt;
    let mut updates = std::pin::pin!(updates);
    while let Some(Ok(update)) = updates.next().await {
        if let (Event::ResultRevealed { .. }, Some(index)) = (&update.event, update.extrinsic_index)
        {
            reveals
                .lock()
                .expect("not poisoned")
                .push((update.block_number, index));
        }
        let line = match &update.event {
            Event::NodeSelected { node, .. } => format!("selected   {}", ss58(node)),
            Event::CommitmentsReady { .. } => "committed  all three nodes".into(),
            Event::ResultRevealed { node, .. } => format!("revealed   {}", ss58(node)),
            Event::TaskSucceeded { uploader, .. } => {
                format!("agreed     uploader {}", ss58(uploader))
            }
            Event::ResultsUploaded { .. } => "uploaded   images on the relay".into(),
            Event::NodePaid { node, amount, .. } => {
                format!(
                    "paid       {} {:.2} tokens",
                    ss58(node),
                    *amount as f64 / UNIT as f64
                )
            }
            Event::NodeSlashed { node, .. } => format!("slashed    {}", ss58(node)),
            Event::NodeMissed { node, .. } => format!("missed     {}", ss58(node)),
            other => format!("event      {other:?}"),
        };
        println!("  #{:<6} {line}", update.block_number);
    }
}
