//! What the operator sees: a shared snapshot of the daemon, served as JSON
//! (`GET /status`), as Prometheus metrics (`GET /metrics`) and as a web page
//! (`GET /`, from `web/`) that also shows the recent tasks
//! (`GET /tasks/recent`), the log tail (`GET /logs`, [`logs`]) and, with the
//! control token, joins, pauses, resumes or quits (`POST /control/...`,
//! [`control`]).

pub mod control;
pub mod logs;

use crate::store::{Counters, Store};
use control::{Action, Control, Failure};
use logs::LogBuffer;
use prometheus::{Encoder, Gauge, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use warp::http::StatusCode;
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
    /// `addr` until the process ends, and the web page without the task
    /// list, the log tail or control. Returns the bound address.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        self.serve_web(addr, Web::default()).await
    }

    /// [`Status::serve`] with what `web` adds: `GET /tasks/recent` from its
    /// store, `GET /logs` from its log buffer, `POST /control/{action}`
    /// with its control. Returns the bound address.
    pub async fn serve_web(&self, addr: SocketAddr, web: Web) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(warp::serve(self.routes(web)).incoming(listener).run());
        Ok(bound)
    }

    fn routes(
        &self,
        web: Web,
    ) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone + Send
    {
        let status = self.clone();
        let json = warp::path!("status")
            .and(warp::get())
            .map(move || no_store(warp::reply::json(&status.snapshot())));
        let status = self.clone();
        let metrics = warp::path!("metrics").and(warp::get()).map(move || {
            warp::reply::with_header(
                status.metrics_text(),
                "content-type",
                "text/plain; version=0.0.4",
            )
        });
        let health = warp::path!("healthz").map(|| "ok");
        let index = warp::path::end().and(warp::get()).map(|| {
            let page = page();
            let reply = warp::reply::html(page.html.as_str());
            let reply = warp::reply::with_header(reply, "content-security-policy", &page.csp);
            let reply = warp::reply::with_header(reply, "x-content-type-options", "nosniff");
            let reply = warp::reply::with_header(reply, "referrer-policy", "no-referrer");
            no_store(reply)
        });
        let store = web.store.clone();
        let recent = warp::path!("tasks" / "recent")
            .and(warp::get())
            .and(warp::query::<Limits>())
            .map(move |q: Limits| {
                let limit = q.limit.unwrap_or(RECENT_TASKS).min(RECENT_TASKS);
                match &store {
                    None => json_reply(StatusCode::OK, &Vec::<()>::new()),
                    Some(store) => match store.recent_tasks(limit) {
                        Ok(tasks) => json_reply(StatusCode::OK, &tasks),
                        Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                    },
                }
            });
        let buffer = web.logs.clone();
        let log_tail = warp::path!("logs")
            .and(warp::get())
            .and(warp::query::<Limits>())
            .map(move |q: Limits| {
                let n = q.lines.unwrap_or(logs::DEFAULT_LINES).min(logs::CAPACITY);
                let lines = buffer.as_ref().map_or_else(Vec::new, |b| b.tail(n));
                json_reply(StatusCode::OK, &serde_json::json!({ "lines": lines }))
            });
        let enabled = web.control.is_some();
        let control_info = warp::path!("control")
            .and(warp::get())
            .map(move || json_reply(StatusCode::OK, &serde_json::json!({ "enabled": enabled })));
        let control = web.control.clone();
        let control_post = warp::path!("control" / String)
            .and(warp::post())
            .and(warp::header::optional::<String>("authorization"))
            .then(move |action: String, authorization: Option<String>| {
                let control = control.clone();
                async move { control_action(control, &action, authorization).await }
            });
        let routes = index
            .or(json)
            .or(metrics)
            .or(health)
            .or(recent)
            .or(log_tail)
            .or(control_info)
            .or(control_post);
        routes.recover(|rejection: warp::Rejection| async move {
            let (code, message) = if rejection.is_not_found() {
                (StatusCode::NOT_FOUND, "not found".to_owned())
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed".to_owned(),
                )
            } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
                (StatusCode::BAD_REQUEST, "invalid query string".to_owned())
            } else {
                (StatusCode::BAD_REQUEST, format!("{rejection:?}"))
            };
            Ok::<_, std::convert::Infallible>(error_reply(code, &message))
        })
    }
}

/// The most tasks `GET /tasks/recent` lists.
pub const RECENT_TASKS: usize = 50;
/// How long `POST /control/...` waits for the daemon's answer (a chain
/// call waits for its block to be finalized).
pub const CONTROL_WAIT: Duration = Duration::from_secs(120);

/// What the web server adds to [`Status`]: the task list, the log tail and
/// control. Each absent part serves empty (`[]`, no lines) or, for control,
/// 403.
#[derive(Clone, Default)]
pub struct Web {
    pub store: Option<Store>,
    pub logs: Option<LogBuffer>,
    pub control: Option<Control>,
}

#[derive(Deserialize)]
struct Limits {
    limit: Option<usize>,
    lines: Option<usize>,
}

fn no_store(reply: impl warp::Reply) -> impl warp::Reply {
    warp::reply::with_header(reply, "cache-control", "no-store")
}

fn json_reply(code: StatusCode, body: &impl Serialize) -> warp::reply::Response {
    use warp::Reply;
    no_store(warp::reply::with_status(warp::reply::json(body), code)).into_response()
}

fn error_reply(code: StatusCode, message: &str) -> warp::reply::Response {
    json_reply(code, &serde_json::json!({ "ok": false, "error": message }))
}

/// `POST /control/{action}`: off without a token (403), then the bearer
/// token (401), then the action, run by the daemon.
async fn control_action(
    control: Option<Control>,
    action: &str,
    authorization: Option<String>,
) -> warp::reply::Response {
    use warp::Reply;
    let Some(control) = control else {
        return error_reply(
            StatusCode::FORBIDDEN,
            "control is disabled on this node: set control_token in its config \
             (or HYDROGEN_NODE_CONTROL_TOKEN) and restart it",
        );
    };
    if !control.authorized(authorization.as_deref()) {
        let message = if authorization.is_none() {
            "control needs the node's control token: Authorization: Bearer <control_token>"
        } else {
            "wrong control token"
        };
        return warp::reply::with_header(
            error_reply(StatusCode::UNAUTHORIZED, message),
            "www-authenticate",
            "Bearer realm=\"hydrogen-node\"",
        )
        .into_response();
    }
    let Ok(action) = action.parse::<Action>() else {
        return error_reply(
            StatusCode::NOT_FOUND,
            &format!("unknown action {action:?}: join, pause, resume or quit"),
        );
    };
    match control.request(action, CONTROL_WAIT).await {
        Ok(node_status) => json_reply(
            StatusCode::OK,
            &serde_json::json!({
                "ok": true,
                "action": action,
                "node_status": node_status,
            }),
        ),
        Err(Failure {
            status: code,
            message,
        }) => json_reply(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &serde_json::json!({ "ok": false, "action": action, "error": message }),
        ),
    }
}

/// The web page (`web/index.html` with `web/app.css` and `web/app.js`
/// inlined) and a Content-Security-Policy that allows exactly those.
struct Page {
    html: String,
    csp: String,
}

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_CSS: &str = include_str!("../web/app.css");
const APP_JS: &str = include_str!("../web/app.js");

fn page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let digest = |text: &str| base64(&Sha256::digest(text.as_bytes()));
        Page {
            html: INDEX_HTML
                .replace("__UNIT__", &hydrogen_sdk::types::UNIT.to_string())
                .replace("/*APP_CSS*/", APP_CSS)
                .replace("/*APP_JS*/", APP_JS),
            csp: format!(
                "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
                 connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
                digest(APP_JS),
                digest(APP_CSS)
            ),
        }
    })
}

/// Standard base64 with padding (for the CSP's hashes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_page_inlines_its_script_and_style() {
        let page = page();
        assert!(page.html.contains(APP_JS) && page.html.contains(APP_CSS));
        assert!(!page.html.contains("/*APP_JS*/"));
        assert!(page.csp.contains("script-src 'sha256-"));
    }
}
