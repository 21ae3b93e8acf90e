//! The Hydrogen relay: a warp server that carries task arguments from apps
//! to nodes and result images from the designated node back to the app.
//! Requests are signed with chain keys ([`hydrogen_sdk::relay::auth`]);
//! who may do what comes from the contract's state; blobs live in an
//! object store and are deleted after their task is over.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = hydrogen_relay::Config::new("ws://127.0.0.1:9944", "5F...contract");
//! let relay = hydrogen_relay::start(config).await?;
//! println!("listening on {}", relay.addr);
//! relay.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! `relay/README.md` documents the endpoints, configuration, storage
//! layout, retention and metrics.

mod api;
mod chain;
pub mod config;
mod limits;
mod metrics;
mod replay;
mod retention;
mod store;

pub use config::{AuthConfig, Config, Limits, ReplayScope, Retention, StorageConfig};
pub use retention::{SweepReason, SweepReport};

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Mutex};
use tokio::task::JoinHandle;

/// What every request handler shares.
struct State {
    config: Config,
    store: store::Store,
    chain: chain::ChainView,
    replay: replay::ReplayGuard,
    /// The authorities requests may be signed for, lower case.
    authorities: Vec<String>,
    metrics: metrics::Metrics,
    /// One sweep at a time, periodic or on demand.
    sweeping: Mutex<()>,
    /// Signs upload receipts, when configured.
    receipts: Option<hydrogen_sdk::relay::receipt::ReceiptKeypair>,
    /// Signed requests per account (`[auth] requests_per_second`, `burst`).
    limiter: limits::Limiter,
    /// Image checks running at once (`[limits] image_checks`).
    checks: Arc<tokio::sync::Semaphore>,
    /// Image uploads admitted at once (`[limits] uploads_in_flight`).
    uploads: Arc<tokio::sync::Semaphore>,
}

/// The listening socket, with `TCP_NODELAY` (Linux passes it on to every
/// accepted connection; warp offers no hook per connection): a streamed
/// response ends in a short chunk, which Nagle's algorithm would hold back
/// for the client's delayed ACK, 40 ms.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A relay serving in the background.
pub struct RunningRelay {
    /// The address it listens on (the real port when the config said 0).
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    sweeper: Option<JoinHandle<()>>,
}

/// Connects to the chain, opens and indexes the store, binds the listener
/// and serves until [`RunningRelay::shutdown`].
pub async fn start(config: Config) -> anyhow::Result<RunningRelay> {
    let metrics = metrics::Metrics::new();
    let chain = chain::ChainView::connect(
        &config.rpc_url,
        &config.contract,
        Duration::from_millis(config.task_cache_ms),
        metrics.chain_reads.clone(),
    )
    .await
    .with_context(|| format!("cannot reach the chain at {}", config.rpc_url))?;
    let receipts = match &config.receipt_key {
        Some(uri) => {
            let key = hydrogen_sdk::relay::receipt::keypair_from_uri(uri)
                .map_err(|e| anyhow::anyhow!("receipt_key: {e}"))?;
            tracing::info!(
                key = %format!("0x{}", hex::encode(hydrogen_sdk::relay::receipt::public_key(&key))),
                "signing upload receipts (register this key with set_relay_key)"
            );
            Some(key)
        }
        None => None,
    };
    let store = store::Store::open(&config.storage).await?;
    let listener =
        listen(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let authorities = config.auth.authorities_for(addr)?;
    tracing::info!(?authorities, "answering requests signed for");
    let shared_guard = match config.auth.replay_guard {
        config::ReplayScope::Store => Some(store.clone()),
        config::ReplayScope::Memory => None,
    };
    let state = Arc::new(State {
        replay: replay::ReplayGuard::new(config.auth.max_skew_ms, shared_guard),
        authorities,
        metrics,
        sweeping: Mutex::new(()),
        receipts,
        limiter: limits::Limiter::new(config.auth.requests_per_second, config.auth.burst),
        checks: Arc::new(tokio::sync::Semaphore::new(config.limits.checks())),
        uploads: Arc::new(tokio::sync::Semaphore::new(config.limits.uploads())),
        config,
        store,
        chain,
    });
    state
        .metrics
        .stored_tasks
        .set(state.store.tasks().len() as i64);

    let (stop, stopped) = oneshot::channel::<()>();
    let server = warp::serve(api::routes(state.clone()))
        .incoming(listener)
        .graceful(async {
            let _ = stopped.await;
        })
        .run();
    let server = tokio::spawn(server);
    let sweeper = match state.config.retention.sweep_interval_secs {
        0 => None,
        secs => Some(tokio::spawn(sweep_every(
            state.clone(),
            Duration::from_secs(secs),
        ))),
    };
    tracing::info!(%addr, "relay listening");
    Ok(RunningRelay {
        addr,
        state,
        stop,
        server,
        sweeper,
    })
}

async fn sweep_every(state: Arc<State>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let _one = state.sweeping.lock().await;
        if let Err(e) = retention::sweep(&state, now_ms()).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "retention sweep failed; next one later"
            );
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl RunningRelay {
    /// The relay's base URL: `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs a retention sweep now (waits for a periodic one in progress).
    pub async fn sweep_now(&self) -> anyhow::Result<SweepReport> {
        let _one = self.state.sweeping.lock().await;
        retention::sweep(&self.state, now_ms()).await
    }

    /// Runs a retention sweep as if the clock read `now_ms` (ms since the
    /// Unix epoch): for tests and for operators checking what a sweep would
    /// do at a later time. Deletes for real.
    pub async fn sweep_at(&self, now_ms: u64) -> anyhow::Result<SweepReport> {
        let _one = self.state.sweeping.lock().await;
        retention::sweep(&self.state, now_ms).await
    }

    /// The Prometheus text of the relay's metrics.
    pub fn metrics(&self) -> String {
        self.state.metrics.render()
    }

    /// Stops accepting connections, lets requests in flight finish, then
    /// returns.
    pub async fn shutdown(self) {
        if let Some(sweeper) = &self.sweeper {
            sweeper.abort();
        }
        let _ = self.stop.send(());
        if let Err(e) = self.server.await {
            tracing::error!(error = %e, "the server task failed");
        }
        tracing::info!(addr = %self.addr, "relay stopped");
    }
}
