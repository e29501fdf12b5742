//! What happens when a response is finished: the request counter, the duration
//! histogram and (if enabled) one access-log line on the `access` target.

use crate::metrics::{Name, RequestLabels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tokio::time::Instant;

/// Fields known only when access logging is on (they cost allocations).
pub struct LogFields {
    pub request_id: String,
    pub client: String,
    pub method: http::Method,
    pub host: String,
    pub path: String,
    pub upstream: Option<Name>,
    pub reused: bool,
}

pub struct Completion {
    pub start: Instant,
    pub requests: Family<RequestLabels, Counter>,
    pub labels: RequestLabels,
    pub duration: Option<Histogram>,
    pub cause: Option<&'static str>,
    pub log: Option<LogFields>,
}

impl Completion {
    /// `bytes`: response body bytes forwarded; `complete`: the whole body went through.
    pub fn complete(self, bytes: u64, complete: bool) {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        self.requests.get_or_create(&self.labels).inc();
        if let Some(h) = &self.duration {
            h.observe(elapsed.as_secs_f64());
        }
        if let Some(f) = &self.log {
            tracing::info!(
                target: "access",
                request_id = %f.request_id,
                listener = %self.labels.listener.as_str(),
                client = %f.client,
                method = %f.method,
                host = %f.host,
                path = %f.path,
                status = self.labels.status,
                route = %self.labels.route.as_str(),
                backend = %self.labels.backend.as_str(),
                upstream = %f.upstream.as_ref().map_or("-", |n| n.as_str()),
                reused = f.reused,
                cause = %self.cause.unwrap_or("-"),
                bytes_out = bytes,
                complete,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
            );
        }
    }
}
