//! The node's configuration: a TOML file, then `HYDROGEN_NODE_*` environment
//! variables over it (`HYDROGEN_NODE_CHAIN_URL`, nested keys with `__`:
//! `HYDROGEN_NODE_GPU__VRAM_GB`), then command-line flags.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variables with the config prefix that are not config keys.
const NOT_CONFIG: &[&str] = &["bin", "crash_at", "key_passphrase", "config"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// WebSocket RPC of a chain node.
    pub chain_url: String,
    /// The hydrogen contract's address (SS58 or 0x hex).
    pub contract: String,
    /// The relay's base URL.
    pub relay_url: String,
    /// The key file written by `hydrogen-node init`.
    pub key_file: PathBuf,
    /// A file holding the key file's passphrase (else
    /// `HYDROGEN_NODE_KEY_PASSPHRASE`, else a prompt on a terminal).
    pub key_passphrase_file: Option<PathBuf>,
    /// The task database and the images of unfinished tasks.
    pub data_dir: PathBuf,
    /// Models in diffusers layout, one folder per model id
    /// (`<models_dir>/runwayml/stable-diffusion-v1-5/unet/...`).
    pub models_dir: PathBuf,
    /// `burn` (the diffusion engine). Test builds also know `cheat` and `fail`.
    pub engine: String,
    /// Where the engine runs: `wgpu` (the best GPU; SPIR-V with the engine's `vulkan` feature), `wgpu-cpu` (lavapipe),
    /// `cpu` (every core), `cuda` (builds with the engine's `cuda` feature).
    pub backend: String,
    pub gpu: GpuConfig,
    /// Memory one generation may take, in MB. Tasks whose estimate is larger
    /// are declined (a local fault: the node stays silent instead of being
    /// killed mid-task). Default: `gpu.vram_gb` on a GPU backend; on the
    /// `cpu` backend the host's memory less 1 GB.
    pub memory_limit_mb: Option<u64>,
    /// What `run` does on SIGTERM/SIGINT once the current task is done:
    /// `pause` (keep the stake, take no tasks), `quit` (stake returned), `stay`.
    pub on_shutdown: OnShutdown,
    /// Seconds between polls of the node's own record and the tasks it works on.
    pub poll_interval_secs: u64,
    /// Contribute entropy whenever queued tasks wait for it.
    pub contribute_entropy: bool,
    /// `host:port` of the status server (web UI on `/`, `/status`,
    /// `/metrics`, `/logs`, `/tasks/recent`); empty turns it off. Loopback
    /// by default: anything there is readable without a token.
    pub http_listen: String,
    /// The bearer token that `POST /control/{join,pause,resume,quit}` on the
    /// status server require (at least 16 characters; compared in constant
    /// time). Unset or empty: those endpoints answer 403 and the web UI is
    /// read-only. Also `HYDROGEN_NODE_CONTROL_TOKEN`.
    pub control_token: Option<String>,
    pub log: LogConfig,
    /// Where models missing from `models_dir` are downloaded from.
    pub sources: SourcesConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Overrides the adapter's name as reported at join.
    pub name: Option<String>,
    /// GPU memory in GB reported at join; tasks asking for more are never
    /// given to this node. Required when it cannot be detected.
    pub vram_gb: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `hydrogen_node=debug,info`...
    pub level: String,
    /// One JSON object per line instead of text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            json: false,
        }
    }
}

/// Model downloads (`[sources]`): a model a task names that is not in
/// `models_dir` is fetched from a Hugging Face–compatible mirror (an id like
/// `runwayml/stable-diffusion-v1-5`) or from its URL (a LoRA or textual
/// inversion named by `https://...`), into `cache_dir`. Only safetensors
/// files are kept: pickles (`.ckpt`, `.pt`, `.bin`) are refused, never loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// Base URL of a Hugging Face–compatible mirror: files are fetched from
    /// `<mirror>/<repo>/resolve/<revision>/<file>`. Point it at a private
    /// mirror if you have one; empty turns model downloads by id off.
    pub mirror: String,
    /// The branch, tag or commit fetched from the mirror.
    pub revision: String,
    /// Where downloads are kept. Default: `<data_dir>/model-cache`.
    /// `hydrogen-node models list` shows what is there, `models remove` drops it.
    pub cache_dir: Option<PathBuf>,
    /// The largest file one download may be, in MB (checked before and
    /// while downloading).
    pub max_download_mb: u64,
    /// Seconds a download may wait to connect, or wait for data once
    /// connected, before it is given up (not a cap on the whole download).
    pub timeout_secs: u64,
    /// Download LoRAs and textual inversions that tasks name by URL
    /// (`https://civitai.com/api/download/models/<id>`).
    pub allow_urls: bool,
    /// Let task URLs point at loopback, private, link-local or other
    /// non-public addresses. Off: a task could otherwise make the node fetch
    /// from services on its own host or network.
    pub allow_private_urls: bool,
    /// The most the download cache may hold, in GB; after each download the
    /// least recently used models are removed to fit. Unset: no limit.
    pub max_cache_gb: Option<u64>,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            mirror: "https://huggingface.co".into(),
            revision: "main".into(),
            cache_dir: None,
            max_download_mb: 8192,
            timeout_secs: 60,
            allow_urls: true,
            allow_private_urls: false,
            max_cache_gb: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnShutdown {
    Pause,
    Quit,
    Stay,
}

/// `~/.hydrogen-node`, or `./.hydrogen-node` without a home directory.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".hydrogen-node")
}

impl Default for Config {
    fn default() -> Self {
        let home = default_home();
        Config {
            chain_url: "ws://127.0.0.1:9944".into(),
            contract: String::new(),
            relay_url: "http://127.0.0.1:8700".into(),
            key_file: home.join("key.json"),
            key_passphrase_file: None,
            data_dir: home.join("data"),
            models_dir: home.join("models"),
            engine: "burn".into(),
            backend: "wgpu".into(),
            gpu: GpuConfig::default(),
            memory_limit_mb: None,
            on_shutdown: OnShutdown::Pause,
            poll_interval_secs: 3,
            contribute_entropy: true,
            http_listen: "127.0.0.1:7412".into(),
            control_token: None,
            log: LogConfig::default(),
            sources: SourcesConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then the file at `path` (when given, it must exist; when
    /// not, `~/.hydrogen-node/config.toml` is read if present), then the
    /// environment.
    pub fn load(path: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(path) => {
                if !path.exists() {
                    return Err(Box::new(figment::Error::from(format!(
                        "config file {} does not exist",
                        path.display()
                    ))));
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file(default_home().join("config.toml"))),
        }
        figment
            .merge(
                Env::prefixed("HYDROGEN_NODE_")
                    .split("__")
                    .ignore(NOT_CONFIG),
            )
            .extract()
            .map_err(Box::new)
    }

    /// Where model downloads are kept: `sources.cache_dir`, else
    /// `<data_dir>/model-cache`.
    pub fn model_cache_dir(&self) -> PathBuf {
        self.sources
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("model-cache"))
    }

    /// The control token, if one is set (an empty one is none).
    pub fn control_token(&self) -> Option<&str> {
        self.control_token.as_deref().filter(|t| !t.is_empty())
    }

    /// The configuration as a commented-free TOML file, for `config show`;
    /// the control token is not printed.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.control_token().is_some() {
            shown.control_token = Some("<set, not shown>".into());
        }
        toml::to_string_pretty(&shown).expect("the config serializes to TOML")
    }
}

#[cfg(test)]
// figment::Jail's closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "node.toml",
                r#"
                chain_url = "ws://chain:9944"
                engine = "burn"
                [gpu]
                vram_gb = 12
                [sources]
                allow_urls = false
                "#,
            )?;
            jail.set_env("HYDROGEN_NODE_GPU__VRAM_GB", "24");
            jail.set_env("HYDROGEN_NODE_ON_SHUTDOWN", "quit");
            jail.set_env("HYDROGEN_NODE_SOURCES__MIRROR", "https://mirror.example");
            // Not config keys: ignored rather than refused.
            jail.set_env("HYDROGEN_NODE_BIN", "/usr/bin/substrate-contracts-node");
            let config = Config::load(Some(Path::new("node.toml"))).map_err(|e| *e)?;
            assert_eq!(config.chain_url, "ws://chain:9944");
            assert_eq!(config.gpu.vram_gb, Some(24));
            assert_eq!(config.on_shutdown, OnShutdown::Quit);
            assert_eq!(config.sources.mirror, "https://mirror.example");
            assert_eq!(config.sources.revision, "main");
            assert!(!config.sources.allow_urls);
            assert_eq!(
                config.model_cache_dir(),
                config.data_dir.join("model-cache")
            );
            assert_eq!(config.control_token, None);
            jail.set_env("HYDROGEN_NODE_CONTROL_TOKEN", "0123456789abcdef-secret");
            let config = Config::load(Some(Path::new("node.toml"))).map_err(|e| *e)?;
            assert_eq!(config.control_token(), Some("0123456789abcdef-secret"));
            assert!(!config.to_toml().contains("secret"));
            assert_eq!(
                config.poll_interval_secs,
                Config::default().poll_interval_secs
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("node.toml", "chain_ulr = \"ws://typo\"\n")?;
            let err = Config::load(Some(Path::new("node.toml"))).unwrap_err();
            assert!(err.to_string().contains("chain_ulr"), "{err}");
            assert!(Config::load(Some(Path::new("missing.toml"))).is_err());
            Ok(())
        });
    }
}
