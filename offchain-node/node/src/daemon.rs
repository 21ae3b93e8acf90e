//! `hydrogen-node run`: join (or resume), follow the chain, run every task
//! this node is selected for, contribute entropy, and on SIGTERM/SIGINT
//! pause or quit and finish the task at hand before exiting.

use crate::capacity::{self, Capacity};
use crate::config::{Config, OnShutdown};
use crate::engine;
use crate::executor::Context;
use crate::membership::{self, is_staked};
use crate::status::control::{self, Action, Control, Failure};
use crate::status::{logs, Status, Web};
use crate::store::Store;
use crate::task::TaskRecord;
use crate::watcher::Watcher;
use anyhow::{Context as _, Result};
use hydrogen_engine::Backend;
use hydrogen_sdk::chain::{account_of, parse_account, ss58, ChainError, Keypair};
use hydrogen_sdk::relay::RelayClient;
use hydrogen_sdk::types::{
    AccountId, Error as ContractError, NodeInfo, NodeStatus, ENTROPY_WINDOW_MS,
};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};

/// A contribution is repeated at most this often while tasks keep waiting
/// for entropy and no new task arrived (two *other* nodes must contribute).
const ENTROPY_RETRY: Duration = Duration::from_secs(30);

fn is_transport_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ChainError>()
        .is_some_and(ChainError::is_transport)
}

/// Everything `run` sets up before its loop.
pub struct Daemon {
    config: Config,
    ctx: Arc<Context>,
    capacity: Capacity,
    notify: Arc<Notify>,
    tasks_created: Arc<AtomicU64>,
    contract: AccountId,
    /// The operator quit through the status server's control: no rejoining
    /// after a kick-out until they join again.
    operator_quit: Arc<AtomicBool>,
}

impl Daemon {
    pub async fn new(config: Config, signer: Keypair) -> Result<Daemon> {
        let me = account_of(&signer);
        let contract = parse_account(&config.contract).context(
            "`contract` must be the hydrogen contract's address (set it in the config or HYDROGEN_NODE_CONTRACT)",
        )?;
        let store = Store::open(&config.data_dir)?;
        store.bind_contract(&ss58(&contract))?;
        let backend: Backend = config.backend.parse()?;
        let capacity = capacity::detect(&config.gpu, backend)?;
        let engine: Arc<dyn engine::Engine> = engine::from_config(&config.engine, backend)?.into();
        let relay = RelayClient::new(&config.relay_url, signer.clone())?;
        let status = Status::new(ss58(&me));
        let counters = store.counters()?;
        status.update(|s| {
            s.gpu = capacity.gpu_name.clone();
            s.vram_gb = capacity.vram_gb;
            s.backend = backend.name().to_owned();
            s.counters = counters;
            s.last_block = store.last_block().ok().flatten();
        });
        let ctx = Context {
            chain: crate::chain::connection(&config.chain_url, contract, me),
            relay: Box::new(relay),
            engine,
            sources: crate::sources::ModelSources::from_config(&config),
            store,
            signer,
            me,
            files: config.data_dir.join("tasks"),
            status,
            vram_gb: capacity.vram_gb,
            memory_limit: capacity::memory_limit(config.memory_limit_mb, backend, capacity.vram_gb),
            progress_bar: std::io::stderr().is_terminal(),
        };
        Ok(Daemon {
            config,
            ctx: Arc::new(ctx),
            capacity,
            notify: Arc::new(Notify::new()),
            tasks_created: Arc::new(AtomicU64::new(0)),
            contract,
            operator_quit: Arc::default(),
        })
    }

    pub fn status(&self) -> &Status {
        &self.ctx.status
    }

    /// Runs until a signal asks it to stop and the task at hand is done.
    pub async fn run(self) -> Result<()> {
        let ctx = &self.ctx;
        tracing::info!(
            account = %ss58(&ctx.me),
            gpu = %self.capacity.gpu_name,
            vram_gb = self.capacity.vram_gb,
            backend = %self.config.backend,
            chain = %self.config.chain_url,
            relay = %self.config.relay_url,
            engine = %self.config.engine,
            "starting"
        );
        let mut control_requests = None;
        if !self.config.http_listen.is_empty() {
            let addr: std::net::SocketAddr = self
                .config
                .http_listen
                .parse()
                .context("`http_listen` must be host:port")?;
            let control = match self.config.control_token() {
                Some(token) => {
                    let (control, requests) = Control::new(token)?;
                    control_requests = Some(requests);
                    if !addr.ip().is_loopback() {
                        tracing::warn!(
                            %addr,
                            "control is on and the status server listens beyond loopback: \
                             its token travels in clear text; put TLS in front of it"
                        );
                    }
                    Some(control)
                }
                None => None,
            };
            let web = Web {
                store: Some(ctx.store.clone()),
                logs: Some(logs::global().clone()),
                control,
            };
            let bound = ctx
                .status
                .serve_web(addr, web)
                .await
                .context("status server")?;
            tracing::info!(
                %bound,
                control = control_requests.is_some(),
                "web UI on /, status on /status, metrics on /metrics"
            );
        } else if self.config.control_token().is_some() {
            tracing::warn!("control_token is set but http_listen is off: no control endpoint");
        }
        let stop = StopRequest::watch(
            ctx.status.clone(),
            ctx.store.clone(),
            self.config.on_shutdown,
        )?;
        if let Some(requests) = control_requests {
            tokio::spawn(control_loop(
                self.ctx.clone(),
                self.capacity.clone(),
                stop.clone(),
                self.notify.clone(),
                self.operator_quit.clone(),
                requests,
            ));
        }

        ctx.status.update(|s| s.daemon = "joining".into());
        let mut backoff = Duration::from_millis(500);
        loop {
            match membership::join_or_resume(&ctx.chain, &ctx.store, &ctx.signer, &self.capacity)
                .await
            {
                Ok(what) => {
                    tracing::info!(what, "in the network");
                    break;
                }
                Err(e) if is_transport_error(&e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "chain unreachable");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.requested() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        }

        tokio::spawn(
            Watcher {
                url: self.config.chain_url.clone(),
                contract: self.contract,
                me: ctx.me,
                store: ctx.store.clone(),
                status: ctx.status.clone(),
                notify: self.notify.clone(),
                tasks_created: self.tasks_created.clone(),
            }
            .run(),
        );

        ctx.status.update(|s| s.daemon = "running".into());
        let poll = Duration::from_secs(self.config.poll_interval_secs.max(1));
        let mut entropy = EntropyPacer::default();
        let mut left = false;
        let mut last_rejoin: Option<Instant> = None;
        loop {
            let stopping = stop.is_requested();
            let info = self.round(stopping, &mut entropy).await;
            if !stopping
                && !self.operator_quit.load(Ordering::SeqCst)
                && last_rejoin.is_none_or(|t| t.elapsed() >= REJOIN_RETRY)
            {
                if let Some(info) = info.as_ref().filter(|i| self.kicked_out(i)) {
                    last_rejoin = Some(Instant::now());
                    self.rejoin(info).await;
                }
            }
            if stopping {
                if !left {
                    left = self.leave().await;
                }
                let busy = info.as_ref().is_none_or(|i| i.current_task.is_some());
                let open = ctx
                    .store
                    .open_tasks()
                    .map(|t| !t.is_empty())
                    .unwrap_or(true);
                if left && !busy && !open {
                    tracing::info!("stopped: no task at hand");
                    return Ok(());
                }
            }
            tokio::select! {
                _ = stop.requested(), if !stopping => {}
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Whether `info` is this node's record after a kick-out (the contract
    /// keeps the miss count on it; a voluntary quit happens below it).
    fn kicked_out(&self, info: &NodeInfo) -> bool {
        info.status == NodeStatus::Quit && info.rejoin_after > 0 && info.missed > 0
    }

    /// Joins again once the kick-out's cooldown has passed: the runner
    /// started the daemon to be in the network, and a kick-out (for tasks no
    /// node could run, say) must not end that silently.
    async fn rejoin(&self, info: &NodeInfo) {
        let now = now_ms();
        if now < info.rejoin_after {
            tracing::info!(
                in_s = (info.rejoin_after - now) / 1000,
                "kicked out for missed tasks; rejoining when the cooldown ends"
            );
            return;
        }
        let ctx = &self.ctx;
        match membership::join(&ctx.chain, &ctx.store, &ctx.signer, &self.capacity).await {
            Ok(()) => tracing::info!("rejoined the network after a kick-out"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot rejoin after a kick-out"),
        }
    }

    /// Pauses or quits as configured; true once done (or nothing to do).
    async fn leave(&self) -> bool {
        let what = match self.config.on_shutdown {
            OnShutdown::Stay => return true,
            OnShutdown::Pause => "pause",
            OnShutdown::Quit => "quit",
        };
        match membership::simple_call(&self.ctx.chain, &self.ctx.signer, what).await {
            Ok(()) => {
                match self.config.on_shutdown {
                    OnShutdown::Pause => tracing::info!(
                        "paused: no new tasks (takes effect once the task at hand is released; \
                         the stake stays, the next start resumes)"
                    ),
                    _ => tracing::info!(
                        "quit the network (takes effect once the task at hand is released; \
                         the stake comes back then)"
                    ),
                }
                true
            }
            Err(e) => match e
                .downcast_ref::<ChainError>()
                .and_then(ChainError::contract_error)
            {
                // Already paused, quit, or never joined.
                Some(ContractError::WrongNodeStatus | ContractError::NotJoined) => true,
                _ => {
                    tracing::warn!(error = %e, what, "cannot leave the network yet; retrying");
                    false
                }
            },
        }
    }

    /// One pass: the node's record, its tasks, entropy. Errors are logged
    /// and retried on the next pass.
    async fn round(&self, stopping: bool, entropy: &mut EntropyPacer) -> Option<NodeInfo> {
        let ctx = &self.ctx;
        let info = match membership::node_info(&ctx.chain, ctx.me).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read this node's record");
                ctx.status.update(|s| {
                    s.chain_connected = false;
                    s.last_error = Some(e.to_string());
                });
                return None;
            }
        };
        let me = ctx.me;
        let tokens = ctx
            .chain
            .call(|h| async move { h.balance_of(me).await })
            .await
            .unwrap_or_default();
        ctx.status.update(|s| {
            s.chain_connected = true;
            s.node_status = info.as_ref().map(|i| format!("{:?}", i.status));
            s.stake = info.as_ref().map_or(0, |i| i.stake);
            s.missed_in_a_row = info.as_ref().map_or(0, |i| i.missed);
            s.tokens = tokens;
        });
        // The contract's word on the current task, so nothing depends on
        // having seen the NodeSelected event.
        if let Some(id) = info.as_ref().and_then(|i| i.current_task) {
            if let Err(e) = self.adopt(id).await {
                tracing::warn!(task = id, error = %e, "cannot record the current task");
            }
        }
        match ctx.store.open_tasks() {
            Ok(tasks) => {
                for mut rec in tasks {
                    if let Err(e) = ctx.drive(&mut rec).await {
                        tracing::warn!(
                            task = rec.id,
                            state = rec.state.name(),
                            error = format!("{e:#}"),
                            "task step failed; retrying"
                        );
                        ctx.status
                            .update(|s| s.last_error = Some(format!("task {}: {e:#}", rec.id)));
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the task database"),
        }
        if let Ok(counters) = ctx.store.counters() {
            ctx.status.update(|s| s.counters = counters);
        }
        if self.config.contribute_entropy && !stopping && is_staked(&info) {
            let created = self.tasks_created.load(Ordering::SeqCst);
            if entropy.due(created) {
                // Only the armed batch's designated contributors may; anyone
                // else's call would be refused (and cost nothing, but noise).
                let designated = ctx
                    .chain
                    .call(|h| async move { h.entropy_contributors().await })
                    .await
                    .unwrap_or_default();
                if entropy.stalled(&designated) {
                    // Someone must move a batch on whose contributors went
                    // silent; refused in the dry run unless it is due.
                    let signer = ctx.signer.clone();
                    if ctx
                        .chain
                        .call(|h| async move { h.redesignate(&signer).await })
                        .await
                        .is_ok()
                    {
                        tracing::info!("replaced silent entropy contributors");
                    }
                }
                if designated.contains(&me) {
                    match membership::contribute_entropy(&ctx.chain, &ctx.store, &ctx.signer).await
                    {
                        Ok(true) => {
                            tracing::info!("contributed entropy");
                            entropy.done(created);
                        }
                        Ok(false) => entropy.done(created),
                        Err(e) => tracing::warn!(error = %e, "entropy contribution failed"),
                    }
                }
            }
        }
        info
    }

    /// Records task `id` as selected if it is new. If this node gave the
    /// task up (a local fault) but the chain still holds it, settles the
    /// task once its deadline has passed: nobody else may be around to do
    /// it, and a node must not stay locked on a task nobody can finish.
    async fn adopt(&self, id: u64) -> Result<()> {
        let ctx = &self.ctx;
        if let Some(rec) = ctx.store.task(id)? {
            if rec.state.is_terminal()
                && now_ms() > rec.deadline
                && membership::settle_if_due(&ctx.chain, &ctx.signer, id).await
            {
                tracing::info!(
                    task = id,
                    "settled a task this node gave up, past its deadline"
                );
            }
            return Ok(());
        }
        let task = ctx.chain.task(id).await?;
        let deadline = task.map_or(0, |t| t.deadline);
        ctx.store.write(|w| {
            if w.task(id)?.is_none() {
                tracing::info!(task = id, "selected for a task (from the node's record)");
                w.put_task(&TaskRecord::selected(id, deadline))?;
            }
            Ok(())
        })?;
        crate::crash::point("selected");
        Ok(())
    }
}

/// Runs the operator's actions from the status server (`POST /control/...`),
/// one at a time, next to the main loop, with the functions the `join`,
/// `pause`, `resume` and `quit` subcommands use; then wakes the main loop so
/// it reads the node's new record at once.
async fn control_loop(
    ctx: Arc<Context>,
    capacity: Capacity,
    stop: StopRequest,
    notify: Arc<Notify>,
    operator_quit: Arc<AtomicBool>,
    mut requests: mpsc::Receiver<control::Request>,
) {
    while let Some(control::Request { action, reply }) = requests.recv().await {
        let what = action.name();
        tracing::info!(action = what, "control: requested on the status server");
        let outcome = run_action(&ctx, &capacity, &stop, &operator_quit, action).await;
        match &outcome {
            Ok(node_status) => {
                tracing::info!(action = what, ?node_status, "control: done")
            }
            Err(f) => tracing::warn!(action = what, error = %f.message, "control: not done"),
        }
        notify.notify_one();
        let _ = reply.send(outcome);
    }
}

async fn run_action(
    ctx: &Context,
    capacity: &Capacity,
    stop: &StopRequest,
    operator_quit: &AtomicBool,
    action: Action,
) -> control::Outcome {
    if stop.is_requested() && matches!(action, Action::Join | Action::Resume) {
        return Err(Failure::new(
            409,
            "the daemon is stopping (it was signalled): it takes no new tasks; start it again",
        ));
    }
    let done = match action {
        Action::Join => membership::join_or_resume(&ctx.chain, &ctx.store, &ctx.signer, capacity)
            .await
            .map(|what| tracing::info!(what, "control: join")),
        _ => membership::simple_call(&ctx.chain, &ctx.signer, action.name()).await,
    };
    done.map_err(|e| control_failure(&e))?;
    match action {
        Action::Quit => operator_quit.store(true, Ordering::SeqCst),
        Action::Join | Action::Resume => operator_quit.store(false, Ordering::SeqCst),
        Action::Pause => {}
    }
    let info = membership::node_info(&ctx.chain, ctx.me)
        .await
        .map_err(|e| control_failure(&e.into()))?;
    let node_status = info.as_ref().map(|i| format!("{:?}", i.status));
    ctx.status.update(|s| {
        s.node_status.clone_from(&node_status);
        s.stake = info.as_ref().map_or(0, |i| i.stake);
    });
    Ok(node_status)
}

/// A failed control action as the operator sees it: the contract's refusal
/// (409), an unreachable chain (503), anything else (500).
fn control_failure(e: &anyhow::Error) -> Failure {
    match e.downcast_ref::<ChainError>() {
        Some(c) if c.contract_error().is_some() => {
            Failure::new(409, format!("the contract refused: {e:#}"))
        }
        Some(c) if c.is_transport() => Failure::new(503, format!("chain unreachable: {e:#}")),
        _ => Failure::new(500, format!("{e:#}")),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How often a kicked-out daemon tries to join again.
const REJOIN_RETRY: Duration = Duration::from_secs(60);

/// When to contribute entropy: once per new task seen, or again after
/// [`ENTROPY_RETRY`] while tasks still wait.
#[derive(Default)]
struct EntropyPacer {
    last: Option<Instant>,
    created_then: u64,
    /// The pending contributors last seen, and since when.
    waiting: Option<(Vec<AccountId>, Instant)>,
}

impl EntropyPacer {
    fn due(&self, created: u64) -> bool {
        match self.last {
            None => true,
            Some(at) => created > self.created_then || at.elapsed() >= ENTROPY_RETRY,
        }
    }

    fn done(&mut self, created: u64) {
        self.last = Some(Instant::now());
        self.created_then = created;
    }

    /// Whether the same contributors have been pending for longer than the
    /// contract's window (by this machine's clock, with a margin).
    fn stalled(&mut self, designated: &[AccountId]) -> bool {
        if designated.is_empty() {
            self.waiting = None;
            return false;
        }
        match &self.waiting {
            Some((seen, since)) if seen == designated => {
                since.elapsed() > Duration::from_millis(ENTROPY_WINDOW_MS) + ENTROPY_RETRY
            }
            _ => {
                self.waiting = Some((designated.to_vec(), Instant::now()));
                false
            }
        }
    }
}

/// The operator's request to stop, watched by a task of its own so that a
/// signal is acknowledged at once even while the engine runs: the first
/// asks the daemon to finish the task at hand and leave; the second exits
/// the process at once. That is safe: every task step is persisted before
/// it is acted on, and the next start resumes the task where it stood.
#[derive(Clone)]
struct StopRequest {
    requested: Arc<std::sync::atomic::AtomicBool>,
    notify: Arc<Notify>,
}

impl StopRequest {
    fn watch(status: Status, store: Store, on_shutdown: OnShutdown) -> Result<StopRequest> {
        let mut signals = Signals::new()?;
        let stop = StopRequest {
            requested: Arc::default(),
            notify: Arc::new(Notify::new()),
        };
        let watched = stop.clone();
        tokio::spawn(async move {
            signals.next().await;
            tracing::info!(
                ?on_shutdown,
                "stopping: finishing the task at hand first (signal again to exit at once)"
            );
            watched.requested.store(true, Ordering::SeqCst);
            status.update(|s| s.daemon = "stopping".into());
            watched.notify.notify_waiters();
            signals.next().await;
            tracing::warn!(
                "second signal: exiting now; the task at hand resumes at the next start"
            );
            // A generation cut short by the operator is tried again at the
            // next start; only a death while generating marks it as fatal.
            if let Err(e) = store.set_generating(None) {
                tracing::warn!(error = %e, "cannot record the interrupted generation");
            }
            std::process::exit(130);
        });
        Ok(stop)
    }

    fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Returns once a stop was requested.
    async fn requested(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_requested() {
                return;
            }
            notified.await;
        }
    }
}

/// SIGTERM and SIGINT as one stream.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
