//! The relay against nginx on loopback: downloads and uploads of 1 MiB PNGs
//! at 1, 16 and 64 concurrent clients, in the same run, on the same files.
//!
//! The relay runs on a real dev node with the contract deployed,
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
//! Each relay row runs twice: against one relay, and against two replicas
//! on one folder behind nginx as a load balancer (one relay service; the
//! balancer's hop is in those rows). Uploads are also compared with the
//! pHash check alone on every core, their ceiling.
//!
//! The relays run as processes of their own (the release `hydrogen-relay`
//! binary), so their memory is read apart from the clients'.
//!
//! `cargo build --release -p hydrogen-relay && cargo bench -p hydrogen-tests --features hydrogen-sdk/test-util --bench relay`
//! (`HYDROGEN_BENCH_QUICK=1`: fewer requests.)

use futures::future::join_all;
use hydrogen_relay::{Config, StorageConfig};
use hydrogen_sdk::chain::Keypair;
use hydrogen_sdk::phash::{check_png, phash_images, PHASH_BYTES};
use hydrogen_sdk::relay::RelayClient;
use hydrogen_sdk::types::{Outcome, Params, TaskId};
use hydrogen_tests::nginx::{free_port, Nginx};
use hydrogen_tests::relay_process::RelayProcess;
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

/// A histogram of the relays' `/metrics`, summed over them: its total
/// seconds and count. `metric` is the name after the prefix, `labels` the
/// label set as printed (`endpoint="put_images"`).
async fn histogram(
    http: &reqwest::Client,
    relays: &[RelayProcess],
    metric: &str,
    labels: &str,
) -> (f64, u64) {
    let (mut seconds, mut count) = (0.0, 0);
    for relay in relays {
        let text = http
            .get(format!("{}/metrics", relay.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| {
            let series = format!("hydrogen_relay_{metric}_{name}{{{labels}}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&series).and_then(|v| v.parse::<f64>().ok()))
                .unwrap_or(0.0)
        };
        seconds += value("sum");
        count += value("count") as u64;
    }
    (seconds, count)
}

/// The relays' upload times and their chain reads (an upload decides on a
/// fresh read of its task at the finalized block).
const UPLOADS: (&str, &str) = ("request_duration_seconds", "endpoint=\"put_images\"");
const READS: (&str, &str) = ("chain_read_seconds", "block=\"finalized\"");

/// Where the relay rows' requests go.
struct Target {
    label: &'static str,
    url: String,
}

/// Decodes and pHashes `png` on every core at once, as the relay's upload
/// check does, for `per_core` rounds each: the ceiling for uploads.
async fn check_alone(png: &Arc<Vec<u8>>, want: [u8; PHASH_BYTES], per_core: usize) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let png = png.clone();
            tokio::task::spawn_blocking(move || {
                for _ in 0..per_core {
                    check_png(&png, 0, want).expect("the PNG checks");
                }
            })
        })
        .collect();
    for t in join_all(threads).await {
        t.unwrap();
    }
    (cores * per_core * png.len()) as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
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
    // Fees for every task of the run: one downloaded, and the uploads of
    // both targets.
    let tasks = 1 + 2 * uploads.iter().sum::<usize>();
    net.hydrogen
        .mint(&net.owner, net.creator_account(), tasks as u128 * FEE)
        .await
        .expect("mint");
    let dir = tempfile::tempdir().unwrap();

    // Two replicas on one folder, one relay service: each answers for its
    // own address (the single-relay rows) and the balancer's.
    let ports = [free_port(), free_port(), free_port()];
    let mut config = Config::new(
        net.client.url(),
        format!("0x{}", hex::encode(net.contract())),
    );
    config.storage = StorageConfig::Local {
        path: dir.path().join("relay"),
    };
    config.retention.sweep_interval_secs = 0;
    config.auth.authorities = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    // One creator makes every download: measure the serving path, not the
    // per-account rate limit.
    config.auth.requests_per_second = 1_000_000;
    config.auth.burst = 1_000_000;
    // Each relay is a process of its own, as nginx is: its memory is its
    // own, and it competes with its clients for the cores as nginx does.
    let mut replicas: Vec<RelayProcess> = Vec::new();
    for (i, port) in ports[..2].iter().enumerate() {
        config.listen = format!("127.0.0.1:{port}").parse().unwrap();
        replicas.push(RelayProcess::start(dir.path(), &format!("relay-{i}"), &config).await);
    }
    let balancer = Nginx::balancer(
        &dir.path().join("balancer"),
        ports[2],
        &[replicas[0].addr, replicas[1].addr],
    );
    let targets = [
        Target {
            label: "relay",
            url: replicas[0].url(),
        },
        Target {
            label: "2 relays behind nginx",
            url: balancer.url(),
        },
    ];
    let nginx = Nginx::static_files(&dir.path().join("nginx"));
    let (png, outcome) = noise_png();
    println!("PNG: {} bytes", png.len());
    std::fs::write(dir.path().join("nginx/www/image.png"), &png).unwrap();
    let http = reqwest::Client::new();
    let mut rows = Vec::new();

    // The downloaded task: uploaded once, read many times by its creator.
    let (id, uploader) = succeeded_tasks(&mut net, 1, &outcome).await.remove(0);
    RelayClient::new(&targets[0].url, uploader.clone())
        .unwrap()
        .upload_images(id, std::slice::from_ref(&png))
        .await
        .expect("upload");
    net.hydrogen
        .confirm_upload(&uploader, id, None)
        .await
        .expect("confirm_upload");
    let nginx_url = nginx.url();
    let mut memory = Vec::new();
    // The relays' resident size at rest, before any download: each row's
    // peak is measured above it, so memory an allocator keeps from one row
    // counts again in the next (an upper bound per download).
    let idle: Vec<u64> = replicas.iter().map(|r| r.memory_kib("VmRSS:")).collect();

    for target in &targets {
        let creator = RelayClient::new(&target.url, net.creator.clone()).unwrap();
        for clients in LEVELS {
            let jobs = vec![(); downloads];
            let c = creator.clone();
            let len = png.len();
            replicas.iter().for_each(RelayProcess::reset_peak);
            let ours = drive(clients, jobs.clone(), len, move |_, ()| {
                let c = c.clone();
                async move {
                    let got = c.download_image(id, 0).await.expect("relay download");
                    assert_eq!(got.len(), len);
                }
            })
            .await;
            let gained: u64 = replicas
                .iter()
                .zip(&idle)
                .map(|(r, b)| r.memory_kib("VmHWM:").saturating_sub(*b))
                .sum();
            let (h, url) = (http.clone(), format!("{nginx_url}/image.png"));
            let theirs = drive(clients, jobs, len, move |_, ()| {
                let (h, url) = (h.clone(), url.clone());
                async move {
                    let got = h.get(url).send().await.unwrap().bytes().await.unwrap();
                    assert_eq!(got.len(), len);
                }
            })
            .await;
            memory.push((target.label, clients, gained));
            rows.push(Row {
                what: format!("download, {}", target.label),
                clients,
                ours,
                nginx: theirs,
            });
        }
    }

    let mut upload_rates = Vec::new();
    for target in &targets {
        for (clients, count) in LEVELS.into_iter().zip(uploads) {
            eprintln!(
                "preparing {count} tasks for the {clients}-client upload run ({})",
                target.label
            );
            let tasks = succeeded_tasks(&mut net, count, &outcome).await;
            let uploads_before = histogram(&http, &replicas, UPLOADS.0, UPLOADS.1).await;
            let reads_before = histogram(&http, &replicas, READS.0, READS.1).await;
            let url = target.url.clone();
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
                        // Past `uploads_in_flight` the relay answers 503
                        // busy; a client retries (counted in the latency).
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
            let mean_ms = |before: (f64, u64), after: (f64, u64)| {
                1000.0 * (after.0 - before.0) / (after.1 - before.1).max(1) as f64
            };
            let relay_side_ms = mean_ms(
                uploads_before,
                histogram(&http, &replicas, UPLOADS.0, UPLOADS.1).await,
            );
            let chain_read_ms = mean_ms(
                reads_before,
                histogram(&http, &replicas, READS.0, READS.1).await,
            );
            let (h, base) = (http.clone(), nginx_url.clone());
            let jobs: Vec<usize> = (0..count).collect();
            let label = target.label.replace(' ', "-");
            let theirs = drive(clients, jobs, png.len(), move |_, i| {
                let (h, url, b) = (
                    h.clone(),
                    format!("{base}/up/{label}-{clients}-{i}.png"),
                    body.clone(),
                );
                async move {
                    let status = h.put(url).body((*b).clone()).send().await.unwrap().status();
                    assert!(status.is_success(), "nginx PUT: {status}");
                }
            })
            .await;
            upload_rates.push((
                target.label,
                clients,
                ours.mib_per_s(),
                relay_side_ms,
                chain_read_ms,
            ));
            rows.push(Row {
                what: format!("upload, {}", target.label),
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
    }
    let Outcome::Images(want) = &outcome else {
        unreachable!("noise_png gives images")
    };
    let want: [u8; PHASH_BYTES] = want[..PHASH_BYTES].try_into().unwrap();
    let check = check_alone(&Arc::new(png.clone()), want, if quick { 8 } else { 32 }).await;

    print_table(&rows);
    println!();
    println!("| concurrent downloads | relay memory at peak, KiB | per download, KiB |");
    println!("|---|---:|---:|");
    for (label, clients, kib) in memory {
        println!("| {clients}, {label} | {kib} | {} |", kib / clients as u64);
    }
    println!("(peak resident size of the relay processes during the row, over their size at rest before the first download; the PNG is {} KiB)", png.len() / 1024);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!("| uploads | relay MiB/s | per core | pHash check alone, per core | ratio | relay-side mean ms | of which a chain read, mean ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (label, clients, rate, relay_side_ms, chain_read_ms) in upload_rates {
        println!(
            "| {clients}, {label} | {rate:.0} | {:.0} | {:.0} | {:.2} | {relay_side_ms:.1} | {chain_read_ms:.1} |",
            rate / cores as f64,
            check / cores as f64,
            rate / check
        );
    }
    println!("(pHash check alone: PNG decode + pHash of the same image on every core at once, no I/O; relay-side: from request to answer, as the relays' metrics time it, 503 answers included)");
    println!("downloads: {downloads} per row; uploads: {uploads:?} per row; machine: {cores} CPUs",);
    drop(replicas);
}
