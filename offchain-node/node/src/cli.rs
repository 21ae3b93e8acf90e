//! The command line.

use crate::capacity;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::keys;
use crate::membership;
use crate::models;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hydrogen_sdk::chain::Connection;
use hydrogen_sdk::chain::{account_of, parse_account, ss58, Keypair};
use hydrogen_sdk::types::UNIT;
use std::io::IsTerminal;
use std::path::PathBuf;
use zeroize::Zeroizing;

const ABOUT: &str = "Run a Hydrogen computing node: stake tokens, take Stable Diffusion tasks \
from the chain, and earn fees.";

const LONG_ABOUT: &str = "\
Run a Hydrogen computing node: stake tokens, take Stable Diffusion tasks from the chain, and earn fees.

First steps:
  1. hydrogen-node init                  create a key (write the mnemonic down)
  2. get tokens for the stake and native funds for fees to the printed address
  3. hydrogen-node models create-tiny    or put diffusers models in the models directory
  4. hydrogen-node run                   join and work until SIGTERM/Ctrl-C

Configuration is read from --config (default ~/.hydrogen-node/config.toml when
present), then from HYDROGEN_NODE_* environment variables (nested keys with __,
e.g. HYDROGEN_NODE_GPU__VRAM_GB=24). `hydrogen-node config` prints the result.
An encrypted key's passphrase comes from HYDROGEN_NODE_KEY_PASSPHRASE,
key_passphrase_file, or a prompt.";

#[derive(Debug, Parser)]
#[command(name = "hydrogen-node", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// The TOML configuration file.
    #[arg(long, short, global = true, env = "HYDROGEN_NODE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new key (or import one) into the key file.
    ///
    /// A new key's 24-word mnemonic is printed once: write it down, it is the
    /// only way to recover the account. The key file is created with mode
    /// 0600 and never overwritten.
    Init {
        /// Import an existing mnemonic or secret URI (read from standard input) instead of creating one.
        #[arg(long)]
        import: bool,
        /// Encrypt the key file with a passphrase (asked twice, or HYDROGEN_NODE_KEY_PASSPHRASE).
        #[arg(long)]
        encrypt: bool,
    },
    /// Stake `required_stake` tokens and join the network (reports GPU name and memory).
    Join,
    /// Take no new tasks; a busy node pauses once its task is over. The stake stays locked.
    Pause,
    /// Take tasks again after `pause`.
    Resume,
    /// Leave the network and get the stake back (after the task at hand).
    Quit,
    /// Run the node: join if needed, take and run tasks, until SIGTERM/SIGINT.
    ///
    /// On the first signal the node pauses (or quits, per `on_shutdown`),
    /// finishes the task at hand and exits; a second signal exits at once.
    /// Everything is persisted: after a crash or kill, `run` again resumes
    /// each unfinished task where it stopped.
    Run,
    /// Show the node's account, chain record, balances and task counters.
    ///
    /// Asks the running daemon's status server first, else the chain and the database.
    Status,
    /// List, verify or create local models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Print the effective configuration (file, then environment) as TOML.
    Config,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the model ids found in the models directory.
    List,
    /// Load each model (or the one given) to check every file and tensor.
    Verify {
        /// A model id, e.g. runwayml/stable-diffusion-v1-5.
        id: Option<String>,
    },
    /// Write the built-in tiny test model (hydrogen/tiny-sd) into the models directory.
    CreateTiny {
        /// Another models directory.
        dir: Option<PathBuf>,
    },
}

/// Sets up logging as configured (`RUST_LOG` wins over `log.level`).
pub fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn passphrase(config: &Config) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("HYDROGEN_NODE_KEY_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    if let Some(file) = &config.key_passphrase_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read key_passphrase_file {}", file.display()))?;
        return Ok(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ));
    }
    if !std::io::stdin().is_terminal() {
        bail!("the key file is encrypted: set HYDROGEN_NODE_KEY_PASSPHRASE or key_passphrase_file");
    }
    Ok(Zeroizing::new(rpassword::prompt_password(
        "key passphrase: ",
    )?))
}

fn load_key(config: &Config) -> Result<Keypair> {
    keys::load(&config.key_file, || passphrase(config))
}

fn chain_for(config: &Config, signer: &Keypair) -> Result<Connection> {
    let contract = parse_account(&config.contract).context(
        "`contract` must be the hydrogen contract's address (config or HYDROGEN_NODE_CONTRACT)",
    )?;
    Ok(crate::chain::connection(
        &config.chain_url,
        contract,
        account_of(signer),
    ))
}

fn whole(amount: u128) -> String {
    format!("{:.4}", amount as f64 / UNIT as f64)
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Init { import, encrypt } => init(&config, import, encrypt),
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Models(m) => models_command(&config, m),
        Command::Join => {
            let signer = load_key(&config)?;
            let chain = chain_for(&config, &signer)?;
            let store = Store::open(&config.data_dir)?;
            store.bind_contract(&ss58(&parse_account(&config.contract)?))?;
            let backend = config.backend.parse()?;
            let capacity = capacity::detect(&config.gpu, backend)?;
            let what = membership::join_or_resume(&chain, &store, &signer, &capacity).await?;
            println!(
                "{}: {what} ({} with {} GB)",
                ss58(&account_of(&signer)),
                capacity.gpu_name,
                capacity.vram_gb
            );
            Ok(())
        }
        Command::Pause | Command::Resume | Command::Quit => {
            let what = match cli.command {
                Command::Pause => "pause",
                Command::Resume => "resume",
                _ => "quit",
            };
            let signer = load_key(&config)?;
            let chain = chain_for(&config, &signer)?;
            membership::simple_call(&chain, &signer, what).await?;
            let info = membership::node_info(&chain, account_of(&signer)).await?;
            println!(
                "{what}: done; node status now {}",
                info.map_or("not registered".into(), |i| format!("{:?}", i.status))
            );
            Ok(())
        }
        Command::Run => {
            let signer = load_key(&config)?;
            Daemon::new(config, signer).await?.run().await
        }
        Command::Status => status(&config).await,
    }
}

fn init(config: &Config, import: bool, encrypt: bool) -> Result<()> {
    if config.key_file.exists() {
        bail!(
            "{} already exists; it is never overwritten (move it away first)",
            config.key_file.display()
        );
    }
    let secret = if import {
        if std::io::stdin().is_terminal() {
            Zeroizing::new(rpassword::prompt_password("mnemonic or secret URI: ")?)
        } else {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            Zeroizing::new(line.trim().to_owned())
        }
    } else {
        keys::generate_mnemonic()?
    };
    let passphrase = if encrypt {
        if let Ok(p) = std::env::var("HYDROGEN_NODE_KEY_PASSPHRASE") {
            Some(Zeroizing::new(p))
        } else {
            let first = Zeroizing::new(rpassword::prompt_password("new passphrase: ")?);
            let again = Zeroizing::new(rpassword::prompt_password("again: ")?);
            if first != again {
                bail!("the passphrases differ");
            }
            Some(first)
        }
    } else {
        None
    };
    let account = keys::write(
        &config.key_file,
        &secret,
        passphrase.as_ref().map(|p| p.as_str()),
    )?;
    if !import {
        println!(
            "Your mnemonic (shown once; write it down and keep it offline):\n\n    {}\n",
            *secret
        );
    }
    println!("key file: {}", config.key_file.display());
    println!("account:  {account}");
    println!(
        "Next: fund this account with native funds (fees) and the contract's stake in tokens, then `hydrogen-node run`."
    );
    Ok(())
}

fn models_command(config: &Config, command: ModelsCommand) -> Result<()> {
    let dir = &config.models_dir;
    match command {
        ModelsCommand::List => {
            let found =
                models::list(dir).with_context(|| format!("cannot read {}", dir.display()))?;
            if found.is_empty() {
                println!("no models in {}", dir.display());
            }
            for id in found {
                println!("{id}");
            }
            Ok(())
        }
        ModelsCommand::Verify { id } => {
            let ids = match id {
                Some(id) => vec![id],
                None => models::list(dir)?,
            };
            let mut bad = 0;
            for id in &ids {
                match models::verify(dir, id) {
                    Ok(()) => println!("ok      {id}"),
                    Err(e) => {
                        bad += 1;
                        println!("BROKEN  {e}");
                    }
                }
            }
            if bad > 0 {
                bail!("{bad} of {} models do not load", ids.len());
            }
            Ok(())
        }
        ModelsCommand::CreateTiny { dir: other } => {
            let folder = models::create_tiny(other.as_deref().unwrap_or(dir))?;
            println!(
                "wrote {} (model id {})",
                folder.display(),
                hydrogen_engine::tiny::MODEL_NAME
            );
            Ok(())
        }
    }
}

async fn status(config: &Config) -> Result<()> {
    if !config.http_listen.is_empty() {
        if let Some(json) = daemon_status(&config.http_listen).await {
            println!("{json}");
            return Ok(());
        }
    }
    let account = parse_account(&keys::account(&config.key_file)?)?;
    println!("account:      {}", ss58(&account));
    println!(
        "daemon:       not running (no answer on {})",
        config.http_listen
    );
    let contract = parse_account(&config.contract)?;
    let chain = crate::chain::connection(&config.chain_url, contract, account);
    match membership::node_info(&chain, account).await {
        Ok(info) => {
            match info {
                Some(i) => {
                    println!("node status:  {:?}", i.status);
                    println!("stake:        {}", whole(i.stake));
                    println!("current task: {:?}", i.current_task);
                    println!("missed:       {} in a row", i.missed);
                }
                None => println!("node status:  not registered (run `hydrogen-node join`)"),
            }
            let h = chain.get().await?;
            println!("tokens:       {}", whole(h.balance_of(account).await?));
        }
        Err(e) => println!("chain:        {e}"),
    }
    match Store::open(&config.data_dir) {
        Ok(store) => {
            let c = store.counters()?;
            println!(
                "tasks:        {} run, {} paid, {} slashed, {} missed, {} local faults; earned {}",
                c.tasks_run,
                c.paid,
                c.slashed,
                c.missed,
                c.local_faults,
                whole(c.earnings)
            );
            for t in store.open_tasks()? {
                println!("open task:    {} ({})", t.id, t.state.name());
            }
        }
        Err(e) => println!("database:     {e}"),
    }
    Ok(())
}

/// The running daemon's `/status`, pretty-printed, if it answers.
async fn daemon_status(listen: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{listen}/status"))
        .send()
        .await
        .ok()?;
    let value: serde_json::Value = response.json().await.ok()?;
    serde_json::to_string_pretty(&value).ok()
}
