//! What the operator sees: a shared snapshot of the daemon, served as JSON
//! (`GET /status`) and as Prometheus metrics (`GET /metrics`).

use crate::store::Counters;
use prometheus::{Encoder, Gauge, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use warp::Filter;

/// The task this node is working on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CurrentTask {
    pub id: u64,
    /// The state machine's state (`selected`, `generated`...).
    pub state: String,
    /// What it waits for, if anything.
    pub waiting_for: Option<String>,
    /// Denoising progress of the generation under way.
    pub step: usize,
    pub steps: usize,
    pub image: u32,
    pub images: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub account: String,
    /// `starting`, `joining`, `running`, `stopping`.
    pub daemon: String,
    /// The node's status on chain (`Available`, `Busy`, `Paused`...), if registered.
    pub node_status: Option<String>,
    /// Stake locked in the contract, in the token's smallest unit.
    pub stake: u128,
    /// Free token balance.
    pub tokens: u128,
    /// Consecutive tasks missed, as the contract counts them.
    pub missed_in_a_row: u8,
    pub gpu: String,
    pub vram_gb: u32,
    /// The engine's backend (`wgpu`, `cpu`, `cuda`...), as configured.
    pub backend: String,
    /// Device memory the engine's allocator holds (bytes), where the backend
    /// reports it; refreshed after every generation.
    pub device_memory_bytes: Option<u64>,
    pub chain_connected: bool,
    pub last_block: Option<u64>,
    pub current_task: Option<CurrentTask>,
    pub counters: Counters,
    pub last_error: Option<String>,
}

/// The daemon's snapshot and the metrics derived from it. Cheap to clone.
#[derive(Clone)]
pub struct Status {
    inner: Arc<Mutex<Snapshot>>,
    metrics: Arc<Metrics>,
}

struct Metrics {
    registry: Registry,
    tasks_run: IntGauge,
    outcomes: IntGaugeVec,
    earnings: Gauge,
    stake: Gauge,
    tokens: Gauge,
    chain_connected: IntGauge,
    last_block: IntGauge,
    current_task: IntGauge,
    step: IntGauge,
    entropy: IntGauge,
    backend: IntGaugeVec,
    device_memory: IntGauge,
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new_custom(Some("hydrogen_node".into()), None)
            .expect("a valid metrics prefix");
        let int = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let float = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let outcomes = IntGaugeVec::new(
            Opts::new(
                "task_outcomes",
                "Tasks by outcome for this node: paid, slashed, missed, local_fault, kicked_out",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(outcomes.clone()))
            .expect("unique metric");
        let backend = IntGaugeVec::new(
            Opts::new("engine_backend", "1 for the engine backend this node runs"),
            &["backend"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(backend.clone()))
            .expect("unique metric");
        Metrics {
            backend,
            device_memory: int(
                "device_memory_bytes",
                "Device memory held by the engine's allocator (0 where unreported)",
            ),
            tasks_run: int("tasks_run", "Tasks this node computed a result for"),
            outcomes,
            earnings: float("earnings_tokens", "Tokens earned from tasks (whole tokens)"),
            stake: float(
                "stake_tokens",
                "Stake locked in the contract (whole tokens)",
            ),
            tokens: float("balance_tokens", "Free token balance (whole tokens)"),
            chain_connected: int("chain_connected", "1 while the chain node answers"),
            last_block: int(
                "last_block",
                "Last finalized block whose events were handled",
            ),
            current_task: int("current_task", "Id of the task being worked on, 0 for none"),
            step: int(
                "generation_step",
                "Denoising step of the generation under way",
            ),
            entropy: int("entropy_contributions", "Entropy contributions sent"),
            registry,
        }
    }
}

fn tokens(amount: u128) -> f64 {
    amount as f64 / hydrogen_sdk::types::UNIT as f64
}

impl Status {
    pub fn new(account: String) -> Status {
        Status {
            inner: Arc::new(Mutex::new(Snapshot {
                account,
                daemon: "starting".into(),
                ..Snapshot::default()
            })),
            metrics: Arc::new(Metrics::new()),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the snapshot and refreshes the metrics.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
        let m = &self.metrics;
        let c = &s.counters;
        m.tasks_run.set(c.tasks_run as i64);
        for (outcome, n) in [
            ("paid", c.paid),
            ("slashed", c.slashed),
            ("missed", c.missed),
            ("local_fault", c.local_faults),
            ("kicked_out", c.kicked_out),
        ] {
            m.outcomes.with_label_values(&[outcome]).set(n as i64);
        }
        m.earnings.set(tokens(c.earnings));
        m.stake.set(tokens(s.stake));
        m.tokens.set(tokens(s.tokens));
        m.chain_connected.set(i64::from(s.chain_connected));
        m.last_block.set(s.last_block.unwrap_or(0) as i64);
        m.current_task
            .set(s.current_task.as_ref().map_or(0, |t| t.id as i64));
        m.step
            .set(s.current_task.as_ref().map_or(0, |t| t.step as i64));
        m.entropy.set(c.entropy_contributions as i64);
        if !s.backend.is_empty() {
            m.backend.with_label_values(&[s.backend.as_str()]).set(1);
        }
        m.device_memory
            .set(s.device_memory_bytes.unwrap_or(0) as i64);
    }

    /// The metrics in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.metrics.registry.gather(), &mut out)
            .expect("metrics encode");
        String::from_utf8(out).expect("metrics are text")
    }

    /// Serves `GET /status` (JSON), `GET /metrics` and `GET /healthz` on
    /// `addr` until the process ends. Returns the bound address.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let status = self.clone();
        let json = warp::path!("status")
            .and(warp::get())
            .map(move || warp::reply::json(&status.snapshot()));
        let status = self.clone();
        let metrics = warp::path!("metrics").and(warp::get()).map(move || {
            warp::reply::with_header(
                status.metrics_text(),
                "content-type",
                "text/plain; version=0.0.4",
            )
        });
        let health = warp::path!("healthz").map(|| "ok");
        let routes = json.or(metrics).or(health);
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        Ok(bound)
    }
}
