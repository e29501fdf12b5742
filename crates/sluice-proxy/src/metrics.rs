//! The data path's Prometheus metrics. Names start with `sluice_` and say their unit;
//! label sets are small and bounded by the config (route, backend, status, cause).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::sync::Arc;

/// A label value shared by reference (route and backend names), so per-request label
/// sets cost a reference-count bump, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(pub Arc<str>);

impl Name {
    pub fn new(s: &str) -> Self {
        Self(Arc::from(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub listener: Name,
    pub route: Name,
    pub backend: Name,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CauseLabels {
    pub backend: Name,
    pub cause: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: Name,
}

/// Every metric family of the data path.
#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<BackendLabels, Histogram>,
    pub upstream_opened: Family<BackendLabels, Counter>,
    pub upstream_reused: Family<BackendLabels, Counter>,
    pub upstream_idle: Family<BackendLabels, Gauge>,
    pub upstream_errors: Family<CauseLabels, Counter>,
    pub upstream_retries: Family<BackendLabels, Counter>,
    pub connect_duration: Family<BackendLabels, Histogram>,
    pub tls_duration: Family<BackendLabels, Histogram>,
    pub client_connections: Family<ListenerLabels, Gauge>,
    pub client_connections_total: Family<ListenerLabels, Counter>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0,
    ]
    .into_iter()
}

fn histograms() -> Family<BackendLabels, Histogram> {
    Family::new_with_constructor(|| Histogram::new(latency_buckets()))
}

impl Metrics {
    /// Creates the families and registers them under `sluice_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            request_duration: histograms(),
            upstream_opened: Family::default(),
            upstream_reused: Family::default(),
            upstream_idle: Family::default(),
            upstream_errors: Family::default(),
            upstream_retries: Family::default(),
            connect_duration: histograms(),
            tls_duration: histograms(),
            client_connections: Family::default(),
            client_connections_total: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("sluice");
        r.register(
            "requests",
            "Requests answered, by listener, route, backend and status",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from request received to response body finished, by backend",
            m.request_duration.clone(),
        );
        r.register(
            "upstream_connections_opened",
            "Upstream connections opened",
            m.upstream_opened.clone(),
        );
        r.register(
            "upstream_connections_reused",
            "Requests sent on a pooled (reused) upstream connection",
            m.upstream_reused.clone(),
        );
        r.register(
            "upstream_idle_connections",
            "Idle upstream connections in the pool",
            m.upstream_idle.clone(),
        );
        r.register(
            "upstream_errors",
            "Upstream failures by cause (the sluice-error value)",
            m.upstream_errors.clone(),
        );
        r.register(
            "upstream_retries",
            "Requests re-sent on a fresh connection after a pooled one turned out closed",
            m.upstream_retries.clone(),
        );
        r.register(
            "upstream_connect_duration_seconds",
            "TCP (or Unix) connect time of new upstream connections",
            m.connect_duration.clone(),
        );
        r.register(
            "upstream_tls_handshake_duration_seconds",
            "TLS handshake time of new upstream connections",
            m.tls_duration.clone(),
        );
        r.register(
            "client_connections",
            "Open client connections",
            m.client_connections.clone(),
        );
        r.register(
            "client_connections_accepted",
            "Client connections accepted",
            m.client_connections_total.clone(),
        );
        m
    }
}

/// Per-backend handles, resolved once at config time so the hot path skips the lookups.
#[derive(Clone)]
pub struct BackendMetrics {
    pub opened: Counter,
    pub reused: Counter,
    pub idle: Gauge,
    pub retries: Counter,
    pub connect: Histogram,
    pub tls: Histogram,
    pub duration: Histogram,
}

impl BackendMetrics {
    pub fn new(m: &Metrics, backend: &Name) -> Self {
        let l = BackendLabels {
            backend: backend.clone(),
        };
        Self {
            opened: m.upstream_opened.get_or_create(&l).clone(),
            reused: m.upstream_reused.get_or_create(&l).clone(),
            idle: m.upstream_idle.get_or_create(&l).clone(),
            retries: m.upstream_retries.get_or_create(&l).clone(),
            connect: m.connect_duration.get_or_create(&l).clone(),
            tls: m.tls_duration.get_or_create(&l).clone(),
            duration: m.request_duration.get_or_create(&l).clone(),
        }
    }
}
