//! The relay's configuration: a TOML file, every field with a default but
//! the contract's address. See `relay/README.md` for an annotated example.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the relay needs to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The chain node's WebSocket RPC.
    #[serde(default = "default_rpc_url")]
    pub rpc_url: String,
    /// The `hydrogen` contract: SS58 address or `0x` + 64 hex digits.
    pub contract: String,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub auth: AuthConfig,
    /// How long a task read from the chain is reused before it is read
    /// again, in ms. A refusal always reads again first, so this only
    /// delays nothing but a status change from allowed to not allowed.
    #[serde(default = "default_task_cache_ms")]
    pub task_cache_ms: u64,
    /// Secret URI of the ECDSA key that signs upload receipts
    /// (`hydrogen_sdk::relay::receipt`); its public key must be registered
    /// on chain with `set_relay_key`. Without one the relay signs no
    /// receipts, and only a contract with no relay key pays uploaders.
    #[serde(default)]
    pub receipt_key: Option<String>,
}

impl Config {
    /// A configuration with every default, for `contract` on `rpc_url`.
    pub fn new(rpc_url: impl Into<String>, contract: impl Into<String>) -> Config {
        Config {
            listen: default_listen(),
            rpc_url: rpc_url.into(),
            contract: contract.into(),
            storage: StorageConfig::default(),
            limits: Limits::default(),
            retention: Retention::default(),
            auth: AuthConfig::default(),
            task_cache_ms: default_task_cache_ms(),
            receipt_key: None,
        }
    }

    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// A directory on local disk, created if missing.
    Local { path: PathBuf },
    /// An S3 bucket or any S3-compatible store (MinIO, R2, Ceph...).
    /// Unset fields come from the standard `AWS_*` environment variables.
    S3 {
        /// `s3://bucket` (a path after the bucket is not supported: use a
        /// bucket of its own).
        url: String,
        #[serde(default)]
        region: Option<String>,
        /// For S3-compatible stores: `http://127.0.0.1:9000`.
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default)]
        access_key_id: Option<String>,
        #[serde(default)]
        secret_access_key: Option<String>,
        /// Allow a plain-HTTP endpoint.
        #[serde(default)]
        allow_http: bool,
    },
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Local {
            path: PathBuf::from("relay-data"),
        }
    }
}

/// Size limits, enforced while a body streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest task arguments body (1 MiB).
    pub max_args_bytes: u64,
    /// Largest single image (16 MiB).
    pub max_image_bytes: u64,
    /// Most images per task (10).
    pub max_images: u8,
    /// PNG decodes and pHash checks run at once (0: one per CPU core).
    pub image_checks: usize,
    /// Image uploads in progress at once (0: four per image check); one
    /// more is refused with `503 busy` and `Retry-After`, so a burst
    /// queues at the clients, not in the relay's memory.
    pub uploads_in_flight: usize,
}

impl Limits {
    /// [`Limits::image_checks`], with 0 resolved to the core count.
    pub fn checks(&self) -> usize {
        match self.image_checks {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// [`Limits::uploads_in_flight`], with 0 resolved.
    pub fn uploads(&self) -> usize {
        match self.uploads_in_flight {
            0 => 4 * self.checks(),
            n => n,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args_bytes: 1 << 20,
            max_image_bytes: 16 << 20,
            max_images: 10,
            image_checks: 0,
            uploads_in_flight: 0,
        }
    }
}

/// When stored blobs are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Seconds a finished (completed or aborted) task's blobs are kept
    /// after the relay first sees it finished (one day).
    pub ttl_secs: u64,
    /// Seconds past its deadline after which an unfinished task's blobs are
    /// deleted anyway (one day: far beyond the reveal and upload windows).
    pub grace_secs: u64,
    /// Seconds between sweeps (five minutes); 0 turns the periodic sweep
    /// off (`RunningRelay::sweep_now` still works).
    pub sweep_interval_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            ttl_secs: 24 * 3600,
            grace_secs: 24 * 3600,
            sweep_interval_secs: 300,
        }
    }
}

/// Request authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The authorities (`host` or `host:port`, as clients write them in
    /// the relay's URL and send them as `Host`) this relay service answers
    /// for; a request signed for any other is refused. Replicas behind one
    /// load balancer share the balancer's. Empty: the listening address
    /// (and `localhost:port` on loopback); required when listening on a
    /// wildcard address.
    pub authorities: Vec<String>,
    /// How far a request's timestamp may be from the relay's clock, in ms;
    /// accepted signatures are remembered this long to refuse replays.
    pub max_skew_ms: u64,
    /// Where accepted signatures are remembered: `store` (default), in the
    /// object store the replicas share, so a replay is refused by every
    /// replica and after a restart, at one small write per request; or
    /// `memory`, for a single relay process, refused by that process only.
    pub replay_guard: ReplayScope,
    /// Signed requests one account may make per second, sustained, before
    /// `429 rate_limited`: a request may cost chain reads, so no key may
    /// make the relay read the chain without bound.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,
    /// Requests one account may make in a burst above that rate.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            authorities: Vec::new(),
            max_skew_ms: hydrogen_sdk::relay::auth::DEFAULT_MAX_SKEW_MS,
            replay_guard: ReplayScope::Store,
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
        }
    }
}

/// Where the replay guard remembers accepted signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayScope {
    Store,
    Memory,
}

impl AuthConfig {
    /// The authorities to answer for, lower case: the configured ones, or
    /// those of the address the relay listens on.
    pub fn authorities_for(&self, listening: SocketAddr) -> anyhow::Result<Vec<String>> {
        if !self.authorities.is_empty() {
            return Ok(self
                .authorities
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .collect());
        }
        let ip = listening.ip();
        anyhow::ensure!(
            !ip.is_unspecified(),
            "listening on {listening} (every interface): set [auth] authorities to the \
             host names clients use, e.g. [\"relay.example.org\"]; requests are signed \
             for the relay's host name"
        );
        let port = listening.port();
        let mut out = vec![match ip {
            std::net::IpAddr::V4(ip) => format!("{ip}:{port}"),
            std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
        }];
        if ip.is_loopback() {
            out.push(format!("localhost:{port}"));
        }
        Ok(out)
    }
}

fn default_requests_per_second() -> u32 {
    20
}

fn default_burst() -> u32 {
    100
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8700))
}

fn default_rpc_url() -> String {
    "ws://127.0.0.1:9944".into()
}

fn default_task_cache_ms() -> u64 {
    1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gets_every_default() {
        let config = Config::from_toml(r#"contract = "0x01""#).unwrap();
        assert_eq!(config, Config::new("ws://127.0.0.1:9944", "0x01"));
        assert_eq!(config.limits.max_image_bytes, 16 << 20);
        assert_eq!(config.auth.max_skew_ms, 60_000);
    }

    #[test]
    fn a_full_file_parses() {
        let config = Config::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            rpc_url = "ws://chain:9944"
            contract = "0x01"
            task_cache_ms = 250
            [storage]
            kind = "s3"
            url = "s3://hydrogen-relay"
            endpoint = "http://127.0.0.1:9000"
            allow_http = true
            [limits]
            max_images = 4
            [retention]
            ttl_secs = 60
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.limits.max_images, 4);
        assert_eq!(config.limits.max_args_bytes, 1 << 20);
        assert_eq!(config.retention.ttl_secs, 60);
        assert_eq!(config.retention.grace_secs, 24 * 3600);
        assert!(matches!(
            config.storage,
            StorageConfig::S3 {
                allow_http: true,
                ..
            }
        ));
    }

    #[test]
    fn authorities_default_to_the_listening_address() {
        let auth = AuthConfig::default();
        let at = |a: &str| auth.authorities_for(a.parse().unwrap());
        assert_eq!(
            at("127.0.0.1:8700").unwrap(),
            ["127.0.0.1:8700", "localhost:8700"]
        );
        assert_eq!(at("10.0.0.5:80").unwrap(), ["10.0.0.5:80"]);
        assert_eq!(at("[::1]:8700").unwrap(), ["[::1]:8700", "localhost:8700"]);
        let err = at("0.0.0.0:8700").unwrap_err().to_string();
        assert!(err.contains("set [auth] authorities"), "{err}");
        let named = AuthConfig {
            authorities: vec!["Relay.Example.org".into()],
            ..AuthConfig::default()
        };
        assert_eq!(
            named
                .authorities_for("0.0.0.0:8700".parse().unwrap())
                .unwrap(),
            ["relay.example.org"]
        );
        let config = Config::from_toml(
            "contract = \"0x01\"\n[auth]\nauthorities = [\"a:1\"]\nreplay_guard = \"memory\"\n",
        )
        .unwrap();
        assert_eq!(config.auth.replay_guard, ReplayScope::Memory);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = Config::from_toml("contract = \"0x01\"\n[limits]\nmax_image = 3\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_image`"),
            "{err}"
        );
    }
}
