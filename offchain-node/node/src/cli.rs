//! The command line.

use crate::capacity;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::keys;
use crate::membership;
use crate::models;
use crate::sources::ModelSources;
use crate::status::{CurrentTask, Snapshot};
use crate::store::Store;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hydrogen_sdk::chain::{account_of, parse_account, ss58, ChainError, Connection, Keypair};
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
    /// Asks the running daemon's status server first, else the chain and the
    /// database. Exits with 1 when the chain cannot be reached.
    Status {
        /// Print the status as JSON (the daemon's `/status` document).
        #[arg(long)]
        json: bool,
    },
    /// List, verify or create local models; download models into the cache or remove them.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Print the effective configuration (file, then environment) as TOML.
    Config,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the model ids found in the models directory, and the downloads in the cache.
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
    /// Fetch a model as a task naming it would (models directory, else the
    /// mirror, else its URL) and print where it is.
    Prefetch {
        /// What the model is.
        kind: PrefetchKind,
        /// A model id (runwayml/stable-diffusion-v1-5), or for lora and ti a URL.
        model: String,
        /// For lora and ti: the weight file in the repo (default
        /// pytorch_lora_weights.safetensors, learned_embeds.safetensors).
        #[arg(long)]
        file: Option<String>,
        /// For base: the weights variant, e.g. fp16.
        #[arg(long)]
        variant: Option<String>,
    },
    /// Remove a download from the cache, named by its source (a repo id or a
    /// URL) or its path, as `models list` prints them.
    Remove {
        /// A repo id, a URL, or a cache folder's path.
        source: String,
    },
}

/// The kinds of model a task can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrefetchKind {
    /// A Stable Diffusion pipeline (diffusers layout).
    Base,
    /// A LoRA adapter (one safetensors file).
    Lora,
    /// A VAE (config.json and its weights).
    Vae,
    /// A textual inversion embedding.
    Ti,
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
    key_file_exists(config)?;
    keys::load(&config.key_file, || passphrase(config))
}

/// The key file's absence, with the command that creates it.
fn key_file_exists(config: &Config) -> Result<()> {
    if !config.key_file.exists() {
        bail!(
            "no key file at {}; create one with `hydrogen-node init`",
            config.key_file.display()
        );
    }
    Ok(())
}

fn chain_for(config: &Config, signer: &Keypair) -> Result<Connection> {
    Ok(crate::chain::connection(
        &config.chain_url,
        contract_of(config)?,
        account_of(signer),
    ))
}

/// The configured contract address, or an error that says where to set it.
fn contract_of(config: &Config) -> Result<hydrogen_sdk::types::AccountId> {
    if config.contract.trim().is_empty() {
        bail!(
            "no contract configured: set `contract` in the config file or HYDROGEN_NODE_CONTRACT \
             to the hydrogen contract's address (scripts/run.sh --chain-only prints it)"
        );
    }
    parse_account(&config.contract).with_context(|| {
        format!(
            "`contract` = {:?} is not an address (SS58 or 0x + 64 hex digits)",
            config.contract
        )
    })
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
        Command::Models(m) => models_command(&config, m).await,
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
        Command::Status { json } => status(&config, json).await,
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

async fn models_command(config: &Config, command: ModelsCommand) -> Result<()> {
    let dir = &config.models_dir;
    match command {
        ModelsCommand::List => {
            // A node that only downloads may have no models directory yet.
            let found = match models::list(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                listed => listed.with_context(|| format!("cannot read {}", dir.display()))?,
            };
            if found.is_empty() {
                println!("no models in {}", dir.display());
            }
            for id in found {
                println!("{id}");
            }
            list_cache(&ModelSources::from_config(config))
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
        ModelsCommand::Prefetch {
            kind,
            model,
            file,
            variant,
        } => {
            let sources = ModelSources::from_config(config);
            if file.is_some() && matches!(kind, PrefetchKind::Base | PrefetchKind::Vae) {
                bail!("--file is for lora and ti models only");
            }
            if variant.is_some() && kind != PrefetchKind::Base {
                bail!("--variant is for base models only");
            }
            let file = file.as_deref().unwrap_or("");
            let path = match kind {
                PrefetchKind::Base => sources.base_model(&model, variant.as_deref()).await,
                PrefetchKind::Lora => sources.lora(&model, file).await,
                PrefetchKind::Vae => sources.vae(&model).await,
                PrefetchKind::Ti => sources.textual_inversion(&model, file).await,
            }?;
            println!("{}", path.display());
            Ok(())
        }
        ModelsCommand::Remove { source } => {
            let sources = ModelSources::from_config(config);
            let cache = sources.cache_dir().display();
            if !sources
                .remove(&source)
                .with_context(|| format!("cannot remove {source} from {cache}"))?
            {
                bail!("{source} is not in the download cache {cache} (see `hydrogen-node models list`)");
            }
            println!("removed {source} from {cache}");
            Ok(())
        }
    }
}

/// The download cache's folders: source, size, path.
fn list_cache(sources: &ModelSources) -> Result<()> {
    let cache = sources.cache_dir();
    let cached = sources
        .cached()
        .with_context(|| format!("cannot read the download cache {}", cache.display()))?;
    if cached.is_empty() {
        println!("no downloads in {}", cache.display());
        return Ok(());
    }
    println!("downloads in {}:", cache.display());
    for model in cached {
        let mut line = format!(
            "{}  {}  {}",
            model.source,
            indicatif::HumanBytes(model.bytes),
            model.path.display()
        );
        if model.origin != model.source {
            line += &format!("  (from {})", model.origin);
        }
        if model.partial {
            line += "  (partial download)";
        }
        println!("{line}");
    }
    Ok(())
}

async fn status(config: &Config, json: bool) -> Result<()> {
    let snapshot = match daemon_status(&config.http_listen).await {
        Some(snapshot) => snapshot,
        None => offline_status(config).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
    } else {
        print_status(&snapshot);
    }
    if !snapshot.chain_connected {
        bail!(
            "the chain is unreachable at {}: {}",
            config.chain_url,
            snapshot.last_error.as_deref().unwrap_or("no answer")
        );
    }
    Ok(())
}

/// What the chain and the database say while no daemon runs.
async fn offline_status(config: &Config) -> Result<Snapshot> {
    key_file_exists(config)?;
    let account = parse_account(&keys::account(&config.key_file)?)?;
    let contract = contract_of(config)?;
    let mut snapshot = Snapshot {
        account: ss58(&account),
        daemon: if config.http_listen.is_empty() {
            "unknown (http_listen is off)".into()
        } else {
            format!("not running (no answer on {})", config.http_listen)
        },
        backend: config.backend.clone(),
        ..Snapshot::default()
    };
    let chain = crate::chain::connection(&config.chain_url, contract, account);
    let read = async {
        let info = membership::node_info(&chain, account).await?;
        let tokens = chain
            .call(|h| async move { h.balance_of(account).await })
            .await?;
        Ok::<_, ChainError>((info, tokens))
    };
    match read.await {
        Ok((info, tokens)) => {
            snapshot.chain_connected = true;
            snapshot.tokens = tokens;
            if let Some(i) = info {
                snapshot.node_status = Some(format!("{:?}", i.status));
                snapshot.stake = i.stake;
                snapshot.missed_in_a_row = i.missed;
                snapshot.gpu = i.gpu_name;
                snapshot.vram_gb = i.vram_gb;
                snapshot.current_task = i.current_task.map(|id| CurrentTask {
                    id,
                    ..CurrentTask::default()
                });
            }
        }
        Err(e) => snapshot.last_error = Some(e.to_string()),
    }
    match Store::open(&config.data_dir) {
        Ok(store) => {
            snapshot.counters = store.counters()?;
            if let Some(t) = store.open_tasks()?.into_iter().next() {
                let current = snapshot.current_task.get_or_insert_with(Default::default);
                current.id = t.id;
                current.state = t.state.name().into();
            }
        }
        Err(e) => eprintln!("database: {e:#}"),
    }
    Ok(snapshot)
}

fn print_status(s: &Snapshot) {
    println!("account:      {}", s.account);
    println!("daemon:       {}", s.daemon);
    if !s.chain_connected {
        println!("chain:        unreachable");
    }
    match &s.node_status {
        Some(status) => println!("node status:  {status}"),
        None if s.chain_connected => {
            println!("node status:  not registered (run `hydrogen-node join`)")
        }
        None => {}
    }
    if s.chain_connected {
        println!("stake:        {} HYD", whole(s.stake));
        println!("tokens:       {} HYD", whole(s.tokens));
        println!("missed:       {} in a row", s.missed_in_a_row);
    }
    if !s.gpu.is_empty() {
        println!(
            "gpu:          {} ({} GB, backend {})",
            s.gpu, s.vram_gb, s.backend
        );
    }
    match &s.current_task {
        Some(t) if t.steps > 0 => println!(
            "current task: {} ({}, step {}/{} of image {}/{})",
            t.id,
            t.state,
            t.step,
            t.steps,
            t.image + 1,
            t.images
        ),
        Some(t) if !t.state.is_empty() => println!("current task: {} ({})", t.id, t.state),
        Some(t) => println!("current task: {}", t.id),
        None => println!("current task: none"),
    }
    let c = &s.counters;
    println!(
        "tasks:        {} run, {} paid, {} slashed, {} missed, {} local faults; earned {} HYD",
        c.tasks_run,
        c.paid,
        c.slashed,
        c.missed,
        c.local_faults,
        whole(c.earnings)
    );
    if let Some(e) = &s.last_error {
        println!("last error:   {e}");
    }
}

/// The running daemon's `/status`, if it answers.
async fn daemon_status(listen: &str) -> Option<Snapshot> {
    if listen.is_empty() {
        return None;
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{listen}/status"))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}
