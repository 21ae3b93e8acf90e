//! `hydrogen-bridge`: serves the HTTP bridge until SIGINT or SIGTERM, and
//! manages its API keys and its chain key file.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hydrogen_bridge::{Config, Store};
use hydrogen_sdk::keyfile;
use hydrogen_sdk::types::{format_tokens, UNIT};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// The Hydrogen HTTP bridge: apps in any language create Stable Diffusion
/// tasks over HTTP (and OpenAI's images API); the bridge holds the app's
/// chain key and pays. RUST_LOG sets the log level (default: info).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Where the database (and by default the key file) live.
    #[arg(long, env = "HYDROGEN_BRIDGE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The database: sqlite://PATH?mode=rwc or postgres://USER:PASS@HOST/DB
    /// (default: sqlite://<data dir>/bridge.db?mode=rwc).
    #[arg(long, env = "HYDROGEN_BRIDGE_DATABASE", global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP API.
    Serve(Serve),
    /// Create, list or revoke API keys.
    Keys {
        #[command(subcommand)]
        command: Keys,
    },
    /// Write a new key file for the app account (prints its mnemonic once),
    /// or import a secret from standard input with --import.
    InitKey {
        /// The key file to write (default: <data dir>/key.json).
        #[arg(long, env = "HYDROGEN_BRIDGE_KEY_FILE")]
        key_file: Option<PathBuf>,
        /// Read a mnemonic or secret URI from standard input.
        #[arg(long)]
        import: bool,
        /// Encrypt the file with the passphrase in this environment variable.
        #[arg(long)]
        passphrase_env: Option<String>,
    },
}

#[derive(Parser, Debug)]
struct Serve {
    /// The chain node's WebSocket RPC URL.
    #[arg(
        long,
        env = "HYDROGEN_BRIDGE_CHAIN",
        default_value = "ws://127.0.0.1:9944"
    )]
    chain: String,
    /// The relay's base URL.
    #[arg(
        long,
        env = "HYDROGEN_BRIDGE_RELAY",
        default_value = "http://127.0.0.1:8700"
    )]
    relay: String,
    /// The hydrogen contract's address (SS58 or 0x hex).
    #[arg(long, env = "HYDROGEN_BRIDGE_CONTRACT")]
    contract: String,
    /// The app account's key file (as `hydrogen-node init` or
    /// `hydrogen-bridge init-key` write it; default: <data dir>/key.json).
    #[arg(long, env = "HYDROGEN_BRIDGE_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The environment variable holding the key file's passphrase, if it is
    /// encrypted (otherwise it is asked on the terminal).
    #[arg(long)]
    passphrase_env: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "HYDROGEN_BRIDGE_LISTEN", default_value = "127.0.0.1:8780")]
    listen: SocketAddr,
    /// The base of image URLs in answers (default: http://<Host header>).
    #[arg(long, env = "HYDROGEN_BRIDGE_PUBLIC_URL")]
    public_url: Option<String>,
    /// The base model of OpenAI-style requests that name no Hugging Face model.
    #[arg(
        long,
        env = "HYDROGEN_BRIDGE_DEFAULT_MODEL",
        default_value = "runwayml/stable-diffusion-v1-5"
    )]
    default_model: String,
    /// Cancel a task no nodes picked up within this many seconds (full refund).
    #[arg(long, default_value_t = 600)]
    queue_timeout_secs: u64,
    /// How long an OpenAI-style request waits for its images, in seconds.
    #[arg(long, default_value_t = 900)]
    generation_timeout_secs: u64,
    /// How long this bridge's claims on its tasks last unrenewed, in
    /// seconds: replicas sharing a database take over the tasks of one that
    /// died after this long.
    #[arg(long, default_value_t = 60)]
    lease_secs: u64,
}

#[derive(Subcommand, Debug)]
enum Keys {
    /// Create an API key and print it (once: only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// Most tasks the key may create (default: no limit).
        #[arg(long)]
        quota_tasks: Option<i64>,
        /// Most fees the key may spend, in tokens (e.g. 25 or 2.5; default: no limit).
        #[arg(long)]
        quota_tokens: Option<String>,
    },
    /// List the keys with their quotas and usage.
    List,
    /// Revoke a key by its id (key_...).
    Revoke { id: String },
}

fn data_dir(cli: &Cli) -> PathBuf {
    if let Some(dir) = &cli.data_dir {
        return dir.clone();
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("hydrogen-bridge")
}

/// This bridge's instance id (`<data dir>/instance-id`, made on first use):
/// the same across restarts, so a restarted bridge takes its own tasks
/// back at once; replicas have data directories, and ids, of their own.
fn instance_id(cli: &Cli) -> Result<String> {
    let dir = data_dir(cli);
    let path = dir.join("instance-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    }
    let id = hydrogen_bridge::store::new_instance_id();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

fn database_url(cli: &Cli) -> Result<String> {
    if let Some(url) = &cli.database {
        return Ok(url.clone());
    }
    let dir = data_dir(cli);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(format!("sqlite://{}/bridge.db?mode=rwc", dir.display()))
}

/// `25`, `2.5`: tokens, to the smallest unit.
fn parse_tokens(text: &str) -> Result<u128> {
    let decimals = UNIT.ilog10() as usize;
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if fraction.len() > decimals || (whole.is_empty() && fraction.is_empty()) {
        bail!("not a token amount: {text:?}");
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .with_context(|| format!("not a token amount: {text:?}"))?
    };
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<decimals$}")
            .parse()
            .with_context(|| format!("not a token amount: {text:?}"))?
    };
    whole
        .checked_mul(UNIT)
        .and_then(|w| w.checked_add(fraction))
        .context("token amount too large")
}

fn passphrase(variable: Option<&str>) -> Result<Zeroizing<String>> {
    if let Some(var) = variable {
        return std::env::var(var)
            .map(Zeroizing::new)
            .with_context(|| format!("the key file is encrypted and ${var} is not set"));
    }
    if !std::io::stdin().is_terminal() {
        bail!("the key file is encrypted: give --passphrase-env VAR");
    }
    Ok(Zeroizing::new(rpassword::prompt_password(
        "key passphrase: ",
    )?))
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

async fn serve(cli: &Cli, args: &Serve) -> Result<()> {
    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| data_dir(cli).join("key.json"));
    if !key_file.exists() {
        bail!(
            "no key file at {}; create one with `hydrogen-bridge init-key` (and fund its account)",
            key_file.display()
        );
    }
    let signer = keyfile::load(&key_file, || passphrase(args.passphrase_env.as_deref()))?;
    let mut config = Config::new(
        &args.chain,
        &args.relay,
        &args.contract,
        &database_url(cli)?,
    );
    config.listen = args.listen;
    config.public_url = args.public_url.clone();
    config.default_model = args.default_model.clone();
    config.queue_timeout = Duration::from_secs(args.queue_timeout_secs);
    config.generation_timeout = Duration::from_secs(args.generation_timeout_secs);
    config.instance = Some(instance_id(cli)?);
    anyhow::ensure!(args.lease_secs >= 3, "--lease-secs must be at least 3");
    config.lease = Duration::from_secs(args.lease_secs);
    tracing::info!(
        chain = %config.chain_url,
        relay = %config.relay_url,
        contract = %config.contract,
        database = %hydrogen_bridge::store::redact(&config.database_url),
        instance = config.instance.as_deref().unwrap_or_default(),
        "starting"
    );
    let bridge = hydrogen_bridge::start(config, signer).await?;
    stop_signal().await;
    tracing::info!("stopping: recording tasks in flight, finishing requests");
    bridge.shutdown().await;
    Ok(())
}

async fn keys(cli: &Cli, command: &Keys) -> Result<()> {
    let store = Store::open(&database_url(cli)?).await?;
    match command {
        Keys::Create {
            name,
            quota_tasks,
            quota_tokens,
        } => {
            let tokens = quota_tokens.as_deref().map(parse_tokens).transpose()?;
            let (key, secret) = store.create_key(name, *quota_tasks, tokens).await?;
            println!("created {} ({})", key.id, key.name);
            println!("API key (shown once; only its hash is stored):\n\n    {secret}\n");
        }
        Keys::List => {
            println!(
                "{:<18} {:<20} {:>14} {:>28} status",
                "id", "name", "tasks", "tokens"
            );
            for key in store.keys().await? {
                let tasks = match key.quota_tasks {
                    Some(q) => format!("{}/{q}", key.used_tasks),
                    None => format!("{}/-", key.used_tasks),
                };
                let tokens = match key.quota_tokens {
                    Some(q) => format!("{}/{}", format_tokens(key.used_tokens), format_tokens(q)),
                    None => format!("{}/-", format_tokens(key.used_tokens)),
                };
                let status = if key.revoked { "revoked" } else { "active" };
                println!(
                    "{:<18} {:<20} {:>14} {:>28} {status}",
                    key.id, key.name, tasks, tokens
                );
            }
        }
        Keys::Revoke { id } => {
            if !store.revoke_key(id).await? {
                bail!("no API key {id}");
            }
            println!("revoked {id}");
        }
    }
    store.close().await;
    Ok(())
}

fn init_key(
    cli: &Cli,
    key_file: Option<&Path>,
    import: bool,
    passphrase_env: Option<&str>,
) -> Result<()> {
    let path = key_file.map_or_else(|| data_dir(cli).join("key.json"), Path::to_path_buf);
    let secret = if import {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Zeroizing::new(line.trim().to_owned())
    } else {
        keyfile::generate_mnemonic()?
    };
    let passphrase = passphrase_env
        .map(|var| {
            std::env::var(var)
                .map(Zeroizing::new)
                .with_context(|| format!("${var} is not set"))
        })
        .transpose()?;
    let account = keyfile::write(&path, &secret, passphrase.as_ref().map(|p| p.as_str()))?;
    if !import {
        println!(
            "Your mnemonic (shown once; write it down and keep it offline):\n\n    {}\n",
            *secret
        );
    }
    println!("key file {} for account {account}", path.display());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => serve(&cli, args).await,
        Command::Keys { command } => keys(&cli, command).await,
        Command::InitKey {
            key_file,
            import,
            passphrase_env,
        } => init_key(
            &cli,
            key_file.as_deref(),
            *import,
            passphrase_env.as_deref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_amounts_parse_to_the_smallest_unit() {
        assert_eq!(parse_tokens("25").unwrap(), 25 * UNIT);
        assert_eq!(parse_tokens("2.5").unwrap(), 5 * UNIT / 2);
        assert_eq!(parse_tokens(".000000000001").unwrap(), 1);
        assert!(parse_tokens("1.0000000000001").is_err());
        assert!(parse_tokens("x").is_err());
        assert!(parse_tokens(".").is_err());
    }

    #[test]
    fn serve_takes_the_documented_flags() {
        let cli = Cli::parse_from([
            "hydrogen-bridge",
            "serve",
            "--chain",
            "ws://c:9944",
            "--relay",
            "http://r:8700",
            "--contract",
            "5C",
            "--key-file",
            "k.json",
            "--passphrase-env",
            "PASS",
            "--listen",
            "127.0.0.1:9000",
            "--database",
            "postgres://u:p@h/db",
        ]);
        assert_eq!(database_url(&cli).unwrap(), "postgres://u:p@h/db");
        let Command::Serve(serve) = cli.command else {
            panic!("serve")
        };
        assert_eq!(serve.listen.port(), 9000);
        assert_eq!(serve.passphrase_env.as_deref(), Some("PASS"));
    }
}
