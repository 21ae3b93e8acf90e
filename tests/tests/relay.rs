//! The relay against a real contract on a real dev node, served on
//! loopback: every endpoint, who may call it, how requests are
//! authenticated, what bad uploads leave behind (nothing), restarts,
//! retention, and two replicas on one store behind nginx.
//!
//! All tests share one `substrate-contracts-node`; each deploys its own
//! contract and runs its own relay on a port of its own over a temporary
//! directory. Without a node binary or a contract bundle they print why and
//! pass, unless `HYDROGEN_REQUIRE_CHAIN=1`.
//!
//! `cargo build -p hydrogen-relay && cargo test -p hydrogen-tests --features hydrogen-sdk/test-util --test relay`
//! (the kill tests run the `hydrogen-relay` binary; `scripts/test.sh` builds it).

use hydrogen_relay::{Config, RunningRelay, StorageConfig, SweepReason};
use hydrogen_sdk::chain::{keypair_from_suri, Keypair};
use hydrogen_sdk::phash::phash_images;
use hydrogen_sdk::relay::auth::SignedRequest;
use hydrogen_sdk::relay::{code, frames, RelayClient, RelayError};
use hydrogen_sdk::task::TaskArgs;
use hydrogen_sdk::types::{blake2_256, Hash, Outcome, TaskId, TaskStatus};
use hydrogen_tests::nginx::{self, Nginx};
use hydrogen_tests::relay_process::RelayProcess;
use hydrogen_tests::s3::S3Server;
use hydrogen_tests::{now_ms, test_params, Network, FEE};
use image::{ImageFormat, Rgb, RgbImage};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- Fixtures ----

/// Where a test relay keeps its blobs: a folder on local disk, or a bucket
/// on a real S3-compatible server on loopback (`hydrogen_tests::s3`).
enum Blobs {
    Dir(tempfile::TempDir),
    S3 {
        server: S3Server,
        bucket: String,
        storage: StorageConfig,
    },
}

#[derive(Clone, Copy, Debug)]
enum Store {
    Local,
    S3,
}

impl Blobs {
    /// `None` when the S3 server is not installed and tests may skip.
    async fn new(store: Store, test: &str) -> Option<Blobs> {
        match store {
            Store::Local => Some(Blobs::Dir(tempfile::tempdir().unwrap())),
            Store::S3 => {
                let server = S3Server::start().await?;
                let bucket = test.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
                let storage = server.bucket(&bucket).await;
                Some(Blobs::S3 {
                    server,
                    bucket,
                    storage,
                })
            }
        }
    }

    fn storage(&self) -> StorageConfig {
        match self {
            Blobs::Dir(dir) => StorageConfig::Local {
                path: dir.path().into(),
            },
            Blobs::S3 { storage, .. } => storage.clone(),
        }
    }

    /// The stored objects of task `id`, relative to `tasks/<id>/`, sorted.
    async fn files_of(&self, id: TaskId) -> Vec<String> {
        match self {
            Blobs::Dir(dir) => files_of(dir.path(), id),
            Blobs::S3 { server, bucket, .. } => {
                // ListObjectsV2 (the server takes unsigned requests).
                let prefix = format!("tasks/{id}/");
                let xml = reqwest::get(format!(
                    "{}/{bucket}?list-type=2&prefix={prefix}",
                    server.endpoint
                ))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
                let mut keys: Vec<String> = xml
                    .split("<Key>")
                    .skip(1)
                    .filter_map(|k| k.split("</Key>").next())
                    .map(|k| k.trim_start_matches(&prefix).to_owned())
                    .collect();
                keys.sort();
                keys
            }
        }
    }
}

/// A network of three nodes and a store for `test`, or `None` (skip) where
/// the chain or the S3 server is missing and tests may skip.
async fn net_and_blobs(test: &str, store: Store) -> Option<(Network, Blobs)> {
    let net = Network::new(test, test_params(), 3).await?;
    let blobs = Blobs::new(store, test).await?;
    Some((net, blobs))
}

fn relay_config(net: &Network, blobs: &Blobs) -> Config {
    let mut config = Config::new(
        net.client.url(),
        format!("0x{}", hex::encode(net.contract())),
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.storage = blobs.storage();
    // Sweeps run only when a test asks for one.
    config.retention.sweep_interval_secs = 0;
    config
}

async fn start(config: Config) -> RunningRelay {
    hydrogen_relay::start(config).await.expect("relay starts")
}

/// What a client of `relay` signs its requests for.
fn authority(relay: &RunningRelay) -> String {
    relay.addr.to_string()
}

fn client(relay: &RunningRelay, signer: &Keypair) -> RelayClient {
    RelayClient::new(&relay.url(), signer.clone()).unwrap()
}

fn stranger(test: &str) -> Keypair {
    keypair_from_suri(&format!("//chain-it/{test}/stranger")).unwrap()
}

/// Task arguments for `num_images` images, as bytes and their hash.
fn task_args(num_images: u32, prompt: &str) -> (Vec<u8>, Hash) {
    let mut args = TaskArgs::new("runwayml/stable-diffusion-v1-5", prompt);
    args.task_config.num_images = num_images;
    (args.to_canonical_json(), args.args_hash())
}

/// `n` distinct PNGs (64 × 64 patterns) and the outcome their pHashes make.
fn pngs(n: u8, seed: u8) -> (Vec<Vec<u8>>, Outcome) {
    let images: Vec<RgbImage> = (0..n)
        .map(|i| {
            let k = u32::from(seed) * 7 + u32::from(i) * 13 + 1;
            RgbImage::from_fn(64, 64, |x, y| {
                let v = ((x * k + y * y * (k % 5 + 1)) % 256) as u8;
                Rgb([v, v.wrapping_mul(3), 255 - v])
            })
        })
        .collect();
    let outcome = Outcome::Images(phash_images(&images));
    let encoded = images
        .iter()
        .map(|image| {
            let mut png = Vec::new();
            image
                .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
                .unwrap();
            png
        })
        .collect();
    (encoded, outcome)
}

/// Files (not directories) under `dir/tasks/<id>`, relative to it.
fn files_of(dir: &Path, id: TaskId) -> Vec<String> {
    let root = dir.join(format!("tasks/{id}"));
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Asserts a refusal's status, code and a part of its message.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, RelayError>,
    status: u16,
    code: &str,
    message: &str,
) {
    match result {
        Err(RelayError::Refused {
            status: s,
            code: c,
            message: m,
        }) => {
            assert_eq!((s, c.as_str()), (status, code), "{m}");
            assert!(m.contains(message), "{m:?} does not contain {message:?}");
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

/// A request sent by hand, with its signature headers made by `signer` for
/// `signed_body` (the body actually sent may differ).
async fn raw(
    relay: &RunningRelay,
    method: &str,
    path: &str,
    auth: Option<SignedRequest>,
    body: Vec<u8>,
) -> (u16, String, String) {
    raw_at(relay.addr, &authority(relay), method, path, auth, body).await
}

/// [`raw`], sent to `addr` with `host` as its `Host` header: a request
/// signed for a relay service, delivered to one replica of it.
async fn raw_at(
    addr: std::net::SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    auth: Option<SignedRequest>,
    body: Vec<u8>,
) -> (u16, String, String) {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(auth) = auth {
        auth.write_headers(&mut headers);
    }
    headers.insert("host", host.parse().unwrap());
    let response = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("http://{addr}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json: serde_json::Value = response.json().await.unwrap_or_default();
    let field = |k: &str| json[k].as_str().unwrap_or_default().to_string();
    (status, field("code"), field("message"))
}

/// Sends the head of a request and `sent` of its body over a plain socket,
/// then closes the sending side; returns the response's status and body.
async fn cut_request(
    relay: &RunningRelay,
    path: &str,
    auth: &SignedRequest,
    content_length: usize,
    sent: &[u8],
) -> (u16, String) {
    let mut headers = reqwest::header::HeaderMap::new();
    auth.write_headers(&mut headers);
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {content_length}\r\n",
        relay.addr
    );
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut socket = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    // The relay may answer (and stop reading) before all of it is sent.
    let _ = socket.write_all(sent).await;
    let _ = socket.shutdown().await;
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {response:?}"));
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

// ---- Tests ----

/// Every endpoint's success path, who may call each one, and a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_carries_a_task_end_to_end_on_local_disk() {
    carries_a_task_end_to_end("relay-e2e", Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_carries_a_task_end_to_end_on_s3() {
    carries_a_task_end_to_end("relay-e2e-s3", Store::S3).await;
}

async fn carries_a_task_end_to_end(test: &str, store: Store) {
    let Some((mut net, blobs)) = net_and_blobs(test, store).await else {
        return;
    };
    let relay = start(relay_config(&net, &blobs)).await;
    client(&relay, &net.creator).health().await.expect("ready");

    let (args, args_hash) = task_args(2, "a red fox in snow");
    let (images, outcome) = pngs(2, 1);
    let id = net.start_task_for(args_hash, 2, FEE).await;
    let creator = client(&relay, &net.creator);
    let nodes: Vec<RelayClient> = net.nodes.iter().map(|n| client(&relay, n)).collect();
    let stranger = client(&relay, &stranger(test));

    // Before anything is uploaded: "not yet" is retryable, "no such task" not.
    let err = nodes[0].fetch_args(id).await.unwrap_err();
    assert!(
        matches!(err, RelayError::NotUploadedYet(_)) && err.is_retryable(),
        "{err}"
    );
    let err = creator.fetch_args(id + 100).await.unwrap_err();
    assert!(
        matches!(err, RelayError::TaskNotFound(_)) && !err.is_retryable(),
        "{err}"
    );
    let err = creator.download_images(id).await.unwrap_err();
    assert!(matches!(err, RelayError::NotUploadedYet(_)), "{err}");

    // Arguments: only the creator uploads, once.
    for other in [&nodes[0], &stranger] {
        let refused = other.upload_args(id, &args).await;
        assert_refused(refused, 403, code::FORBIDDEN, "only task");
    }
    creator
        .upload_args(id, &args)
        .await
        .expect("creator uploads");
    let again = creator.upload_args(id, &args).await;
    assert!(again.as_ref().is_err_and(RelayError::is_already_uploaded));
    assert_refused(again, 409, code::ALREADY_UPLOADED, "already uploaded");

    // The creator and every selected node fetch them; nobody else.
    assert_eq!(creator.fetch_args(id).await.unwrap(), args);
    for node in &nodes {
        assert_eq!(node.fetch_args(id).await.unwrap(), args);
    }
    let refused = stranger.fetch_args(id).await;
    assert_refused(refused, 403, code::FORBIDDEN, "creator and selected nodes");

    // No images before consensus.
    let refused = nodes[0].upload_images(id, &images).await;
    assert_refused(refused, 409, code::WRONG_TASK_STATUS, "is Running");

    let up = net.succeed_task(id, outcome).await;
    let others: Vec<usize> = (0..3).filter(|&i| i != up).collect();

    // Images: only the designated node uploads, once.
    for other in [&creator, &nodes[others[0]], &nodes[others[1]], &stranger] {
        let refused = other.upload_images(id, &images).await;
        assert_refused(
            refused,
            403,
            code::FORBIDDEN,
            "only the node the contract designated",
        );
    }
    nodes[up]
        .upload_images(id, &images)
        .await
        .expect("uploader uploads");
    let again = nodes[up].upload_images(id, &images).await;
    assert_refused(again, 409, code::ALREADY_UPLOADED, "already uploaded");

    // Only the creator downloads them, one at a time or all at once.
    byte_ranges_and_entity_tags(&relay, &net.creator, id, &images[0]).await;
    assert_eq!(creator.download_image(id, 0).await.unwrap(), images[0]);
    assert_eq!(creator.download_image(id, 1).await.unwrap(), images[1]);
    assert_eq!(creator.download_images(id).await.unwrap(), images);
    let refused = creator.download_image(id, 2).await;
    assert_refused(refused, 404, code::NOT_FOUND, "there is no image 2");
    for other in [&nodes[up], &nodes[others[0]], &stranger] {
        assert_refused(
            other.download_image(id, 0).await,
            403,
            code::FORBIDDEN,
            "creator",
        );
        assert_refused(
            other.download_images(id).await,
            403,
            code::FORBIDDEN,
            "creator",
        );
    }

    net.hydrogen
        .confirm_upload(&net.nodes[up], id, None)
        .await
        .expect("confirm_upload");
    assert_eq!(net.task(id).await.status, TaskStatus::Completed);

    let metrics = relay.metrics();
    assert!(
        metrics.contains(r#"hydrogen_relay_requests_total{endpoint="put_images",status="201"} 1"#),
        "{metrics}"
    );

    // A restart on the same directory serves the same blobs.
    relay.shutdown().await;
    let relay = start(relay_config(&net, &blobs)).await;
    let creator = client(&relay, &net.creator);
    assert_eq!(creator.download_images(id).await.unwrap(), images);
    assert_eq!(creator.fetch_args(id).await.unwrap(), args);
    let files = blobs.files_of(id).await;
    assert_eq!(files[..2], ["args.json", "images.json"], "{files:?}");
    // The images lie in their upload's folder, which images.json names.
    let upload = files[2]
        .trim_start_matches("images/")
        .split('/')
        .next()
        .unwrap();
    assert_eq!(
        files[2..],
        [
            format!("images/{upload}/0.png"),
            format!("images/{upload}/1.png")
        ]
    );
    relay.shutdown().await;
}

/// Signatures: wrong signer, stale, replayed, tampered, missing.
/// Uploads: wrong hash, invalid arguments, oversize, truncated, wrong or
/// unreadable images; each refused with nothing left in storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_leave_nothing_on_local_disk() {
    bad_requests_are_refused_and_leave_nothing("relay-refusals", Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_leave_nothing_on_s3() {
    bad_requests_are_refused_and_leave_nothing("relay-refusals-s3", Store::S3).await;
}

async fn bad_requests_are_refused_and_leave_nothing(test: &str, store: Store) {
    let Some((mut net, blobs)) = net_and_blobs(test, store).await else {
        return;
    };
    let relay = start(relay_config(&net, &blobs)).await;
    let (args, args_hash) = task_args(2, "a lighthouse at dusk");
    let (images, outcome) = pngs(2, 2);
    let id = net.start_task_for(args_hash, 2, FEE).await;
    let creator = client(&relay, &net.creator);
    let path = format!("/v1/tasks/{id}/args");

    // -- Authentication, on the arguments endpoint. --
    let signed = |signer: &Keypair, method: &str, body: &[u8], at: u64| {
        SignedRequest::sign(signer, &authority(&relay), method, &path, body, at)
    };
    let (status, code, message) = raw(&relay, "GET", &path, None, vec![]).await;
    assert_eq!((status, code.as_str()), (401, code::UNAUTHENTICATED));
    assert_eq!(message, "missing header x-hydrogen-account");

    // A stranger's signature under the creator's account.
    let mut forged = signed(&stranger(test), "PUT", &args, now_ms());
    forged.account = net.creator_account();
    let (status, code, message) = raw(&relay, "PUT", &path, Some(forged), args.clone()).await;
    assert_eq!((status, code.as_str()), (401, code::UNAUTHENTICATED));
    assert_eq!(
        message,
        "the signature does not match the request and account"
    );

    let stale = signed(&net.creator, "PUT", &args, now_ms() - 61_000);
    let (status, code, message) = raw(&relay, "PUT", &path, Some(stale), args.clone()).await;
    assert_eq!((status, code.as_str()), (401, code::UNAUTHENTICATED));
    assert!(message.contains("away from the relay's clock"), "{message}");

    let mut tampered_body = args.clone();
    tampered_body[2] ^= 1;
    let tampered = signed(&net.creator, "PUT", &args, now_ms());
    let (status, code, message) = raw(&relay, "PUT", &path, Some(tampered), tampered_body).await;
    assert_eq!((status, code.as_str()), (401, code::UNAUTHENTICATED));
    assert_eq!(message, "the body does not match its signed hash");
    assert!(blobs.files_of(id).await.is_empty());

    // A request is accepted once: its copy is refused.
    let once = signed(&net.creator, "GET", b"", now_ms());
    let (status, code, _) = raw(&relay, "GET", &path, Some(once.clone()), vec![]).await;
    assert_eq!((status, code.as_str()), (404, code::NOT_UPLOADED_YET));
    let (status, code, message) = raw(&relay, "GET", &path, Some(once), vec![]).await;
    assert_eq!((status, code.as_str()), (401, code::UNAUTHENTICATED));
    assert!(message.contains("already used"), "{message}");

    // -- Arguments that are not the task's. --
    let (other_args, _) = task_args(2, "a different prompt");
    let refused = creator.upload_args(id, &other_args).await;
    assert_refused(refused, 422, code::ARGS_HASH_MISMATCH, "args_hash is 0x");
    let oversize = vec![b' '; (1 << 20) + 1];
    assert_refused(
        creator.upload_args(id, &oversize).await,
        413,
        code::TOO_LARGE,
        "1 MiB",
    );
    // Bytes that hash right but fail the schema, or ask for other images.
    let invalid =
        br#"{"base_model":"runwayml/stable-diffusion-v1-5","prompt":"","task_config":{}}"#;
    let queued = net
        .create_task_for(blake2_256(invalid), 2, FEE)
        .await
        .expect("create_task")
        .value;
    let refused = creator.upload_args(queued, invalid).await;
    assert_refused(
        refused,
        422,
        code::INVALID_ARGS,
        "invalid task arguments: prompt",
    );
    let (three, three_hash) = task_args(3, "three images");
    let queued2 = net
        .create_task_for(three_hash, 2, FEE)
        .await
        .expect("create_task")
        .value;
    let refused = creator.upload_args(queued2, &three).await;
    assert_refused(
        refused,
        422,
        code::INVALID_ARGS,
        "ask for 3 images but task",
    );
    for task in [id, queued, queued2] {
        assert!(blobs.files_of(task).await.is_empty(), "task {task}");
    }
    creator
        .upload_args(id, &args)
        .await
        .expect("the refusals left the slot free");

    // -- Images. --
    let up = net.succeed_task(id, outcome).await;
    let uploader = client(&relay, &net.nodes[up]);
    let images_path = format!("/v1/tasks/{id}/images");
    let no_images = || async {
        let files = blobs.files_of(id).await;
        assert_eq!(files, ["args.json"], "only the arguments are stored");
    };

    let refused = uploader.upload_images(id, &images[..1]).await;
    assert_refused(
        refused,
        422,
        code::WRONG_IMAGES,
        "has 2 images, the body holds 1",
    );
    no_images().await;
    let swapped = [images[1].clone(), images[0].clone()];
    let refused = uploader.upload_images(id, &swapped).await;
    assert_refused(refused, 422, code::WRONG_IMAGES, "image 0's pHash is 0x");
    no_images().await;
    let not_png = [images[0].clone(), b"GIF89a".to_vec()];
    let refused = uploader.upload_images(id, &not_png).await;
    assert_refused(
        refused,
        422,
        code::WRONG_IMAGES,
        "image 1 is not a readable PNG",
    );
    no_images().await;
    let mut corrupt = images.clone();
    let last = corrupt[1].len() - 20;
    corrupt[1][last] ^= 0xff;
    let refused = uploader.upload_images(id, &corrupt).await;
    assert_refused(refused, 422, code::WRONG_IMAGES, "image 1");
    no_images().await;
    let eleven = vec![images[0].clone(); 11];
    let refused = uploader.upload_images(id, &eleven).await;
    assert_refused(refused, 413, code::TOO_LARGE, "");
    no_images().await;

    // An image over 16 MiB is refused from its length prefix, before its
    // bytes arrive: the request is cut after 104 bytes.
    let mut big = ((16u32 << 20) + 1).to_be_bytes().to_vec();
    big.resize(4 + (16 << 20) + 1, 0);
    let auth = SignedRequest::sign(
        &net.nodes[up],
        &authority(&relay),
        "PUT",
        &images_path,
        &big,
        now_ms(),
    );
    let (status, body) = cut_request(&relay, &images_path, &auth, big.len(), &big[..104]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("image 0 is larger than 16 MiB"), "{body}");
    no_images().await;

    // A body cut short: the first image arrives whole, the second half.
    let full = frames::encode(&images);
    let auth = SignedRequest::sign(
        &net.nodes[up],
        &authority(&relay),
        "PUT",
        &images_path,
        &full,
        now_ms(),
    );
    let cut = full.len() - images[1].len() / 2;
    let (status, body) = cut_request(&relay, &images_path, &auth, full.len(), &full[..cut]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(code::MALFORMED), "{body}");
    no_images().await;

    uploader
        .upload_images(id, &images)
        .await
        .expect("the refusals left the slot free");
    assert_eq!(creator.download_images(id).await.unwrap(), images);
    relay.shutdown().await;
}

/// One account cannot make the relay read the chain without bound: past its
/// burst it gets `429 rate_limited` (before any chain read), while another
/// account is served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_account_is_rate_limited_and_others_are_not() {
    let test = "relay-rate";
    let Some(net) = Network::new(test, test_params(), 3).await else {
        return;
    };
    let blobs = Blobs::new(Store::Local, test).await.unwrap();
    let mut config = relay_config(&net, &blobs);
    config.auth.requests_per_second = 1;
    config.auth.burst = 5;
    let relay = start(config).await;
    let flooder = client(&relay, &stranger(test));
    let mut codes = Vec::new();
    for _ in 0..8 {
        match flooder.fetch_args(1).await {
            Err(RelayError::Refused { status, code, .. }) => codes.push((status, code)),
            other => codes.push((0, format!("{other:?}"))),
        }
    }
    let limited = codes.iter().filter(|(s, _)| *s == 429).count();
    assert!(limited >= 2, "{codes:?}");
    assert!(
        codes[..5].iter().all(|(s, _)| *s != 429),
        "the burst is served: {codes:?}"
    );
    // Another account still gets an answer about its request.
    let other = client(&relay, &net.creator);
    let err = other.fetch_args(1).await.unwrap_err();
    assert!(
        !matches!(&err, RelayError::Refused { status: 429, .. }),
        "{err}"
    );
    relay.shutdown().await;
}

/// Retention: a finished task's blobs go after the TTL (counted from when
/// the relay first saw it finished, across a restart), an unfinished one's
/// after its deadline plus the grace period, a queued one's stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_what_has_expired_on_local_disk() {
    retention_deletes_exactly_what_has_expired("relay-retention", Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_what_has_expired_on_s3() {
    retention_deletes_exactly_what_has_expired("relay-retention-s3", Store::S3).await;
}

async fn retention_deletes_exactly_what_has_expired(test: &str, store: Store) {
    let Some((mut net, blobs)) = net_and_blobs(test, store).await else {
        return;
    };
    let ttl_ms = 3_600_000;
    let grace_ms = 60_000;
    let mut config = relay_config(&net, &blobs);
    config.retention.ttl_secs = ttl_ms / 1000;
    config.retention.grace_secs = grace_ms / 1000;
    let relay = start(config.clone()).await;
    let creator = client(&relay, &net.creator);

    // Completed: arguments and images.
    let (args_a, hash_a) = task_args(1, "finished");
    let (images, outcome) = pngs(1, 3);
    let completed = net.start_task_for(hash_a, 1, FEE).await;
    creator.upload_args(completed, &args_a).await.unwrap();
    let up = net.succeed_task(completed, outcome).await;
    client(&relay, &net.nodes[up])
        .upload_images(completed, &images)
        .await
        .unwrap();
    net.hydrogen
        .confirm_upload(&net.nodes[up], completed, None)
        .await
        .expect("confirm_upload");

    // Running, with its deadline ahead; then queued behind it.
    let (args_b, hash_b) = task_args(1, "running");
    let running = net.start_task_for(hash_b, 1, FEE).await;
    creator.upload_args(running, &args_b).await.unwrap();
    let (args_c, hash_c) = task_args(1, "queued");
    let queued = net.create_task_for(hash_c, 1, FEE).await.unwrap().value;
    creator.upload_args(queued, &args_c).await.unwrap();
    assert_eq!(net.task(queued).await.status, TaskStatus::Queued);
    let deadline = net.task(running).await.deadline;

    let t0 = now_ms();
    let report = relay.sweep_at(t0).await.unwrap();
    assert_eq!(report.deleted, []);
    assert_eq!(report.kept, [completed, running, queued]);

    // The finished stamp survives a restart.
    relay.shutdown().await;
    let relay = start(config).await;

    let report = relay.sweep_at(deadline + grace_ms + 1).await.unwrap();
    assert_eq!(report.deleted, [(running, SweepReason::PastDeadline)]);
    assert_eq!(report.kept, [completed, queued]);
    assert!(blobs.files_of(running).await.is_empty());

    let report = relay.sweep_at(t0 + ttl_ms).await.unwrap();
    assert_eq!(report.deleted, [(completed, SweepReason::Finished)]);
    assert_eq!(report.kept, [queued]);
    assert!(blobs.files_of(completed).await.is_empty());
    assert_eq!(blobs.files_of(queued).await, ["args.json"]);

    // What was swept is gone for good, which a client must not retry.
    let creator = client(&relay, &net.creator);
    let gone = creator.download_images(completed).await;
    assert_refused(gone, 410, code::GONE, "is Completed");
    assert_eq!(creator.fetch_args(queued).await.unwrap(), args_c);
    relay.shutdown().await;
}

/// A relay pointed at an address where no hydrogen contract lives would
/// accept nothing while its /readyz said ready: it refuses to start.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_for_a_contract_that_is_not_there_refuses_to_start() {
    let Some(url) = hydrogen_tests::shared_node().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        &url,
        // //Alice: an account, not a contract.
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".to_owned(),
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.storage = StorageConfig::Local {
        path: dir.path().into(),
    };
    let err = hydrogen_relay::start(config)
        .await
        .err()
        .expect("refused to start");
    let message = format!("{err:#}");
    assert!(
        message.contains("no hydrogen contract answers at 5Grw"),
        "{message}"
    );
}

/// A signed GET of `path` with `extra` headers, as a browser or a download
/// manager resuming a transfer would send it.
async fn signed_get(
    relay: &RunningRelay,
    signer: &Keypair,
    path: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    // Distinct timestamps, so the replay guard never sees the same request twice.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let signed = SignedRequest::sign(signer, &authority(relay), "GET", path, b"", now_ms());
    let mut headers = reqwest::header::HeaderMap::new();
    signed.write_headers(&mut headers);
    let mut request = reqwest::Client::new()
        .get(format!("{}{path}", relay.url()))
        .headers(headers);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the relay answers")
}

/// An image download streams with its length, accepts byte ranges and
/// answers a conditional request with its entity tag.
async fn byte_ranges_and_entity_tags(
    relay: &RunningRelay,
    creator: &Keypair,
    id: TaskId,
    png: &[u8],
) {
    let path = format!("/v1/tasks/{id}/images/0");
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let len = png.len();
    let whole = signed_get(relay, creator, &path, &[]).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "content-length"), Some(len.to_string()));
    assert_eq!(header(&whole, "accept-ranges").as_deref(), Some("bytes"));
    let tag = header(&whole, "etag").expect("an entity tag");
    assert_eq!(whole.bytes().await.unwrap(), png);

    let part = signed_get(relay, creator, &path, &[("range", "bytes=2-9")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        header(&part, "content-range"),
        Some(format!("bytes 2-9/{len}"))
    );
    assert_eq!(part.bytes().await.unwrap(), png[2..10]);

    let tail = signed_get(relay, creator, &path, &[("range", "bytes=-4")]).await;
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap(), png[len - 4..]);

    let past = format!("bytes={len}-");
    let refused = signed_get(relay, creator, &path, &[("range", &past)]).await;
    assert_eq!(refused.status(), 416);
    assert_eq!(
        header(&refused, "content-range"),
        Some(format!("bytes */{len}"))
    );

    let cached = signed_get(relay, creator, &path, &[("if-none-match", &tag)]).await;
    assert_eq!(cached.status(), 304);
    assert!(cached.bytes().await.unwrap().is_empty());
    let changed = signed_get(relay, creator, &path, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(changed.status(), 200);
}

/// With its upload slots taken, the relay refuses one more image upload at
/// once, before reading its body, with `503 busy` and `Retry-After`; the
/// upload it admitted still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_relay_refuses_uploads_with_retry_after() {
    let test = "relay-busy";
    let Some(mut net) = Network::new(test, test_params(), 3).await else {
        return;
    };
    let blobs = Blobs::new(Store::Local, test).await.unwrap();
    let mut config = relay_config(&net, &blobs);
    config.limits.image_checks = 1;
    config.limits.uploads_in_flight = 1;
    let relay = start(config).await;
    let (args, args_hash) = task_args(1, "a lighthouse");
    let (images, outcome) = pngs(1, 3);
    let id = net.start_task_for(args_hash, 1, FEE).await;
    client(&relay, &net.creator)
        .upload_args(id, &args)
        .await
        .unwrap();
    let up = net.succeed_task(id, outcome).await;
    let uploader = net.nodes[up].clone();

    // The uploader's upload, held open halfway through its body.
    let body = frames::encode(&images);
    let path = format!("/v1/tasks/{id}/images");
    let auth = SignedRequest::sign(&uploader, &authority(&relay), "PUT", &path, &body, now_ms());
    let mut headers = reqwest::header::HeaderMap::new();
    auth.write_headers(&mut headers);
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
        relay.addr,
        body.len()
    );
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut held = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // One more upload is refused at once.
    let again = SignedRequest::sign(
        &uploader,
        &authority(&relay),
        "PUT",
        &path,
        &body,
        now_ms() + 1,
    );
    let mut headers = reqwest::header::HeaderMap::new();
    again.write_headers(&mut headers);
    let refused = reqwest::Client::new()
        .put(format!("{}{path}", relay.url()))
        .headers(headers)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let json: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(json["code"], code::BUSY);

    // The held upload finishes and is stored.
    held.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut response = vec![0u8; 64];
    let n = held.read(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response[..n]);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert_eq!(
        client(&relay, &net.creator)
            .download_images(id)
            .await
            .unwrap(),
        images
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_folder_behind_nginx_act_as_one_relay() {
    two_replicas_behind_nginx("relay-replicas", Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_bucket_behind_nginx_act_as_one_relay() {
    two_replicas_behind_nginx("relay-replicas-s3", Store::S3).await;
}

/// Whether nginx is installed; false (the test skips) only where tests may skip.
fn nginx_or_skip() -> bool {
    if nginx::installed() {
        return true;
    }
    assert!(
        !hydrogen_tests::chain_required(),
        "nginx is not installed: run scripts/install.sh"
    );
    eprintln!("skipped: no nginx (scripts/install.sh installs it)");
    false
}

/// How many requests `relay` answered at `endpoint` with `status`.
fn answered(relay: &RunningRelay, endpoint: &str, status: u16) -> u64 {
    let series =
        format!("hydrogen_relay_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} ");
    relay
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&series).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Two relay processes on one store behind nginx, one relay service to its
/// clients: what one stored the other serves and refuses to store again,
/// racing first uploads store one set, a request is accepted once by the
/// service (not once per replica, not again after a restart), and both
/// sweeping at once delete each blob once without error.
async fn two_replicas_behind_nginx(test: &str, store: Store) {
    if !nginx_or_skip() {
        return;
    }
    let Some((mut net, blobs)) = net_and_blobs(test, store).await else {
        return;
    };
    // The service's one name: the balancer's address, which every replica
    // answers for.
    let front = nginx::free_port();
    let service = format!("127.0.0.1:{front}");
    let mut config = relay_config(&net, &blobs);
    config.auth.authorities = vec![service.clone()];
    let replica = || config.clone();
    let a = start(replica()).await;
    let b = start(replica()).await;
    let dir = tempfile::tempdir().unwrap();
    let balancer = Nginx::balancer(dir.path(), front, &[a.addr, b.addr]);
    let via = |signer: &Keypair| RelayClient::new(&balancer.url(), signer.clone()).unwrap();

    let (args, args_hash) = task_args(2, "two relays, one service");
    let (images, outcome) = pngs(2, 5);
    let id = net.start_task_for(args_hash, 2, FEE).await;
    via(&net.creator)
        .upload_args(id, &args)
        .await
        .expect("stored through the balancer");
    for _ in 0..2 {
        for node in &net.nodes {
            assert_eq!(via(node).fetch_args(id).await.unwrap(), args);
        }
    }
    // Round robin: each replica served some of the six.
    let (by_a, by_b) = (answered(&a, "get_args", 200), answered(&b, "get_args", 200));
    assert_eq!(by_a + by_b, 6);
    assert!(by_a > 0 && by_b > 0, "a served {by_a}, b {by_b}");
    let again = via(&net.creator).upload_args(id, &args).await;
    assert_refused(again, 409, code::ALREADY_UPLOADED, "already uploaded");

    // A request signed for one replica's own address is not for the service.
    let path = format!("/v1/tasks/{id}/args");
    let direct = SignedRequest::sign(&net.nodes[0], &authority(&a), "GET", &path, b"", now_ms());
    let (status, code, message) =
        raw_at(a.addr, &authority(&a), "GET", &path, Some(direct), vec![]).await;
    assert_eq!((status, code.as_str()), (401, code::UNAUTHENTICATED));
    assert!(message.contains(&service), "{message}");

    // A request is accepted once by the service: replayed to the other
    // replica, it is refused.
    let once = SignedRequest::sign(&net.nodes[0], &service, "GET", &path, b"", now_ms());
    let send =
        |to: std::net::SocketAddr| raw_at(to, &service, "GET", &path, Some(once.clone()), vec![]);
    assert_eq!(send(a.addr).await.0, 200);
    let (status, code, message) = send(b.addr).await;
    assert_eq!((status, code.as_str()), (401, code::UNAUTHENTICATED));
    assert!(message.contains("already used"), "{message}");

    // Two first uploads at once, one through each replica: one stores its
    // set, the other is told it is already uploaded.
    let up = net.succeed_task(id, outcome).await;
    let body = frames::encode(&images);
    let images_path = format!("/v1/tasks/{id}/images");
    let upload = |to: std::net::SocketAddr, at: u64| {
        let signed = SignedRequest::sign(&net.nodes[up], &service, "PUT", &images_path, &body, at);
        raw_at(
            to,
            &service,
            "PUT",
            &images_path,
            Some(signed),
            body.clone(),
        )
    };
    let t = now_ms();
    let (first, second) = tokio::join!(upload(a.addr, t), upload(b.addr, t + 1));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{first:?} {second:?}");
    for _ in 0..2 {
        assert_eq!(via(&net.creator).download_images(id).await.unwrap(), images);
    }
    let stored = blobs.files_of(id).await;
    let pngs_stored = stored.iter().filter(|f| f.ends_with(".png")).count();
    assert_eq!(
        pngs_stored, 2,
        "the losing upload's images are gone: {stored:?}"
    );

    // A restarted replica still refuses the replayed request.
    a.shutdown().await;
    let a = start(replica()).await;
    let (status, _, message) = send(a.addr).await;
    assert_eq!(status, 401);
    assert!(message.contains("already used"), "{message}");

    // Both sweep at once, past the finished task's TTL: one deletes, the
    // other finds nothing left to delete; neither fails.
    net.hydrogen
        .confirm_upload(&net.nodes[up], id, None)
        .await
        .expect("confirm_upload");
    let first_seen = now_ms();
    a.sweep_at(first_seen).await.unwrap();
    let later = first_seen + replica().retention.ttl_secs * 1000;
    let (swept_a, swept_b) = tokio::join!(a.sweep_at(later), b.sweep_at(later));
    let (swept_a, swept_b) = (swept_a.unwrap(), swept_b.unwrap());
    let deleted = [&swept_a, &swept_b]
        .iter()
        .filter(|r| r.deleted == [(id, SweepReason::Finished)])
        .count();
    assert!(deleted >= 1, "{swept_a:?} {swept_b:?}");
    // Racing, a replica may stamp the task just as the other deletes it:
    // at most that stamp is left, and it goes a TTL later.
    let left = blobs.files_of(id).await;
    assert!(left.is_empty() || left == ["finished.json"], "{left:?}");
    // Once neither replica's cached read of the task says Succeeded.
    tokio::time::sleep(std::time::Duration::from_millis(config.task_cache_ms + 100)).await;
    let gone = via(&net.creator).download_images(id).await;
    assert_refused(gone, 410, code::GONE, "is Completed");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_upload_leaves_nothing_visible_on_local_disk() {
    killed_mid_upload("relay-killed", Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_upload_leaves_nothing_visible_on_s3() {
    killed_mid_upload("relay-killed-s3", Store::S3).await;
}

/// The `hydrogen-relay` process is killed (SIGKILL) after it stored the
/// first of two images: the other replica on the store shows no images, a
/// new upload through it stores the whole set, and the killed replica,
/// restarted, serves that set.
async fn killed_mid_upload(test: &str, store: Store) {
    let Some((mut net, blobs)) = net_and_blobs(test, store).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = relay_config(&net, &blobs);
    config.listen = format!("127.0.0.1:{}", nginx::free_port()).parse().unwrap();
    let mut killed = RelayProcess::start(dir.path(), "relay", &config).await;
    let service = killed.addr.to_string();
    let other = start(relay_config(&net, &blobs)).await;

    let (args, args_hash) = task_args(2, "killed halfway");
    let (images, outcome) = pngs(2, 9);
    let id = net.start_task_for(args_hash, 2, FEE).await;
    client(&other, &net.creator)
        .upload_args(id, &args)
        .await
        .unwrap();
    let up = net.succeed_task(id, outcome).await;

    // The first image and half the second, then the relay dies.
    let body = frames::encode(&images);
    let path = format!("/v1/tasks/{id}/images");
    let signed = SignedRequest::sign(&net.nodes[up], &service, "PUT", &path, &body, now_ms());
    let mut headers = reqwest::header::HeaderMap::new();
    signed.write_headers(&mut headers);
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nhost: {service}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut socket = tokio::net::TcpStream::connect(&service).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    let first_frame = 4 + images[0].len();
    socket
        .write_all(&body[..first_frame + images[1].len() / 2])
        .await
        .unwrap();
    let mut stored = Vec::new();
    for _ in 0..200 {
        stored = blobs.files_of(id).await;
        if stored.iter().any(|f| f.ends_with("0.png")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        stored.iter().any(|f| f.ends_with("0.png")),
        "the first image was never stored: {stored:?}"
    );
    killed.kill().await;
    drop(socket);

    // Nothing of the cut upload is visible through the other replica.
    let creator = client(&other, &net.creator);
    let absent = creator.download_images(id).await;
    assert!(
        matches!(absent, Err(RelayError::NotUploadedYet(_))),
        "{absent:?}"
    );
    let absent = creator.download_image(id, 0).await;
    assert!(
        matches!(absent, Err(RelayError::NotUploadedYet(_))),
        "{absent:?}"
    );

    // The upload, retried through the other replica, stores the whole set.
    client(&other, &net.nodes[up])
        .upload_images(id, &images)
        .await
        .expect("a new upload after the crash");
    assert_eq!(creator.download_images(id).await.unwrap(), images);

    // The killed replica, restarted, serves that set.
    killed.restart().await;
    let through_restarted = RelayClient::new(&killed.url(), net.creator.clone()).unwrap();
    assert_eq!(through_restarted.download_images(id).await.unwrap(), images);
    other.shutdown().await;
}
