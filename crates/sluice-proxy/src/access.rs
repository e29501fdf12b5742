//! What happens when a request is over: the request counter, the duration histogram,
//! the error counter of whoever caused a failure, one access-log line (if enabled) on
//! the `access` target, and telling the client connection it is idle again.
//!
//! A request whose future is dropped before it finished (the client went away while
//! sluice waited for a slot or the origin) is recorded too: status 499, cause
//! `client_closed`, like NGINX.

use crate::cause::{Cause, Party, CLIENT_CLOSED};
use crate::conn_state::ConnState;
use crate::metrics::{CauseLabels, ClientErrorLabels, Name, RequestLabels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
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
    /// On a TLS listener: the SNI, version and verified client identity.
    pub tls: Option<std::sync::Arc<crate::tls_info::TlsInfo>>,
}

/// The counters a finished request may add to.
#[derive(Clone)]
pub struct Counters {
    pub requests: Family<RequestLabels, Counter>,
    /// The request series each backend has, so they can be removed with it.
    pub request_series: crate::metrics::RequestSeries,
    pub client_errors: Family<ClientErrorLabels, Counter>,
    pub upstream_errors: Family<CauseLabels, Counter>,
}

pub struct Completion {
    pub start: Instant,
    pub counters: Arc<Counters>,
    pub labels: RequestLabels,
    pub duration: Option<Histogram>,
    pub cause: Option<Cause>,
    pub log: Option<LogFields>,
    pub conn: Arc<ConnState>,
    finished: bool,
}

impl Completion {
    pub fn new(
        counters: Arc<Counters>,
        labels: RequestLabels,
        log: Option<LogFields>,
        conn: Arc<ConnState>,
    ) -> Self {
        Self {
            start: Instant::now(),
            counters,
            labels,
            duration: None,
            cause: None,
            log,
            conn,
            finished: false,
        }
    }

    /// `bytes`: response body bytes forwarded; `complete`: the whole body went through.
    pub fn complete(mut self, bytes: u64, complete: bool) {
        self.finish(bytes, complete);
    }

    fn finish(&mut self, bytes: u64, complete: bool) {
        self.finished = true;
        if !complete && self.cause.is_none() {
            // Nothing failed upstream, so the client left or stopped reading.
            self.cause = Some(self.conn.failure().unwrap_or(Cause::ClientClosed));
        }
        let elapsed = Instant::now().saturating_duration_since(self.start);
        // A new series (rare) is noted under its backend; the common case is one lookup.
        match self.counters.requests.get(&self.labels) {
            Some(c) => {
                c.inc();
            }
            None => {
                self.counters.requests.get_or_create(&self.labels).inc();
                if !self.counters.request_series.note(&self.labels) {
                    // The backend left the config while this request ran: no new series.
                    self.counters.requests.remove(&self.labels);
                }
            }
        }
        if let Some(h) = &self.duration {
            h.observe(elapsed.as_secs_f64());
        }
        match self.cause {
            Some(c) if c.party() == Party::Client => {
                self.counters
                    .client_errors
                    .get_or_create(&ClientErrorLabels {
                        listener: self.labels.listener.clone(),
                        cause: c.as_str(),
                    })
                    .inc();
            }
            Some(c) => {
                let l = CauseLabels {
                    backend: self.labels.backend.clone(),
                    cause: c.as_str(),
                };
                self.counters.upstream_errors.get_or_create(&l).inc();
                if self.counters.request_series.is_retired(&l.backend) {
                    self.counters.upstream_errors.remove(&l);
                }
            }
            None => {}
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
                sni = f.tls.as_ref().and_then(|t| t.sni.as_deref()),
                tls_version = f.tls.as_ref().map(|t| t.version),
                client_identity = f.tls.as_ref().and_then(|t| t.identity.as_deref()),
                cause = %self.cause.map_or("-", Cause::as_str),
                bytes_out = bytes,
                complete,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
            );
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.finished {
            if self.labels.status == 0 {
                self.labels.status = CLIENT_CLOSED;
            }
            self.cause.get_or_insert(Cause::ClientClosed);
            self.finish(0, false);
        }
    }
}
