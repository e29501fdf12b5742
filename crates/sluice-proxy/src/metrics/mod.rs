//! The data path's Prometheus metrics. Names start with `sluice_` and say their unit;
//! label sets are small and bounded by the config (route, backend, status, cause).

mod forward;
mod tls;
mod tunnel;

pub use forward::{DestinationLabels, ForwardMetrics, PolicyLabels};
pub use tls::{HandshakeLabels, ListenerLabel, TlsMetrics};
pub use tunnel::{TunnelLabels, TunnelMetrics};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sluice_pool::Tally;
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
pub struct ClientErrorLabels {
    pub listener: Name,
    pub cause: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServerLabels {
    pub backend: Name,
    pub server: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrnoLabels {
    pub backend: Name,
    pub errno: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SourceLabels {
    pub backend: Name,
    pub source: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CheckLabels {
    pub backend: Name,
    pub server: Name,
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: Name,
}

/// Decrements a gauge when what it counts ends (an upstream connection bound to a
/// source address).
pub struct GaugeGuard(Option<Gauge>);

impl GaugeGuard {
    /// Counts one more on `g` (if any) until the guard is dropped.
    pub fn new(g: Option<Gauge>) -> Self {
        Self(g)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
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
    pub client_errors: Family<ClientErrorLabels, Counter>,
    pub upstream_retries: Family<BackendLabels, Counter>,
    pub connect_duration: Family<BackendLabels, Histogram>,
    pub tls_duration: Family<BackendLabels, Histogram>,
    pub client_connections: Family<ListenerLabels, Gauge>,
    pub client_connections_total: Family<ListenerLabels, Counter>,
    pub client_connections_parked: Family<ListenerLabels, Gauge>,
    pub client_parks: Family<ListenerLabels, Counter>,
    pub client_connections_paused: Counter,
    pub client_connections_shed: Counter,
    pub queue_depth: Family<BackendLabels, Gauge>,
    pub queue_time: Family<BackendLabels, Histogram>,
    pub server_inflight: Family<ServerLabels, Gauge>,
    pub server_healthy: Family<ServerLabels, Gauge>,
    pub servers: Family<BackendLabels, Gauge>,
    pub ejections: Family<ServerLabels, Counter>,
    pub health_checks: Family<CheckLabels, Counter>,
    pub retry_budget_exhausted: Family<BackendLabels, Counter>,
    pub dns_refreshes: Family<BackendLabels, Counter>,
    pub dns_failures: Family<BackendLabels, Counter>,
    pub connect_errors: Family<ErrnoLabels, Counter>,
    pub source_connections: Family<SourceLabels, Gauge>,
    pub h2_connections: Family<BackendLabels, Gauge>,
    pub h2_streams: Family<BackendLabels, Gauge>,
    pub h2_streams_per_connection: Family<BackendLabels, Histogram>,
    /// How many live servers use each server label set (two generations can hold two
    /// server objects with the same labels for a moment).
    pub tunnels: TunnelMetrics,
    pub forward: ForwardMetrics,
    pub tls: TlsMetrics,
    server_refs: Arc<parking_lot::Mutex<std::collections::HashMap<ServerLabels, usize>>>,
    pub request_series: RequestSeries,
}

/// The request-counter label sets seen per backend (request series are keyed by route
/// and status too, which `Family` cannot list).
#[derive(Clone, Default)]
pub struct RequestSeries(Arc<parking_lot::Mutex<SeriesBook>>);

#[derive(Default)]
struct SeriesBook {
    seen: std::collections::HashMap<Name, Vec<RequestLabels>>,
    /// Backends that left the config: requests still finishing on them add no series.
    retired: std::collections::HashSet<Name>,
}

impl RequestSeries {
    /// Notes a new series; false if its backend has left (the caller removes it).
    pub fn note(&self, l: &RequestLabels) -> bool {
        let mut book = self.0.lock();
        if book.retired.contains(&l.backend) {
            return false;
        }
        book.seen
            .entry(l.backend.clone())
            .or_default()
            .push(l.clone());
        true
    }

    pub fn is_retired(&self, backend: &Name) -> bool {
        let book = self.0.lock();
        !book.retired.is_empty() && book.retired.contains(backend)
    }

    fn retire(&self, backend: &Name) -> Vec<RequestLabels> {
        let mut book = self.0.lock();
        book.retired.insert(backend.clone());
        book.seen.remove(backend).unwrap_or_default()
    }

    /// A backend of this name is (again) in the config.
    fn revive(&self, backend: &Name) {
        let mut book = self.0.lock();
        if !book.retired.is_empty() {
            book.retired.remove(backend);
        }
    }
}

/// Holds a server's metric series; the last guard of a label set removes them.
pub struct SeriesGuard {
    labels: ServerLabels,
    metrics: Metrics,
}

impl Drop for SeriesGuard {
    fn drop(&mut self) {
        let mut refs = self.metrics.server_refs.lock();
        let gone = match refs.get_mut(&self.labels) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                refs.remove(&self.labels);
                true
            }
        };
        drop(refs);
        if gone {
            self.metrics.remove_server(&self.labels);
        }
    }
}

impl Metrics {
    /// Counts a server with these labels in; its guard counts it out.
    pub fn server_series(&self, labels: &ServerLabels) -> SeriesGuard {
        *self.server_refs.lock().entry(labels.clone()).or_default() += 1;
        SeriesGuard {
            labels: labels.clone(),
            metrics: self.clone(),
        }
    }

    fn remove_server(&self, l: &ServerLabels) {
        self.server_inflight.remove(l);
        self.server_healthy.remove(l);
        self.ejections.remove(l);
        for result in ["pass", "fail"] {
            self.health_checks.remove(&CheckLabels {
                backend: l.backend.clone(),
                server: l.server.clone(),
                result,
            });
        }
    }

    /// Removes the series of a backend that left the config. (Connect errors by errno
    /// and source-address gauges stay: their label sets are not tracked.)
    pub fn remove_backend(&self, backend: &Name) {
        for l in self.request_series.retire(backend) {
            self.requests.remove(&l);
        }
        let l = BackendLabels {
            backend: backend.clone(),
        };
        self.request_duration.remove(&l);
        self.upstream_opened.remove(&l);
        self.upstream_reused.remove(&l);
        self.upstream_idle.remove(&l);
        self.upstream_retries.remove(&l);
        self.connect_duration.remove(&l);
        self.tls_duration.remove(&l);
        self.queue_depth.remove(&l);
        self.queue_time.remove(&l);
        self.servers.remove(&l);
        self.retry_budget_exhausted.remove(&l);
        self.dns_refreshes.remove(&l);
        self.dns_failures.remove(&l);
        self.h2_connections.remove(&l);
        self.h2_streams.remove(&l);
        self.h2_streams_per_connection.remove(&l);
        for c in crate::cause::Cause::ALL {
            self.upstream_errors.remove(&CauseLabels {
                backend: backend.clone(),
                cause: c.as_str(),
            });
        }
    }
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
        let tunnels = TunnelMetrics::register(registry.sub_registry_with_prefix("sluice"));
        let forward = ForwardMetrics::register(registry.sub_registry_with_prefix("sluice"));
        let tls = TlsMetrics::register(registry.sub_registry_with_prefix("sluice"));
        tls.register_expiry(registry);
        let m = Self {
            requests: Family::default(),
            request_duration: histograms(),
            upstream_opened: Family::default(),
            upstream_reused: Family::default(),
            upstream_idle: Family::default(),
            upstream_errors: Family::default(),
            client_errors: Family::default(),
            upstream_retries: Family::default(),
            connect_duration: histograms(),
            tls_duration: histograms(),
            client_connections: Family::default(),
            client_connections_total: Family::default(),
            client_connections_parked: Family::default(),
            client_parks: Family::default(),
            client_connections_paused: Counter::default(),
            client_connections_shed: Counter::default(),
            queue_depth: Family::default(),
            queue_time: histograms(),
            server_inflight: Family::default(),
            server_healthy: Family::default(),
            servers: Family::default(),
            ejections: Family::default(),
            health_checks: Family::default(),
            retry_budget_exhausted: Family::default(),
            dns_refreshes: Family::default(),
            dns_failures: Family::default(),
            connect_errors: Family::default(),
            source_connections: Family::default(),
            h2_connections: Family::default(),
            h2_streams: Family::default(),
            h2_streams_per_connection: Family::new_with_constructor(|| {
                Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
            }),
            tunnels,
            forward,
            tls,
            server_refs: Default::default(),
            request_series: Default::default(),
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
            "Requests that failed for a reason not of the client's making, by backend and cause (the sluice-error value)",
            m.upstream_errors.clone(),
        );
        r.register(
            "client_errors",
            "Requests (and connections) that failed through the client's fault or because it left, by listener and cause; never counted against a backend",
            m.client_errors.clone(),
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
            "client_connections_parked",
            "Open client connections waiting between requests with no buffers held",
            m.client_connections_parked.clone(),
        );
        r.register(
            "client_parks",
            "Times a keep-alive client connection released its buffers between requests",
            m.client_parks.clone(),
        );
        r.register(
            "client_connections_accepted",
            "Client connections accepted",
            m.client_connections_total.clone(),
        );
        r.register(
            "client_accept_paused",
            "Times accepting paused because limits.max_client_connections was reached",
            m.client_connections_paused.clone(),
        );
        r.register(
            "client_connections_shed",
            "Clients answered 503 overloaded (or closed, on TLS listeners) at limits.max_client_connections",
            m.client_connections_shed.clone(),
        );
        r.register(
            "backend_queue_depth",
            "Requests waiting for a free slot (limits.maxconn*)",
            m.queue_depth.clone(),
        );
        r.register(
            "backend_queue_duration_seconds",
            "Time requests spent in the backend queue (only requests that had to wait)",
            m.queue_time.clone(),
        );
        r.register(
            "server_requests_in_flight",
            "Requests in flight per server",
            m.server_inflight.clone(),
        );
        r.register(
            "server_healthy",
            "1 if the server takes requests (not down by checks, not ejected, not removed by DNS)",
            m.server_healthy.clone(),
        );
        r.register(
            "backend_servers",
            "Current servers of the backend (static plus resolved addresses)",
            m.servers.clone(),
        );
        r.register(
            "server_ejections",
            "Passive ejections of a server after consecutive failures",
            m.ejections.clone(),
        );
        r.register(
            "health_checks",
            "Active health checks by result (pass, fail)",
            m.health_checks.clone(),
        );
        r.register(
            "retry_budget_exhausted",
            "Retries not made because the backend's retry budget was spent",
            m.retry_budget_exhausted.clone(),
        );
        r.register(
            "dns_refreshes",
            "Successful DNS lookups of a backend's server names",
            m.dns_refreshes.clone(),
        );
        r.register(
            "dns_failures",
            "Failed DNS lookups (the last good addresses stay in use)",
            m.dns_failures.clone(),
        );
        r.register(
            "upstream_connect_errors",
            "Failed upstream connects by errno (EADDRNOTAVAIL = out of source ports)",
            m.connect_errors.clone(),
        );
        r.register(
            "upstream_source_connections",
            "Open upstream connections per local source address",
            m.source_connections.clone(),
        );
        r.register(
            "upstream_h2_connections",
            "Open HTTP/2 upstream connections",
            m.h2_connections.clone(),
        );
        r.register(
            "upstream_h2_streams",
            "Active HTTP/2 streams (requests) on upstream connections",
            m.h2_streams.clone(),
        );
        r.register(
            "upstream_h2_streams_per_connection",
            "Streams active on the chosen HTTP/2 connection when a request starts",
            m.h2_streams_per_connection.clone(),
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
    /// `idle` as the pool sees it (the pool takes no metrics types).
    pub idle_tally: Arc<dyn Tally>,
    pub retries: Counter,
    pub connect: Histogram,
    pub tls: Histogram,
    pub duration: Histogram,
    pub queue_depth: Gauge,
    pub queue_time: Histogram,
    pub servers: Gauge,
    pub budget_exhausted: Counter,
    pub dns_refreshes: Counter,
    pub dns_failures: Counter,
    pub h2_connections: Gauge,
    pub h2_streams: Gauge,
    /// `h2_streams` as the pool sees it.
    pub h2_streams_tally: Arc<dyn Tally>,
    pub h2_per_conn: Histogram,
}

impl BackendMetrics {
    pub fn new(m: &Metrics, backend: &Name) -> Self {
        m.request_series.revive(backend);
        let l = BackendLabels {
            backend: backend.clone(),
        };
        Self {
            opened: m.upstream_opened.get_or_create(&l).clone(),
            reused: m.upstream_reused.get_or_create(&l).clone(),
            idle: m.upstream_idle.get_or_create(&l).clone(),
            idle_tally: Arc::new(GaugeTally(m.upstream_idle.get_or_create(&l).clone())),
            retries: m.upstream_retries.get_or_create(&l).clone(),
            connect: m.connect_duration.get_or_create(&l).clone(),
            tls: m.tls_duration.get_or_create(&l).clone(),
            duration: m.request_duration.get_or_create(&l).clone(),
            queue_depth: m.queue_depth.get_or_create(&l).clone(),
            queue_time: m.queue_time.get_or_create(&l).clone(),
            servers: m.servers.get_or_create(&l).clone(),
            budget_exhausted: m.retry_budget_exhausted.get_or_create(&l).clone(),
            dns_refreshes: m.dns_refreshes.get_or_create(&l).clone(),
            dns_failures: m.dns_failures.get_or_create(&l).clone(),
            h2_connections: m.h2_connections.get_or_create(&l).clone(),
            h2_streams: m.h2_streams.get_or_create(&l).clone(),
            h2_streams_tally: Arc::new(GaugeTally(m.h2_streams.get_or_create(&l).clone())),
            h2_per_conn: m.h2_streams_per_connection.get_or_create(&l).clone(),
        }
    }
}

/// Feeds a gauge from the pool's idle counts.
pub struct GaugeTally(pub Gauge);

impl Tally for GaugeTally {
    fn add(&self, delta: i64) {
        self.0.inc_by(delta);
    }
}

/// Feeds a backend's queue metrics from its limiter.
pub struct QueueMetrics {
    pub depth: Gauge,
    pub time: Histogram,
}

impl sluice_pool::QueueObserver for QueueMetrics {
    fn depth(&self, waiting: usize) {
        self.depth.set(waiting as i64);
    }

    fn waited(&self, time: std::time::Duration) {
        self.time.observe(time.as_secs_f64());
    }
}
