//! The whole network's speed on this machine: a real dev chain, relay and
//! `hydrogen-node` daemons on the trained small model (see `hydrogen_tests::localnet`).
//!
//! 1. Protocol overhead: 20 tasks one after another through
//!    `Client::generate`; for each, the time from the call to verified
//!    images minus the slowest selected node's generation time (from the
//!    daemons' own "generated ... seconds=" log lines, measured in the same
//!    run). Median and p95.
//! 2. Throughput: with 3, 6 and 12 nodes, as many tasks as nodes × 2
//!    submitted at once by two apps; tasks per minute from the first
//!    submission to the last verified download.
//!
//! `cargo bench -p hydrogen-tests --bench network` (needs the contract bundle
//! and `hydrogen-node` built: `cargo build -p hydrogen-node`). Env:
//! `HYDROGEN_BENCH_TASKS` (20), `HYDROGEN_BENCH_NODES` ("3,6,12").

use hydrogen_sdk::app::{GenerateOptions, Generated};
use hydrogen_sdk::task::TaskArgs;
use hydrogen_sdk::types::UNIT;
use hydrogen_tests::localnet::{self, LocalNet, Options};
use hydrogen_tests::{bundle_path, shared_node};
use std::time::Instant;

fn task(seed: u64) -> TaskArgs {
    localnet::shapes_task(seed, 8)
}

fn options() -> GenerateOptions {
    GenerateOptions {
        fee: Some(UNIT),
        ..GenerateOptions::default()
    }
}

/// Seconds each daemon spent generating `task_id`, from its log.
fn generation_seconds(net: &LocalNet, task_id: u64) -> Vec<f64> {
    let needle = format!("task={task_id} ");
    net.daemons
        .iter()
        .filter_map(|d| {
            strip_ansi(&d.log())
                .lines()
                .filter(|l| l.contains(" generated") && l.contains(&needle))
                .filter_map(|l| {
                    let rest = &l[l.find("seconds=")? + "seconds=".len()..];
                    rest.split_whitespace().next()?.parse::<f64>().ok()
                })
                .next_back()
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let Some(url) = shared_node().await else {
        return;
    };
    let tasks: usize = std::env::var("HYDROGEN_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let node_counts: Vec<usize> = std::env::var("HYDROGEN_BENCH_NODES")
        .unwrap_or_else(|_| "3,6,12".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();

    // 1. Overhead, one task at a time on three nodes.
    let dir = tempfile::tempdir().expect("temporary directory");
    let net = LocalNet::start(
        &url,
        &bundle_path(),
        Options::new("bench/overhead", dir.path(), 3),
    )
    .await
    .expect("local network");
    let app = net.app(0).await.expect("app");
    let (mut totals, mut overheads, mut gens) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..tasks {
        let t = Instant::now();
        let done: Generated = app
            .generate(&task(1000 + i as u64), options())
            .await
            .unwrap_or_else(|e| panic!("task {i}: {e}\n{}", net.logs()));
        let total = t.elapsed().as_secs_f64();
        // The daemons log right after generating; the log is written by now.
        let generation = generation_seconds(&net, done.task_id)
            .into_iter()
            .fold(0.0, f64::max);
        totals.push(total);
        gens.push(generation);
        overheads.push(total - generation);
    }
    net.shutdown().await;
    for v in [&mut totals, &mut overheads, &mut gens] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "protocol overhead, {tasks} tasks in a row, 3 nodes, trained small model 64x64, 8 steps:"
    );
    println!("| | median s | p95 s |");
    println!("|---|---:|---:|");
    for (name, v) in [
        ("generate() to verified images", &totals),
        ("slowest node's generation", &gens),
        ("overhead (difference)", &overheads),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} |",
            percentile(v, 0.5),
            percentile(v, 0.95)
        );
    }

    // 2. Throughput with more nodes and many tasks at once.
    println!();
    println!("throughput, 2 apps submitting nodes x 2 tasks at once:");
    println!("| nodes | tasks | seconds | tasks/min | median task s |");
    println!("|---:|---:|---:|---:|---:|");
    for &nodes in &node_counts {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut net_options = Options::new(&format!("bench/throughput{nodes}"), dir.path(), nodes);
        net_options.apps = 2;
        let net = LocalNet::start(&url, &bundle_path(), net_options)
            .await
            .expect("local network");
        let apps = [
            net.app(0).await.expect("app"),
            net.app(1).await.expect("app"),
        ];
        let count = nodes * 2;
        let t = Instant::now();
        let runs = (0..count).map(|i| {
            let app = apps[i % 2].clone();
            async move {
                let t = Instant::now();
                app.generate(&task(5000 + i as u64), options())
                    .await
                    .map(|_| t.elapsed().as_secs_f64())
            }
        });
        let mut each: Vec<f64> = futures::future::join_all(runs)
            .await
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{e}\n{}", net.logs())))
            .collect();
        let seconds = t.elapsed().as_secs_f64();
        each.sort_by(f64::total_cmp);
        println!(
            "| {nodes} | {count} | {seconds:.1} | {:.1} | {:.1} |",
            count as f64 * 60.0 / seconds,
            percentile(&each, 0.5)
        );
        net.shutdown().await;
    }
}
