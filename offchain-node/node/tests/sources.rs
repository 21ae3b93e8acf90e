//! Model sources against a real HTTP server on loopback: the mirror layout,
//! the models directory first, URLs, resume, limits, pickles, concurrency,
//! dead servers, and the cache's list and remove.
//!
//! The server is a few lines of HTTP/1.1 over a tokio socket rather than
//! warp: the resume tests need a server that cuts a body half-way, which a
//! framework does not let a handler do.

use hydrogen_node::config::SourcesConfig;
use hydrogen_node::sources::{ModelSources, SourceError};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server serves and what it saw.
#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    /// Paths whose next response is cut after half the body.
    cut_once: HashSet<String>,
    /// Paths answered without `Content-Length` (the body ends at close).
    no_length: HashSet<String>,
    /// Answer `200` with the whole body even to a `Range` request.
    ignore_range: bool,
    /// Wait this long before sending a body.
    delay: Duration,
    /// Paths answered `503` with `Retry-After: 1` this many more times.
    busy: HashMap<String, u32>,
    /// Every request: path and `Range` header.
    log: Vec<(String, Option<String>)>,
}

struct Server {
    base: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        Server { base, state }
    }

    fn put(&self, path: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().files.insert(path.into(), bytes);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().log.clone()
    }

    fn requests_for(&self, path: &str) -> Vec<Option<String>> {
        self.requests()
            .into_iter()
            .filter(|(p, _)| p == path)
            .map(|(_, range)| range)
            .collect()
    }
}

/// One request per connection (`Connection: close`), GET only.
async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("/").to_string();
    let range = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("range")
            .then(|| value.trim().to_string())
    });
    let (body, cut, no_length, ignore_range, delay, busy) = {
        let mut s = state.lock().unwrap();
        s.log.push((path.clone(), range.clone()));
        let busy = match s.busy.get_mut(&path) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        if busy {
            (None, false, false, false, Duration::ZERO, true)
        } else {
            let cut = s.cut_once.remove(&path);
            (
                s.files.get(&path).cloned(),
                cut,
                s.no_length.contains(&path),
                s.ignore_range,
                s.delay,
                false,
            )
        }
    };
    if busy {
        let _ = socket
            .write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    let Some(body) = body else {
        let _ = socket
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok())
        .filter(|_| !ignore_range);
    let mut head = match start {
        Some(start) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\n",
            body.len() - 1,
            body.len()
        ),
        None => "HTTP/1.1 200 OK\r\n".to_string(),
    };
    let body = &body[start.unwrap_or(0)..];
    if !no_length {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    tokio::time::sleep(delay).await;
    let _ = socket.write_all(head.as_bytes()).await;
    let sent = if cut { &body[..body.len() / 2] } else { body };
    let _ = socket.write_all(sent).await;
    let _ = socket.flush().await;
    let _ = socket.shutdown().await;
}

/// A valid safetensors file of `floats` f32 values (distinct bytes, so a
/// misplaced resume shows).
fn safetensors_file(floats: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..floats)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let view = TensorView::new(Dtype::F32, vec![floats], &data).unwrap();
    safetensors::serialize([("weight", view)], None).unwrap()
}

struct Fixture {
    server: Server,
    _dir: tempfile::TempDir,
    models: PathBuf,
    cache: PathBuf,
    sources: ModelSources,
}

async fn fixture() -> Fixture {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&models).unwrap();
    let config = SourcesConfig {
        mirror: server.base.clone(),
        timeout_secs: 5,
        // The test server is on loopback.
        allow_private_urls: true,
        ..SourcesConfig::default()
    };
    let sources = ModelSources::new(&config, &models, &cache);
    Fixture {
        server,
        _dir: dir,
        models,
        cache,
        sources,
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Every file under `dir` (lock files aside: they stay, empty, by design).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if path.extension().is_none_or(|e| e != "lock") {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn lora_from_the_mirror_layout() {
    let f = fixture().await;
    let weights = safetensors_file(64);
    f.server.put(
        "/org/lora/resolve/main/my_lora.safetensors",
        weights.clone(),
    );
    let path = f
        .sources
        .lora("org/lora", "my_lora.safetensors")
        .await
        .unwrap();
    let key = sha256_hex(&format!("{}\norg/lora\nmain", f.server.base));
    assert_eq!(
        path,
        f.cache.join("hf").join(key).join("my_lora.safetensors")
    );
    assert_eq!(std::fs::read(&path).unwrap(), weights);

    // diffusers' default file name when the task gives none.
    f.server.put(
        "/org/lora2/resolve/main/pytorch_lora_weights.safetensors",
        weights.clone(),
    );
    let default = f.sources.lora("org/lora2", "").await.unwrap();
    assert!(default.ends_with("pytorch_lora_weights.safetensors"));

    // Cached: no second request.
    let before = f.server.requests().len();
    assert_eq!(
        f.sources
            .lora("org/lora", "my_lora.safetensors")
            .await
            .unwrap(),
        path
    );
    assert_eq!(f.server.requests().len(), before);

    let listed = f.sources.cached().unwrap();
    let sources: Vec<&str> = listed.iter().map(|m| m.source.as_str()).collect();
    assert_eq!(sources, ["org/lora", "org/lora2"]);
    assert_eq!(listed[0].bytes, weights.len() as u64);
    assert!(!listed[0].partial);

    assert!(f.sources.remove("org/lora").unwrap());
    assert!(!path.exists());
    assert!(!f.sources.remove("org/lora").unwrap());
    assert_eq!(f.sources.cached().unwrap().len(), 1);
}

/// The files of a tiny diffusers pipeline under `/<repo>/resolve/main/`.
fn put_pipeline(server: &Server, repo: &str, weight_suffix: &str) -> Vec<&'static str> {
    let json = br#"{"_class_name": "x"}"#.to_vec();
    let files: Vec<(String, Vec<u8>)> = vec![
        ("model_index.json".into(), json.clone()),
        ("scheduler/scheduler_config.json".into(), json.clone()),
        ("tokenizer/vocab.json".into(), br#"{"a": 0}"#.to_vec()),
        (
            "tokenizer/merges.txt".into(),
            b"#version: 0.2\na b\n".to_vec(),
        ),
        // tokenizer_config.json is missing, as in some repos: optional.
        ("tokenizer/special_tokens_map.json".into(), json.clone()),
        ("text_encoder/config.json".into(), json.clone()),
        (
            format!("text_encoder/model{weight_suffix}.safetensors"),
            safetensors_file(8),
        ),
        ("unet/config.json".into(), json.clone()),
        (
            format!("unet/diffusion_pytorch_model{weight_suffix}.safetensors"),
            safetensors_file(16),
        ),
        ("vae/config.json".into(), json),
        (
            format!("vae/diffusion_pytorch_model{weight_suffix}.safetensors"),
            safetensors_file(4),
        ),
    ];
    for (file, bytes) in files {
        server.put(&format!("/{repo}/resolve/main/{file}"), bytes);
    }
    vec![
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "text_encoder/config.json",
        "unet/config.json",
        "vae/config.json",
    ]
}

#[tokio::test]
async fn base_model_folder_and_its_complete_marker() {
    let f = fixture().await;
    let files = put_pipeline(&f.server, "org/sd", "");
    let dir = f.sources.base_model("org/sd", None).await.unwrap();
    for file in files.iter().chain(&[
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        ".complete",
    ]) {
        assert!(dir.join(file).is_file(), "{file}");
    }
    assert!(!dir.join("tokenizer/tokenizer_config.json").exists());
    assert_eq!(hydrogen_engine::resolve_model_dir(&dir).unwrap(), dir);
    // 12 files, one of them (tokenizer_config.json) a 404.
    assert_eq!(f.server.requests().len(), 12);

    assert_eq!(f.sources.base_model("org/sd", None).await.unwrap(), dir);
    assert_eq!(
        f.server.requests().len(),
        12,
        "the second call asked the server"
    );

    // A half-fetched folder (no marker) is not taken as complete; the files
    // it has are not fetched again.
    std::fs::remove_file(dir.join(".complete")).unwrap();
    std::fs::remove_file(dir.join("unet/diffusion_pytorch_model.safetensors")).unwrap();
    f.sources.base_model("org/sd", None).await.unwrap();
    let again: Vec<String> = f.server.requests()[12..]
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        again,
        [
            "/org/sd/resolve/main/tokenizer/tokenizer_config.json",
            "/org/sd/resolve/main/unet/diffusion_pytorch_model.safetensors"
        ]
    );
}

#[tokio::test]
async fn base_model_variant_takes_its_weights_or_falls_back() {
    let f = fixture().await;
    put_pipeline(&f.server, "org/sd", ".fp16");
    // The text encoder has no fp16 file in this repo: the full one is used.
    f.server
        .state
        .lock()
        .unwrap()
        .files
        .remove("/org/sd/resolve/main/text_encoder/model.fp16.safetensors");
    f.server.put(
        "/org/sd/resolve/main/text_encoder/model.safetensors",
        safetensors_file(8),
    );
    let dir = f.sources.base_model("org/sd", Some("fp16")).await.unwrap();
    assert!(dir
        .join("unet/diffusion_pytorch_model.fp16.safetensors")
        .is_file());
    assert!(dir.join("text_encoder/model.safetensors").is_file());
    assert!(dir.join(".complete.fp16").is_file());
    assert!(!dir.join(".complete").exists());
}

#[tokio::test]
async fn vae_from_repo_root_or_its_vae_folder() {
    let f = fixture().await;
    let config = br#"{"latent_channels": 4}"#.to_vec();
    f.server
        .put("/org/vae/resolve/main/config.json", config.clone());
    f.server.put(
        "/org/vae/resolve/main/diffusion_pytorch_model.safetensors",
        safetensors_file(4),
    );
    let root = f.sources.vae("org/vae").await.unwrap();
    assert!(root.join("config.json").is_file());
    assert!(root.join("diffusion_pytorch_model.safetensors").is_file());

    f.server
        .put("/org/pipe/resolve/main/vae/config.json", config);
    f.server.put(
        "/org/pipe/resolve/main/vae/diffusion_pytorch_model.safetensors",
        safetensors_file(4),
    );
    let sub = f.sources.vae("org/pipe").await.unwrap();
    assert!(sub.ends_with("vae"), "{}", sub.display());
    assert!(sub.join("diffusion_pytorch_model.safetensors").is_file());
    let before = f.server.requests().len();
    assert_eq!(f.sources.vae("org/pipe").await.unwrap(), sub);
    assert_eq!(f.server.requests().len(), before);

    let err = f.sources.vae("https://example.com/vae").await.unwrap_err();
    assert!(matches!(err, SourceError::Refused { .. }), "{err}");
}

#[tokio::test]
async fn the_models_directory_comes_first() {
    let f = fixture().await;
    let lora = f.models.join("org/lora/pytorch_lora_weights.safetensors");
    std::fs::create_dir_all(lora.parent().unwrap()).unwrap();
    std::fs::write(&lora, safetensors_file(4)).unwrap();
    assert_eq!(f.sources.lora("org/lora", "").await.unwrap(), lora);

    let ti = f.models.join("my-embedding.safetensors");
    std::fs::write(&ti, safetensors_file(4)).unwrap();
    assert_eq!(
        f.sources
            .textual_inversion("my-embedding", "")
            .await
            .unwrap(),
        ti
    );

    let base = f.models.join("org/sd");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("model_index.json"), "{}").unwrap();
    assert_eq!(f.sources.base_model("org/sd", None).await.unwrap(), base);

    let vae = f.models.join("org/vae");
    std::fs::create_dir_all(&vae).unwrap();
    std::fs::write(vae.join("config.json"), "{}").unwrap();
    std::fs::write(
        vae.join("diffusion_pytorch_model.safetensors"),
        safetensors_file(4),
    )
    .unwrap();
    assert_eq!(f.sources.vae("org/vae").await.unwrap(), vae);

    assert!(f.server.requests().is_empty());
    assert!(files_under(&f.cache).is_empty());
}

#[tokio::test]
async fn a_url_lands_in_the_url_cache() {
    let f = fixture().await;
    let weights = safetensors_file(32);
    f.server.put("/api/download/models/123", weights.clone());
    let url = f.server.url("/api/download/models/123");
    let path = f.sources.lora(&url, "").await.unwrap();
    assert_eq!(
        path,
        f.cache
            .join("url")
            .join(sha256_hex(&url))
            .join("model.safetensors")
    );
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    assert_eq!(f.sources.textual_inversion(&url, "").await.unwrap(), path);
    assert_eq!(f.server.requests().len(), 1);
    assert_eq!(f.sources.cached().unwrap()[0].source, url);

    // A base model is never a URL; URLs can be turned off.
    assert!(f.sources.base_model(&url, None).await.is_err());
    let config = SourcesConfig {
        allow_urls: false,
        ..SourcesConfig::default()
    };
    let off = ModelSources::new(&config, &f.models, &f.cache);
    let err = off.lora(&url, "").await.unwrap_err();
    assert!(err.to_string().contains("sources.allow_urls"), "{err}");

    // By default a task URL may not point into the node's own networks.
    let default = ModelSources::new(&SourcesConfig::default(), &f.models, &f.cache);
    let requests = f.server.requests().len();
    let err = default.lora(&format!("{url}?again"), "").await.unwrap_err();
    assert!(
        err.to_string().contains("sources.allow_private_urls"),
        "{err}"
    );
    assert_eq!(f.server.requests().len(), requests, "nothing was asked");

    assert!(f.sources.remove(&url).unwrap());
    assert!(!path.exists());
}

#[tokio::test]
async fn a_cut_download_resumes_with_a_range() {
    let f = fixture().await;
    let weights = safetensors_file(100_000);
    let path = "/api/download/models/9";
    f.server.put(path, weights.clone());
    f.server.state.lock().unwrap().cut_once.insert(path.into());
    let got = f.sources.lora(&f.server.url(path), "").await.unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), weights);
    let ranges = f.server.requests_for(path);
    assert_eq!(
        ranges,
        [None, Some(format!("bytes={}-", weights.len() / 2))],
        "the second request asks for the rest"
    );
}

#[tokio::test]
async fn a_server_that_ignores_the_range_is_downloaded_again() {
    let f = fixture().await;
    let weights = safetensors_file(50_000);
    let path = "/api/download/models/10";
    f.server.put(path, weights.clone());
    {
        let mut s = f.server.state.lock().unwrap();
        s.cut_once.insert(path.into());
        s.ignore_range = true;
    }
    let got = f.sources.lora(&f.server.url(path), "").await.unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), weights);
    assert_eq!(f.server.requests_for(path).len(), 2);
}

#[tokio::test]
async fn a_partial_file_left_by_a_dead_process_is_resumed() {
    let f = fixture().await;
    let weights = safetensors_file(10_000);
    f.server.put(
        "/org/lora/resolve/main/pytorch_lora_weights.safetensors",
        weights.clone(),
    );
    let key = sha256_hex(&format!("{}\norg/lora\nmain", f.server.base));
    let dir = f.cache.join("hf").join(key);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("pytorch_lora_weights.safetensors.part"),
        &weights[..1000],
    )
    .unwrap();
    assert!(f.sources.cached().unwrap()[0].partial);
    let got = f.sources.lora("org/lora", "").await.unwrap();
    assert_eq!(std::fs::read(got).unwrap(), weights);
    assert_eq!(f.server.requests()[0].1.as_deref(), Some("bytes=1000-"));
}

#[tokio::test]
async fn files_over_the_size_limit_are_refused() {
    let f = fixture().await;
    let sources = f.sources.clone().with_max_download_bytes(1000);
    let big = safetensors_file(1000);
    f.server.put("/big", big.clone());
    // Without Content-Length the limit is checked as bytes arrive.
    f.server.put("/big-stream", big);
    f.server
        .state
        .lock()
        .unwrap()
        .no_length
        .insert("/big-stream".into());
    for path in ["/big", "/big-stream"] {
        let url = f.server.url(path);
        let err = sources.lora(&url, "").await.unwrap_err();
        assert!(matches!(err, SourceError::TooLarge { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&url) && text.contains("1000"), "{text}");
    }
    assert!(
        files_under(&f.cache).is_empty(),
        "{:?}",
        files_under(&f.cache)
    );
    assert!(f.sources.cached().unwrap().is_empty());

    // Under the limit, a body without Content-Length is fine.
    let small = safetensors_file(10);
    f.server.put("/small-stream", small.clone());
    f.server
        .state
        .lock()
        .unwrap()
        .no_length
        .insert("/small-stream".into());
    let got = sources
        .lora(&f.server.url("/small-stream"), "")
        .await
        .unwrap();
    assert_eq!(std::fs::read(got).unwrap(), small);
}

#[tokio::test]
async fn pickles_and_zips_are_never_kept() {
    let f = fixture().await;
    let mut pickle = vec![0x80, 0x04, 0x95, 0x10, 0, 0, 0, 0, 0, 0, 0];
    pickle.extend_from_slice(b"}q\x00(X\x05\x00\x00\x00state_dictq\x01.");
    let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x00\x00archive/data.pkl".to_vec();
    zip.resize(4096, 0);
    f.server.put("/api/download/models/1", pickle);
    f.server.put("/api/download/models/2", zip);
    f.server.put(
        "/org/bad/resolve/main/pytorch_lora_weights.safetensors",
        b"PK\x03\x04xxxxxxxx".to_vec(),
    );
    for url in [
        f.server.url("/api/download/models/1"),
        f.server.url("/api/download/models/2"),
    ] {
        let err = f.sources.lora(&url, "").await.unwrap_err();
        assert!(matches!(err, SourceError::Pickle { .. }), "{err}");
        assert!(
            err.to_string().contains("pickles are never loaded"),
            "{err}"
        );
        assert!(err.to_string().contains(&url), "{err}");
    }
    let err = f.sources.lora("org/bad", "").await.unwrap_err();
    assert!(matches!(err, SourceError::Pickle { .. }), "{err}");
    // Not safetensors and not a pickle either: refused all the same.
    f.server.put(
        "/api/download/models/3",
        b"<html>log in first</html>".to_vec(),
    );
    let err = f
        .sources
        .lora(&f.server.url("/api/download/models/3"), "")
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::NotSafetensors { .. }), "{err}");
    assert!(
        files_under(&f.cache).is_empty(),
        "{:?}",
        files_under(&f.cache)
    );

    // Pickle names are refused before any request.
    let before = f.server.requests().len();
    for (model, file) in [
        ("org/lora", "model.ckpt"),
        ("org/lora", "adapter_model.bin"),
        (&*f.server.url("/lora.pt"), ""),
        (&*f.server.url("/lora.PTH?download=1"), ""),
    ] {
        let err = f.sources.lora(model, file).await.unwrap_err();
        assert!(
            err.to_string().contains("pickles are never loaded"),
            "{err}"
        );
    }
    assert_eq!(f.server.requests().len(), before);
}

#[tokio::test]
async fn concurrent_fetches_of_one_url_download_it_once() {
    let f = fixture().await;
    let weights = safetensors_file(200_000);
    let path = "/api/download/models/77";
    f.server.put(path, weights.clone());
    f.server.state.lock().unwrap().delay = Duration::from_millis(300);
    let url = f.server.url(path);
    // Another instance over the same cache stands in for another process.
    let config = SourcesConfig {
        mirror: String::new(),
        allow_private_urls: true,
        ..SourcesConfig::default()
    };
    let other = ModelSources::new(&config, &f.models, &f.cache);
    let (a, b, c) = tokio::join!(
        f.sources.lora(&url, ""),
        other.lora(&url, ""),
        f.sources.textual_inversion(&url, "")
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a == b && b == c);
    assert_eq!(std::fs::read(&a).unwrap(), weights);
    assert_eq!(f.server.requests_for(path).len(), 1);
}

#[tokio::test]
async fn a_dead_server_fails_fast_naming_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = SourcesConfig {
        mirror: format!("http://127.0.0.1:{port}"),
        timeout_secs: 2,
        ..SourcesConfig::default()
    };
    let sources = ModelSources::new(&config, dir.path(), &dir.path().join("cache"));
    let started = Instant::now();
    let err = sources.lora("org/lora", "").await.unwrap_err();
    let url =
        format!("http://127.0.0.1:{port}/org/lora/resolve/main/pytorch_lora_weights.safetensors");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(matches!(err, SourceError::Connection { .. }), "{err}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(files_under(&dir.path().join("cache")).is_empty());

    // No mirror at all: the error says where it looked and what to set.
    let off = ModelSources::new(
        &SourcesConfig {
            mirror: String::new(),
            ..SourcesConfig::default()
        },
        dir.path(),
        &dir.path().join("cache"),
    );
    let err = off.base_model("org/sd", None).await.unwrap_err();
    assert!(err.to_string().contains("sources.mirror"), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Accepts connections, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = SourcesConfig {
        mirror: base.clone(),
        ..SourcesConfig::default()
    };
    let sources = ModelSources::new(&config, dir.path(), &dir.path().join("cache"))
        .with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = sources.vae("org/vae").await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{base}/org/vae/resolve/main/config.json")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn bad_names_are_refused_without_a_request() {
    let f = fixture().await;
    for (model, file) in [
        ("../etc", ""),
        ("org/lora", "../../x.safetensors"),
        ("a/b/c", ""),
        ("org/lora", "/abs.safetensors"),
    ] {
        let err = f.sources.lora(model, file).await.unwrap_err();
        assert!(
            matches!(err, SourceError::Refused { .. }),
            "{model} {file}: {err}"
        );
    }
    assert!(f
        .sources
        .base_model("org/sd", Some("../fp16"))
        .await
        .is_err());
    assert!(f.server.requests().is_empty());
}

#[tokio::test]
async fn the_cache_keeps_to_its_limit_dropping_the_least_recently_used() {
    let f = fixture().await;
    let weights = safetensors_file(4096);
    let size = weights.len() as u64;
    let urls: Vec<String> = (1..=4)
        .map(|i| {
            let path = format!("/api/download/models/{i}");
            f.server.put(&path, weights.clone());
            f.server.url(&path)
        })
        .collect();
    // Room for two files (and their small records).
    let sources = f.sources.clone().with_max_cache_bytes(2 * size + 1024);
    let pause = || tokio::time::sleep(Duration::from_millis(30));
    let a = sources.lora(&urls[0], "").await.unwrap();
    pause().await;
    let b = sources.lora(&urls[1], "").await.unwrap();
    pause().await;
    let c = sources.lora(&urls[2], "").await.unwrap();
    assert!(!a.exists(), "the least recently used went first");
    assert!(b.exists() && c.exists());
    pause().await;
    assert_eq!(sources.lora(&urls[1], "").await.unwrap(), b, "a hit");
    pause().await;
    let d = sources.lora(&urls[3], "").await.unwrap();
    assert!(!c.exists(), "b was used after c, so c went");
    assert!(b.exists() && d.exists());
    let cached: Vec<String> = sources
        .cached()
        .unwrap()
        .into_iter()
        .map(|m| m.source)
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
}

#[tokio::test]
async fn a_busy_server_is_tried_again_after_its_retry_after_then_given_up() {
    let f = fixture().await;
    let weights = safetensors_file(64);
    let path = "/api/download/models/5";
    f.server.put(path, weights.clone());
    f.server.state.lock().unwrap().busy.insert(path.into(), 1);
    let url = f.server.url(path);
    let started = Instant::now();
    let got = f.sources.lora(&url, "").await.unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), weights);
    assert_eq!(f.server.requests_for(path).len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );

    // Busy for longer than the node waits: a transient error, nothing cached.
    let other = "/api/download/models/6";
    f.server.put(other, weights);
    f.server.state.lock().unwrap().busy.insert(other.into(), 10);
    let err = f.sources.lora(&f.server.url(other), "").await.unwrap_err();
    assert!(
        matches!(err, SourceError::Status { status: 503, .. }),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(
        f.server.requests_for(other).len(),
        4,
        "one try and three more"
    );
}
