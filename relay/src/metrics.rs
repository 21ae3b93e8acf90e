//! Prometheus metrics, in a registry of the relay's own (several relays can
//! run in one process, as in the tests).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint and status code.
    pub requests: IntCounterVec,
    /// Seconds from the request to the response, by endpoint.
    pub duration: HistogramVec,
    /// Body bytes received and sent, by endpoint and direction.
    pub bytes: IntCounterVec,
    /// Tasks whose blobs the retention sweep deleted, by reason.
    pub swept: IntCounterVec,
    /// Tasks with blobs in the store.
    pub stored_tasks: IntGauge,
    /// Seconds one read of a task from the chain takes, by block
    /// (`finalized`, `best`).
    pub chain_reads: HistogramVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("hydrogen_relay".into()), None)
            .expect("a valid metrics prefix");
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "Requests by endpoint and status code."),
            &["endpoint", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from request to response, by endpoint.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["endpoint"],
        )
        .expect("valid metric");
        let bytes = IntCounterVec::new(
            Opts::new("body_bytes_total", "Body bytes by endpoint and direction."),
            &["endpoint", "direction"],
        )
        .expect("valid metric");
        let swept = IntCounterVec::new(
            Opts::new("swept_tasks_total", "Tasks whose blobs retention deleted."),
            &["reason"],
        )
        .expect("valid metric");
        let stored_tasks =
            IntGauge::new("stored_tasks", "Tasks with blobs in the store.").expect("valid metric");
        let chain_reads = HistogramVec::new(
            HistogramOpts::new(
                "chain_read_seconds",
                "Time one read of a task from the chain takes, by block.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["block"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(bytes.clone()),
            Box::new(swept.clone()),
            Box::new(stored_tasks.clone()),
            Box::new(chain_reads.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            duration,
            bytes,
            swept,
            stored_tasks,
            chain_reads,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
