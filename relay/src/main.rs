//! `hydrogen-relay`: runs the relay until SIGINT or SIGTERM, then finishes
//! the requests in flight and exits.

use anyhow::Context;
use clap::Parser;
use hydrogen_relay::{Config, StorageConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The Hydrogen relay. Settings come from the TOML file given with
/// --config; each flag (or its HYDROGEN_RELAY_* variable) overrides the
/// file. RUST_LOG sets the log level (default: info).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "HYDROGEN_RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "HYDROGEN_RELAY_LISTEN")]
    listen: Option<SocketAddr>,
    /// A name clients reach this relay service by, host[:port] as in its
    /// URL (repeat, or comma-separate in the variable); replaces the
    /// file's [auth] authorities.
    #[arg(
        long = "authority",
        env = "HYDROGEN_RELAY_AUTHORITIES",
        value_delimiter = ','
    )]
    authorities: Vec<String>,
    /// The chain node's WebSocket RPC URL.
    #[arg(long, env = "HYDROGEN_RELAY_RPC_URL")]
    rpc_url: Option<String>,
    /// The hydrogen contract's address (SS58 or 0x hex).
    #[arg(long, env = "HYDROGEN_RELAY_CONTRACT")]
    contract: Option<String>,
    /// Store blobs in this directory (instead of the file's storage).
    #[arg(long, env = "HYDROGEN_RELAY_DATA_DIR", conflicts_with = "s3_url")]
    data_dir: Option<PathBuf>,
    /// Store blobs in this S3 bucket, s3://name (credentials, region and
    /// endpoint from the AWS_* variables).
    #[arg(long, env = "HYDROGEN_RELAY_S3_URL")]
    s3_url: Option<String>,
    /// Seconds finished tasks' blobs are kept.
    #[arg(long, env = "HYDROGEN_RELAY_TTL_SECS")]
    ttl_secs: Option<u64>,
    /// Seconds past an unfinished task's deadline before its blobs go.
    #[arg(long, env = "HYDROGEN_RELAY_GRACE_SECS")]
    grace_secs: Option<u64>,
}

fn config(args: Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => {
            let contract = args.contract.clone().context(
                "no contract address: give --config FILE, --contract or HYDROGEN_RELAY_CONTRACT",
            )?;
            Config::new("ws://127.0.0.1:9944", contract)
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.rpc_url {
        config.rpc_url = url;
    }
    if !args.authorities.is_empty() {
        config.auth.authorities = args.authorities;
    }
    if let Some(contract) = args.contract {
        config.contract = contract;
    }
    if let Some(path) = args.data_dir {
        config.storage = StorageConfig::Local { path };
    }
    if let Some(url) = args.s3_url {
        config.storage = StorageConfig::S3 {
            url,
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
        };
    }
    if let Some(ttl) = args.ttl_secs {
        config.retention.ttl_secs = ttl;
    }
    if let Some(grace) = args.grace_secs {
        config.retention.grace_secs = grace;
    }
    Ok(config)
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour codes only for a terminal, never into a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let config = config(Args::parse())?;
    tracing::info!(
        rpc_url = %config.rpc_url,
        contract = %config.contract,
        storage = ?config.storage,
        "starting"
    );
    let relay = hydrogen_relay::start(config).await?;
    stop_signal().await;
    tracing::info!("stopping: finishing requests in flight");
    relay.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(
            &file,
            "contract = \"0x01\"\nlisten = \"127.0.0.1:1\"\n[retention]\nttl_secs = 5\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "hydrogen-relay",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:2",
            "--data-dir",
            "/tmp/x",
        ]);
        let config = config(args).unwrap();
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.contract, "0x01");
        assert_eq!(config.retention.ttl_secs, 5);
        assert_eq!(
            config.storage,
            StorageConfig::Local {
                path: "/tmp/x".into()
            }
        );
    }

    #[test]
    fn without_a_file_the_contract_is_required() {
        let err = config(Args::parse_from(["hydrogen-relay"])).unwrap_err();
        assert!(err.to_string().contains("no contract address"), "{err}");
    }
}
