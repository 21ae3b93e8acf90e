//! The Hydrogen HTTP bridge: lets apps in any language use the network. It
//! holds one app account's chain key, pays for the tasks its API keys
//! create, carries each task through the network with
//! [`hydrogen_sdk::app::Client`] and keeps tasks, API keys and images in a
//! database ([`store`]: SQLite or Postgres).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hydrogen_sdk::chain::keypair_from_suri;
//! let config = hydrogen_bridge::Config::new(
//!     "ws://127.0.0.1:9944",
//!     "http://127.0.0.1:8700",
//!     "5C...contract",
//!     "sqlite:///var/lib/hydrogen-bridge/bridge.db?mode=rwc",
//! );
//! let signer = keypair_from_suri("//HydrogenApp")?;
//! let bridge = hydrogen_bridge::start(config, signer).await?;
//! println!("serving on {}", bridge.url());
//! bridge.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! `bridge/README.md` documents the endpoints; `GET /v1/openapi.json` (and
//! `bridge/openapi.json`) describes them.

pub mod api;
pub mod events;
pub mod network;
pub mod openai;
pub mod store;
mod web;
mod worker;

pub use api::openapi_json;
pub use store::{Store, TaskState};

use anyhow::Context;
use hydrogen_sdk::app::Client;
use hydrogen_sdk::chain::{account_of, parse_account, Keypair};
use hydrogen_sdk::types::AccountId;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, OnceCell, RwLock};
use tokio::task::JoinHandle;

/// How the bridge reaches the network and what it serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The chain node's WebSocket RPC URL.
    pub chain_url: String,
    /// The relay's base URL.
    pub relay_url: String,
    /// The hydrogen contract's address (SS58 or 0x hex).
    pub contract: String,
    /// `sqlite://<path>?mode=rwc` or `postgres://...`.
    pub database_url: String,
    pub listen: SocketAddr,
    /// The base of image URLs (`https://bridge.example.com`); by default the
    /// request's `Host`, over http.
    pub public_url: Option<String>,
    /// The base model of OpenAI-style requests whose `model` is not a
    /// Hugging Face id (`dall-e-3`, absent).
    pub default_model: String,
    /// Cancel a task (full refund) that no nodes picked up within this long.
    pub queue_timeout: Duration,
    /// Keep retrying an argument upload this long before cancelling the task.
    pub upload_timeout: Duration,
    /// How long `POST /v1/images/generations` waits for the images.
    pub generation_timeout: Duration,
    /// How often a task's chain status is re-read while following its events.
    pub poll: Duration,
    /// This bridge's instance id, under which it leases the tasks it
    /// carries: keep it across restarts (the binary keeps it in its data
    /// directory) so a restarted bridge takes its tasks back at once rather
    /// than after their leases run out; distinct for replicas sharing a
    /// database. None: a random one per start, so a restarted bridge takes
    /// its unfinished tasks back only once their leases ran out.
    pub instance: Option<String>,
    /// How long its claims on tasks last unrenewed ([`store::LEASE`] by
    /// default): how soon another bridge on the database takes over the
    /// tasks of one that died.
    pub lease: Duration,
}

impl Config {
    pub fn new(chain_url: &str, relay_url: &str, contract: &str, database_url: &str) -> Config {
        Config {
            chain_url: chain_url.into(),
            relay_url: relay_url.into(),
            contract: contract.into(),
            database_url: database_url.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8780)),
            public_url: None,
            default_model: "runwayml/stable-diffusion-v1-5".into(),
            queue_timeout: Duration::from_secs(10 * 60),
            upload_timeout: Duration::from_secs(60),
            generation_timeout: Duration::from_secs(15 * 60),
            poll: Duration::from_secs(2),
            instance: None,
            lease: store::LEASE,
        }
    }
}

/// What the request handlers and task drivers share.
pub(crate) struct Shared {
    pub config: Config,
    pub store: Store,
    /// Set once the chain answered; until then chain-bound requests get 503.
    pub client: OnceCell<Client>,
    pub account: AccountId,
    pub contract: AccountId,
    /// Held (shared) from writing a task's `submitting` row until its
    /// `created` row: shutdown takes it exclusively, so it never stops
    /// between a paid `create_task` and its record.
    pub submitting: RwLock<()>,
    pub stopping: AtomicBool,
    /// The running task drivers (aborted at shutdown; they resume at start).
    pub drivers: Mutex<Vec<JoinHandle<()>>>,
    /// The tasks (bridge ids) a driver of this bridge is carrying.
    pub driving: Arc<Mutex<HashSet<String>>>,
}

impl Shared {
    /// Starts carrying `row` (claimed by this bridge) to a final state,
    /// unless a driver of this bridge already is.
    pub(crate) fn drive(self: &Arc<Self>, row: store::TaskRow) {
        let id = row.id.clone();
        let mut driving = self.driving.lock().unwrap_or_else(|e| e.into_inner());
        if !driving.insert(id.clone()) {
            return;
        }
        drop(driving);
        let set = self.driving.clone();
        let driver = worker::drive(self.clone(), row);
        self.spawn(async move {
            driver.await;
            set.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
    }

    /// Whether a driver of this bridge carries task `id`.
    pub(crate) fn is_driving(&self, id: &str) -> bool {
        let driving = self.driving.lock().unwrap_or_else(|e| e.into_inner());
        driving.contains(id)
    }

    pub(crate) fn spawn(&self, driver: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut drivers = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        drivers.retain(|d| !d.is_finished());
        drivers.push(tokio::spawn(driver));
    }
}

/// A bridge serving in the background.
pub struct RunningBridge {
    /// The address it listens on (the real port when the config said 0).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    connector: JoinHandle<()>,
}

/// Opens the database, listens, and connects to the chain in the
/// background; once connected it resumes the tasks left `created` or
/// `uploaded` and settles those left `submitting`.
pub async fn start(config: Config, signer: Keypair) -> anyhow::Result<RunningBridge> {
    let contract = parse_account(&config.contract)
        .map_err(|e| anyhow::anyhow!("contract address {:?}: {e}", config.contract))?;
    let started_ms = store::now_ms();
    let mut store = Store::open(&config.database_url).await?;
    if let Some(instance) = &config.instance {
        store = store.with_owner(instance);
    }
    let store = store.with_lease(config.lease);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        account: account_of(&signer),
        contract,
        config,
        store,
        client: OnceCell::new(),
        submitting: RwLock::new(()),
        stopping: AtomicBool::new(false),
        drivers: Mutex::new(Vec::new()),
        driving: Arc::new(Mutex::new(HashSet::new())),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = warp::serve(api::routes(shared.clone()))
        .incoming(listener)
        .graceful(async {
            let _ = stopped.await;
        })
        .run();
    let server = tokio::spawn(server);
    let connector = tokio::spawn(connect(shared.clone(), signer, started_ms));
    tracing::info!(
        %addr,
        account = %hydrogen_sdk::chain::ss58(&shared.account),
        "bridge listening"
    );
    Ok(RunningBridge {
        addr,
        shared,
        stop,
        server,
        connector,
    })
}

/// Connects to the chain and the relay, retrying every 5 s, then resumes
/// the unfinished tasks.
async fn connect(shared: Arc<Shared>, signer: Keypair, started_ms: i64) {
    let config = &shared.config;
    let client = loop {
        match Client::connect(
            &config.chain_url,
            &config.relay_url,
            shared.contract,
            signer.clone(),
        )
        .await
        {
            Ok(client) => break client.with_poll_interval(config.poll),
            Err(e) => {
                tracing::warn!(chain = %config.chain_url, error = %e, "cannot reach the network; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let _ = shared.client.set(client.clone());
    tracing::info!(chain = %config.chain_url, relay = %config.relay_url, "connected to the network");
    shared.spawn(worker::maintain(shared.clone(), client, started_ms));
}

impl RunningBridge {
    /// The bridge's base URL: `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Whether the bridge has reached the chain.
    pub fn connected(&self) -> bool {
        self.shared.client.initialized()
    }

    /// Stops accepting connections and new tasks, waits (up to a minute)
    /// for `create_task` calls in flight to be recorded, lets requests in
    /// flight finish, and stops the task drivers: their tasks resume at the
    /// next start.
    pub async fn shutdown(self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        match tokio::time::timeout(Duration::from_secs(60), self.shared.submitting.write()).await {
            Ok(_guard) => {}
            Err(_) => tracing::warn!(
                "a create_task call is still in flight after 60 s; its task will be marked failed"
            ),
        }
        let _ = self.stop.send(());
        self.connector.abort();
        let drivers = std::mem::take(
            &mut *self
                .shared
                .drivers
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for driver in &drivers {
            driver.abort();
        }
        // Requests waiting on a task (OpenAI generations, event streams)
        // end with the server's graceful shutdown.
        if tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .is_err()
        {
            tracing::warn!("requests still open after 10 s; closing");
        }
        self.shared.store.close().await;
        tracing::info!(addr = %self.addr, "bridge stopped");
    }
}
