//! The relay against nginx on loopback: downloads and uploads of 1 MiB PNGs
//! at 1, 16 and 64 concurrent clients, in the same run, on the same files.
//!
//! The relay runs in-process on a real dev node with the contract deployed,
//! so every request takes the real path: sr25519 signature check, replay
//! guard, permission from the task read at the finalized block (cached
//! for a second), the store on local disk; every upload is a distinct task
//! that has reached consensus, whose PNG the relay decodes and pHashes. nginx
//! (Debian's `nginx-light`; `apt-get install -y nginx-light`) serves the
//! same PNG as a static file and takes uploads with WebDAV `PUT` (temporary
//! file, then rename: the same guarantee as the relay's store). Both are
//! driven by the same reqwest client code. Prints a table with ratios
//! relay/nginx.
//!
//! `cargo bench -p hydrogen-tests --features hydrogen-sdk/test-util --bench relay`
//! (`HYDROGEN_BENCH_QUICK=1`: fewer requests.)

use futures::future::join_all;
use hydrogen_relay::{Config, RunningRelay, StorageConfig};
use hydrogen_sdk::chain::Keypair;
use hydrogen_sdk::phash::phash_images;
use hydrogen_sdk::relay::RelayClient;
use hydrogen_sdk::types::{Outcome, Params, TaskId};
use hydrogen_tests::nginx::Nginx;
use hydrogen_tests::{Network, FEE};
use image::{ImageFormat, RgbImage};
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LEVELS: [usize; 3] = [1, 16, 64];

/// A noise PNG of about 1 MiB (noise does not compress) and its outcome.
fn noise_png() -> (Vec<u8>, Outcome) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let image = RgbImage::from_fn(592, 592, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    (png, Outcome::Images(phash_images([&image])))
}

/// Latencies and wall time of one run.
struct Run {
    latencies: Vec<Duration>,
    wall: Duration,
    bytes: usize,
}

impl Run {
    fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.wall.as_secs_f64()
    }
    fn quantile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1000.0
    }
}

/// Runs `jobs` through `clients` concurrent workers; each job is one request.
async fn drive<J, F, Fut>(clients: usize, jobs: Vec<J>, bytes_per_job: usize, work: F) -> Run
where
    J: Send + 'static,
    F: Fn(usize, J) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let n = jobs.len();
    let queue = Arc::new(Mutex::new(jobs));
    let work = Arc::new(work);
    let started = Instant::now();
    let workers = (0..clients).map(|c| {
        let (queue, work) = (queue.clone(), work.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let job = queue.lock().unwrap().pop();
                let Some(job) = job else { break };
                let t = Instant::now();
                work(c, job).await;
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let latencies: Vec<Duration> = join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    Run {
        wall: started.elapsed(),
        bytes: n * bytes_per_job,
        latencies,
    }
}

/// `count` one-image tasks that reached consensus on `outcome`, each with
/// its uploader's key.
async fn succeeded_tasks(
    net: &mut Network,
    count: usize,
    outcome: &Outcome,
) -> Vec<(TaskId, Keypair)> {
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(
            net.create_task_for([1; 32], 1, FEE)
                .await
                .expect("create_task")
                .value,
        );
    }
    let mut ready = Vec::new();
    let mut pending = ids;
    let mut contributor = 0;
    while !pending.is_empty() {
        let mut progressed = false;
        for &id in &pending.clone() {
            let task = net.task(id).await;
            if task.status == hydrogen_sdk::types::TaskStatus::Running {
                let up = net.succeed_task(id, outcome.clone()).await;
                ready.push((id, net.nodes[up].clone()));
                pending.retain(|&p| p != id);
                progressed = true;
            }
        }
        if !progressed {
            // Queued tasks wait for fresh entropy from two different nodes.
            for _ in 0..2 {
                let _ = net.contribute(contributor % net.nodes.len()).await;
                contributor += 1;
            }
        }
    }
    ready
}

/// This process's resident memory, KiB: `VmRSS` now or `VmHWM` (the peak
/// since [`reset_peak`]).
fn memory_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets `VmHWM` to the current resident size (Linux's `clear_refs` 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak memory a run added to this process, KiB.
async fn peak_added<F: std::future::Future<Output = Run>>(run: F) -> (Run, u64) {
    reset_peak();
    let before = memory_kib("VmRSS:");
    let run = run.await;
    (run, memory_kib("VmHWM:").saturating_sub(before))
}

struct Row {
    what: String,
    clients: usize,
    ours: Run,
    nginx: Run,
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| operation | clients | relay MiB/s | nginx MiB/s | ratio | relay p50 ms | nginx p50 ms | relay p99 ms | nginx p99 ms | ratio p99 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.what,
            r.clients,
            r.ours.mib_per_s(),
            r.nginx.mib_per_s(),
            r.ours.mib_per_s() / r.nginx.mib_per_s(),
            r.ours.quantile_ms(0.5),
            r.nginx.quantile_ms(0.5),
            r.ours.quantile_ms(0.99),
            r.nginx.quantile_ms(0.99),
            r.ours.quantile_ms(0.99) / r.nginx.quantile_ms(0.99),
        );
    }
    println!("(ratio = relay/nginx: throughput above 1 is better, latency below 1 is better; n = requests per row)");
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("HYDROGEN_BENCH_QUICK").is_ok_and(|v| v == "1");
    let downloads = if quick { 64 } else { 512 };
    let uploads: [usize; 3] = if quick { [8, 16, 64] } else { [32, 64, 64] };

    // Uploads pin their uploader until confirm_upload: 64 tasks at once
    // need 64 uploaders, plus two for the other votes.
    let Some(mut net) = Network::new(
        "relay-bench",
        Params {
            max_queue: 256,
            warmup_ms: 0,
            ..Params::default()
        },
        66,
    )
    .await
    else {
        eprintln!("relay bench skipped: no dev node or contract bundle");
        return;
    };
    // Fees for every task of the run.
    let tasks = 1 + uploads.iter().sum::<usize>();
    net.hydrogen
        .mint(&net.owner, net.creator_account(), tasks as u128 * FEE)
        .await
        .expect("mint");
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        net.client.url(),
        format!("0x{}", hex::encode(net.contract())),
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.storage = StorageConfig::Local {
        path: dir.path().join("relay"),
    };
    config.retention.sweep_interval_secs = 0;
    // One creator makes every download: measure the serving path, not the
    // per-account rate limit.
    config.auth.requests_per_second = 1_000_000;
    config.auth.burst = 1_000_000;
    let relay: RunningRelay = hydrogen_relay::start(config).await.expect("relay");
    let nginx = Nginx::static_files(&dir.path().join("nginx"));
    let (png, outcome) = noise_png();
    println!("PNG: {} bytes", png.len());
    std::fs::write(dir.path().join("nginx/www/image.png"), &png).unwrap();
    let http = reqwest::Client::new();
    let mut rows = Vec::new();

    // The downloaded task: uploaded once, read many times by its creator.
    let (id, uploader) = succeeded_tasks(&mut net, 1, &outcome).await.remove(0);
    RelayClient::new(&relay.url(), uploader.clone())
        .unwrap()
        .upload_images(id, std::slice::from_ref(&png))
        .await
        .expect("upload");
    net.hydrogen
        .confirm_upload(&uploader, id, None)
        .await
        .expect("confirm_upload");
    let creator = RelayClient::new(&relay.url(), net.creator.clone()).unwrap();
    let nginx_url = nginx.url();
    let mut memory = Vec::new();

    for clients in LEVELS {
        let jobs = vec![(); downloads];
        let c = creator.clone();
        let len = png.len();
        // The relay serves in this process, nginx in its own: the peak this
        // process gains during the relay's run, less what the same clients
        // gain against nginx, is the relay's memory for the downloads.
        let (ours, with_relay) = peak_added(drive(clients, jobs.clone(), len, move |_, ()| {
            let c = c.clone();
            async move {
                let got = c.download_image(id, 0).await.expect("relay download");
                assert_eq!(got.len(), len);
            }
        }))
        .await;
        let (h, url) = (http.clone(), format!("{nginx_url}/image.png"));
        let (theirs, clients_only) = peak_added(drive(clients, jobs, len, move |_, ()| {
            let (h, url) = (h.clone(), url.clone());
            async move {
                let got = h.get(url).send().await.unwrap().bytes().await.unwrap();
                assert_eq!(got.len(), len);
            }
        }))
        .await;
        memory.push((clients, with_relay.saturating_sub(clients_only)));
        rows.push(Row {
            what: "download".into(),
            clients,
            ours,
            nginx: theirs,
        });
    }

    for (clients, count) in LEVELS.into_iter().zip(uploads) {
        eprintln!("preparing {count} tasks for the {clients}-client upload run");
        let tasks = succeeded_tasks(&mut net, count, &outcome).await;
        let url = relay.url();
        let body = Arc::new(png.clone());
        let b = body.clone();
        let ours = drive(
            clients,
            tasks.clone(),
            png.len(),
            move |_, (id, key): (TaskId, Keypair)| {
                let (url, b) = (url.clone(), b.clone());
                async move {
                    let client = RelayClient::new(&url, key).unwrap();
                    // Past `uploads_in_flight` the relay answers 503 busy;
                    // a client retries (counted in this upload's latency).
                    loop {
                        match client.upload_images(id, std::slice::from_ref(&*b)).await {
                            Ok(()) => break,
                            Err(e) if e.is_retryable() => {
                                tokio::time::sleep(Duration::from_millis(20)).await
                            }
                            Err(e) => panic!("relay upload: {e}"),
                        }
                    }
                }
            },
        )
        .await;
        let (h, base) = (http.clone(), nginx_url.clone());
        let jobs: Vec<usize> = (0..count).collect();
        let theirs = drive(clients, jobs, png.len(), move |_, i| {
            let (h, url, b) = (
                h.clone(),
                format!("{base}/up/{clients}-{i}.png"),
                body.clone(),
            );
            async move {
                let status = h.put(url).body((*b).clone()).send().await.unwrap().status();
                assert!(status.is_success(), "nginx PUT: {status}");
            }
        })
        .await;
        rows.push(Row {
            what: "upload".into(),
            clients,
            ours,
            nginx: theirs,
        });
        for (id, key) in tasks {
            net.hydrogen
                .confirm_upload(&key, id, None)
                .await
                .expect("confirm_upload");
        }
    }

    print_table(&rows);
    println!();
    println!("| concurrent downloads | relay memory at peak, KiB | per download, KiB |");
    println!("|---:|---:|---:|");
    for (clients, kib) in memory {
        println!("| {clients} | {kib} | {} |", kib / clients as u64);
    }
    println!("(peak resident size this process gained during the relay's run, less what the same clients gained against nginx; the PNG is {} KiB)", png.len() / 1024);
    println!(
        "downloads: {downloads} per row; uploads: {uploads:?} per row; machine: {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    relay.shutdown().await;
}
