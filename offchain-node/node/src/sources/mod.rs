//! Where the models a task names come from: the models directory first,
//! then a Hugging Face–compatible mirror (`<mirror>/<repo>/resolve/<revision>/<file>`),
//! then, for single-file models (LoRA, textual inversion), the URL the task
//! gives (`https://civitai.com/api/download/models/<id>`).
//!
//! Downloads land in a cache keyed by their source (`cache.rs`), streamed,
//! resumed after a cut, bounded in size and in idle time (`download.rs`),
//! and are kept only if they are safetensors (or JSON configs): pickles are
//! refused by name and by content, never loaded (`check.rs`).
//!
//! A failure is a [`SourceError`] that names what failed; the node counts it
//! as a local fault (it cannot run the task; that is not the task's fault).

mod cache;
mod check;
mod download;
mod local;
mod names;

use crate::config::{Config, SourcesConfig};
use cache::{write_atomic, Entry, EntryLock};
use check::Format;
use download::Downloader;
use reqwest::Url;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// diffusers' `save_lora_weights` file name, what a LoRA repo holds.
pub const DEFAULT_LORA_FILE: &str = "pytorch_lora_weights.safetensors";
/// diffusers' textual inversion file name.
pub const DEFAULT_TEXTUAL_INVERSION_FILE: &str = "learned_embeds.safetensors";
/// The file a URL download is stored as.
const URL_FILE: &str = "model.safetensors";

/// What kind of model is looked for (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Base,
    Lora,
    Vae,
    TextualInversion,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Base => "base model",
            Kind::Lora => "LoRA",
            Kind::Vae => "VAE",
            Kind::TextualInversion => "textual inversion",
        })
    }
}

/// Why a model could not be had. Each message names the model, URL or file
/// at fault and, where a setting decides, the setting.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The name cannot be used as given (a bad id or file name, a URL where
    /// only ids work, URLs turned off).
    #[error("{kind} {model:?}: {reason}")]
    Refused {
        kind: Kind,
        model: String,
        reason: String,
    },
    #[error("{kind} {model:?} is not in the models directory {} and {why}", dir.display())]
    NotFound {
        kind: Kind,
        model: String,
        dir: PathBuf,
        why: String,
    },
    #[error("{url}: not found (HTTP 404)")]
    Missing { url: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(
        "{url}: {size} bytes is over the download limit of {limit} bytes (sources.max_download_mb)"
    )]
    TooLarge { url: String, size: u64, limit: u64 },
    #[error("{url}: timed out: no answer or no data for {secs} s (sources.timeout_secs)")]
    Timeout { url: String, secs: f64 },
    #[error("{url}: {detail}")]
    Connection { url: String, detail: String },
    #[error("{url}: the download stopped at {got} bytes{}", expected.map(|e| format!(" of {e}")).unwrap_or_default())]
    Incomplete {
        url: String,
        got: u64,
        expected: Option<u64>,
    },
    #[error("{what}: {why}; pickles are never loaded, only safetensors files")]
    Pickle { what: String, why: String },
    #[error("{url}: not a safetensors file: {reason}")]
    NotSafetensors { url: String, reason: String },
    #[error("{url}: not JSON: {reason}")]
    NotJson { url: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    fn io(path: &Path, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Whether the same request may well work later (a network fault, a
    /// busy server), as opposed to a model that is missing, too large or
    /// refused. A partial download is kept for the next try only then.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Timeout { .. }
            | SourceError::Connection { .. }
            | SourceError::Incomplete { .. } => true,
            SourceError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// One folder of the download cache, for `hydrogen-node models list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// What tasks name it by: a repo id or a URL.
    pub source: String,
    /// Where it came from: the URL, or `<mirror>/<repo> @ <revision>`.
    pub origin: String,
    pub path: PathBuf,
    /// Bytes on disk, partial downloads included.
    pub bytes: u64,
    /// Some file there is a partial download (resumed on the next fetch).
    pub partial: bool,
}

/// The configured mirror.
#[derive(Debug, Clone)]
enum Mirror {
    Off,
    On(Url),
    /// Not an http(s) URL: the message says so when a download needs it.
    Invalid(String),
}

/// Finds or downloads models; cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct ModelSources {
    models_dir: PathBuf,
    cache_dir: PathBuf,
    mirror: Mirror,
    revision: String,
    allow_urls: bool,
    allow_private_urls: bool,
    /// `max_cache_gb` in bytes; `None` keeps everything.
    max_cache_bytes: Option<u64>,
    downloader: Downloader,
}

impl ModelSources {
    /// Sources as configured, looking in `models_dir` first and keeping
    /// downloads in `cache_dir` (see [`Config::model_cache_dir`]).
    pub fn new(config: &SourcesConfig, models_dir: &Path, cache_dir: &Path) -> Self {
        let mirror = match config.mirror.trim() {
            "" => Mirror::Off,
            text => match Url::parse(text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base() => {
                    Mirror::On(url)
                }
                _ => Mirror::Invalid(text.into()),
            },
        };
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        ModelSources {
            models_dir: models_dir.to_owned(),
            cache_dir: cache_dir.to_owned(),
            mirror,
            revision: config.revision.clone(),
            allow_urls: config.allow_urls,
            allow_private_urls: config.allow_private_urls,
            max_cache_bytes: config.max_cache_gb.map(|gb| gb.saturating_mul(1 << 30)),
            downloader: Downloader::new(timeout, config.max_download_mb.saturating_mul(1 << 20)),
        }
    }

    /// [`ModelSources::new`] with the node's `models_dir`, `[sources]` and cache folder.
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            &config.sources,
            &config.models_dir,
            &config.model_cache_dir(),
        )
    }

    /// Overrides `max_download_mb` with a limit in bytes (for tests).
    pub fn with_max_download_bytes(mut self, bytes: u64) -> Self {
        self.downloader = Downloader::new(self.downloader.timeout(), bytes);
        self
    }

    /// Overrides `max_cache_gb` with a limit in bytes (for tests).
    pub fn with_max_cache_bytes(mut self, bytes: u64) -> Self {
        self.max_cache_bytes = Some(bytes);
        self
    }

    /// Overrides `timeout_secs` (for tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.downloader = Downloader::new(timeout, self.downloader.max_bytes());
        self
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// A base model's diffusers folder: in the models directory, else
    /// downloaded from the mirror (the files the engine reads; with
    /// `variant`, e.g. `fp16`, its weight files where the repo has them).
    pub async fn base_model(
        &self,
        id: &str,
        variant: Option<&str>,
    ) -> Result<PathBuf, SourceError> {
        let kind = Kind::Base;
        if names::is_url(id) {
            return Err(refused(
                kind,
                id,
                "a base model is named by its id, not a URL",
            ));
        }
        if let Some(dir) = crate::models::resolve(&self.models_dir, id) {
            return Ok(dir);
        }
        let variant = variant.filter(|v| !v.is_empty());
        if let Some(v) =
            variant.filter(|v| !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(refused(
                kind,
                id,
                &format!("variant {v:?} is not a plain name"),
            ));
        }
        let (entry, mirror) = self.repo_entry(kind, id)?;
        let marker = entry.dir.join(match variant {
            Some(v) => format!(".complete.{v}"),
            None => ".complete".into(),
        });
        if marker.is_file() {
            entry.touch();
            return Ok(entry.dir);
        }
        let lock = self.lock(&entry).await?;
        if marker.is_file() {
            entry.touch();
            return Ok(entry.dir);
        }
        let repo = Repo {
            mirror: &mirror,
            id,
            revision: &self.revision,
            dir: &entry.dir,
        };
        let fetched = async {
            entry
                .create(&lock)
                .map_err(|e| SourceError::io(&entry.dir, e))?;
            self.fetch_pipeline(&repo, variant).await?;
            write_atomic(&marker, b"").map_err(|e| SourceError::io(&marker, e))
        }
        .await;
        self.settle(&entry, &lock, fetched)?;
        Ok(entry.dir)
    }

    /// A LoRA's safetensors file: `model` is a repo id holding
    /// `weight_file_name` (empty: [`DEFAULT_LORA_FILE`]), or a URL.
    pub async fn lora(&self, model: &str, weight_file_name: &str) -> Result<PathBuf, SourceError> {
        self.single_file(Kind::Lora, model, weight_file_name, DEFAULT_LORA_FILE)
            .await
    }

    /// A textual inversion's safetensors file, as [`ModelSources::lora`]
    /// (default file [`DEFAULT_TEXTUAL_INVERSION_FILE`]).
    pub async fn textual_inversion(
        &self,
        model: &str,
        weight_file_name: &str,
    ) -> Result<PathBuf, SourceError> {
        let default = DEFAULT_TEXTUAL_INVERSION_FILE;
        self.single_file(Kind::TextualInversion, model, weight_file_name, default)
            .await
    }

    /// A VAE's folder (`config.json` and `diffusion_pytorch_model.safetensors`):
    /// in the models directory, else the mirror repo's root, else its `vae/`.
    pub async fn vae(&self, model: &str) -> Result<PathBuf, SourceError> {
        let kind = Kind::Vae;
        if names::is_url(model) {
            return Err(refused(kind, model, "a VAE is named by its id, not a URL"));
        }
        if let Some(dir) = local::vae(&self.models_dir, model) {
            return Ok(dir);
        }
        let (entry, mirror) = self.repo_entry(kind, model)?;
        let complete = |dir: &Path| {
            [dir.to_owned(), dir.join("vae")]
                .into_iter()
                .find(|d| local::is_vae_folder(d))
        };
        if let Some(dir) = complete(&entry.dir) {
            entry.touch();
            return Ok(dir);
        }
        let lock = self.lock(&entry).await?;
        if let Some(dir) = complete(&entry.dir) {
            entry.touch();
            return Ok(dir);
        }
        let repo = Repo {
            mirror: &mirror,
            id: model,
            revision: &self.revision,
            dir: &entry.dir,
        };
        let fetched = async {
            entry
                .create(&lock)
                .map_err(|e| SourceError::io(&entry.dir, e))?;
            // A VAE repo (`stabilityai/sd-vae-ft-mse`) has it at its root; a
            // pipeline repo in `vae/`.
            let folder = match self.get(&repo, "config.json").await {
                Ok(()) => "",
                Err(SourceError::Missing { .. }) => {
                    self.get(&repo, "vae/config.json").await?;
                    "vae/"
                }
                Err(e) => return Err(e),
            };
            self.get(
                &repo,
                &format!("{folder}diffusion_pytorch_model.safetensors"),
            )
            .await?;
            Ok(entry.dir.join(folder))
        }
        .await;
        self.settle(&entry, &lock, fetched)
    }

    /// Every folder of the download cache.
    pub fn cached(&self) -> std::io::Result<Vec<CachedModel>> {
        cache::list(&self.cache_dir)
    }

    /// Removes the cache folders of `source` (a repo id, a URL, or a path
    /// `cached` printed); whether there were any.
    pub fn remove(&self, source: &str) -> std::io::Result<bool> {
        cache::remove(&self.cache_dir, source)
    }

    async fn single_file(
        &self,
        kind: Kind,
        model: &str,
        file: &str,
        default_file: &str,
    ) -> Result<PathBuf, SourceError> {
        if names::is_url(model) {
            if !self.allow_urls {
                return Err(refused(
                    kind,
                    model,
                    "downloads by URL are off (sources.allow_urls)",
                ));
            }
            let url = names::download_url(kind, model)?;
            let entry = Entry::url(&self.cache_dir, &url);
            let dest = entry.dir.join(URL_FILE);
            // A cached file needs no network, so no lookup either.
            if !self.allow_private_urls && !dest.is_file() {
                names::refuse_private_host(kind, model, &url).await?;
            }
            return self.weights_in(&entry, dest, &url).await;
        }
        let file = if file.is_empty() { default_file } else { file };
        let path = names::repo_file(kind, model, file)?;
        if let Some(found) = local::single_file(&self.models_dir, model, path) {
            return Ok(found);
        }
        let (entry, mirror) = self.repo_entry(kind, model)?;
        let url = resolve_url(&mirror, model, &self.revision, file);
        let dest = entry.dir.join(path);
        self.weights_in(&entry, dest, &url).await
    }

    /// `dest` in `entry`, downloaded from `url` unless it is there. Checked
    /// as safetensors whatever its name: the task chose the name.
    async fn weights_in(
        &self,
        entry: &Entry,
        dest: PathBuf,
        url: &Url,
    ) -> Result<PathBuf, SourceError> {
        if dest.is_file() {
            entry.touch();
            return Ok(dest);
        }
        let lock = self.lock(entry).await?;
        let fetched = async {
            entry
                .create(&lock)
                .map_err(|e| SourceError::io(&entry.dir, e))?;
            self.downloader.fetch(url, &dest, Format::Safetensors).await
        }
        .await;
        self.settle(entry, &lock, fetched)?;
        Ok(dest)
    }

    /// The files the engine reads from a diffusers pipeline.
    async fn fetch_pipeline(
        &self,
        repo: &Repo<'_>,
        variant: Option<&str>,
    ) -> Result<(), SourceError> {
        for file in ["model_index.json", "scheduler/scheduler_config.json"] {
            self.get(repo, file).await?;
        }
        // CLIP's BPE as vocab.json + merges.txt, or (newer transformers)
        // the same in tokenizer.json; the engine reads either.
        match self.get(repo, "tokenizer/vocab.json").await {
            Ok(()) => self.get(repo, "tokenizer/merges.txt").await?,
            Err(SourceError::Missing { .. }) => self.get(repo, "tokenizer/tokenizer.json").await?,
            Err(e) => return Err(e),
        }
        // The pad token; SD 1.x has none and pads with `<|endoftext|>`.
        for file in [
            "tokenizer/tokenizer_config.json",
            "tokenizer/special_tokens_map.json",
        ] {
            match self.get(repo, file).await {
                Ok(()) | Err(SourceError::Missing { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for (component, stem) in [
            ("text_encoder", "model"),
            ("unet", "diffusion_pytorch_model"),
            ("vae", "diffusion_pytorch_model"),
        ] {
            self.get(repo, &format!("{component}/config.json")).await?;
            let plain = format!("{component}/{stem}.safetensors");
            let Some(v) = variant else {
                self.get(repo, &plain).await?;
                continue;
            };
            match self
                .get(repo, &format!("{component}/{stem}.{v}.safetensors"))
                .await
            {
                Ok(()) => {}
                Err(SourceError::Missing { url }) => {
                    tracing::warn!(%url, "no {v} weights there; taking the full-precision ones");
                    self.get(repo, &plain).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `file` of `repo` into its cache folder (a no-op when it is there).
    async fn get(&self, repo: &Repo<'_>, file: &str) -> Result<(), SourceError> {
        let url = resolve_url(repo.mirror, repo.id, repo.revision, file);
        let dest = repo.dir.join(file);
        self.downloader.fetch(&url, &dest, Format::of(&dest)).await
    }

    /// The cache folder of repo `id` on the mirror, and the mirror.
    fn repo_entry(&self, kind: Kind, id: &str) -> Result<(Entry, Url), SourceError> {
        names::repo_id(kind, id)?;
        let not_found = |why: String| SourceError::NotFound {
            kind,
            model: id.into(),
            dir: self.models_dir.clone(),
            why,
        };
        let mirror = match &self.mirror {
            Mirror::On(url) => url.clone(),
            Mirror::Off => {
                return Err(not_found("no mirror is configured (sources.mirror)".into()))
            }
            Mirror::Invalid(text) => {
                return Err(not_found(format!(
                    "sources.mirror {text:?} is not an http(s) URL"
                )))
            }
        };
        let entry = Entry::hf(&self.cache_dir, &mirror, id, &self.revision);
        Ok((entry, mirror))
    }

    async fn lock(&self, entry: &Entry) -> Result<EntryLock, SourceError> {
        entry
            .lock()
            .await
            .map_err(|e| SourceError::io(&entry.dir, e))
    }

    /// After a fetch under `lock`: on failure, drops the folder if nothing
    /// in it is worth keeping, so a failed source leaves no trace.
    fn settle<T>(
        &self,
        entry: &Entry,
        lock: &EntryLock,
        fetched: Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        match &fetched {
            Err(e) => {
                tracing::warn!(source = entry.source(), error = %e, "model download failed");
                entry.prune_if_empty(lock);
            }
            Ok(_) => {
                entry.touch();
                self.trim(&entry.dir);
            }
        }
        fetched
    }
}

impl ModelSources {
    /// Keeps the cache within `max_cache_gb` after a download, dropping the
    /// least recently used models first (never `keep`, just fetched).
    fn trim(&self, keep: &Path) {
        let Some(max) = self.max_cache_bytes else {
            return;
        };
        match cache::evict(&self.cache_dir, max, keep) {
            Ok(removed) => {
                for m in removed {
                    tracing::info!(source = %m.source, bytes = m.bytes, "removed from the model cache (sources.max_cache_gb)");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot trim the model cache"),
        }
    }
}

/// A repo being fetched into its cache folder.
struct Repo<'a> {
    mirror: &'a Url,
    id: &'a str,
    revision: &'a str,
    dir: &'a Path,
}

/// `<mirror>/<id>/resolve/<revision>/<file>`, each part percent-encoded
/// (a revision like `refs/pr/1` is one segment, as the Hub wants it).
fn resolve_url(mirror: &Url, id: &str, revision: &str, file: &str) -> Url {
    let mut url = mirror.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(id.split('/'))
            .push("resolve")
            .push(revision)
            .extend(file.split('/'));
    }
    url
}

fn refused(kind: Kind, model: &str, reason: &str) -> SourceError {
    SourceError::Refused {
        kind,
        model: model.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_urls() {
        let hf = Url::parse("https://huggingface.co").unwrap();
        assert_eq!(
            resolve_url(&hf, "org/lora", "main", "a/b.safetensors").as_str(),
            "https://huggingface.co/org/lora/resolve/main/a/b.safetensors"
        );
        let private = Url::parse("http://mirror:8080/hf/").unwrap();
        assert_eq!(
            resolve_url(&private, "gpt2", "refs/pr/1", "config.json").as_str(),
            "http://mirror:8080/hf/gpt2/resolve/refs%2Fpr%2F1/config.json"
        );
    }

    #[test]
    fn the_api_is_send_and_sync() {
        fn send<T: Send>(_: T) {}
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ModelSources>();
        send_sync::<SourceError>();
        let sources =
            ModelSources::new(&SourcesConfig::default(), Path::new("/m"), Path::new("/c"));
        send(sources.base_model("a/b", None));
        send(sources.lora("a/b", ""));
        send(sources.vae("a/b"));
        send(sources.textual_inversion("a/b", ""));
    }
}
