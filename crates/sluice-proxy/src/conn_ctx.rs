//! What the connections of one listener share, and what each one holds until it ends
//! (its drain handle and connection-limit permit), whether it is being served or
//! parked between two requests.

use crate::cause::Cause;
use crate::metrics::{ClientErrorLabels, Name};
use crate::park::ParkLot;
use crate::proxy::Proxy;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// The client-side timeouts of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    pub keepalive: Duration,
    pub request_header: Duration,
}

/// What every connection of a listener shares: built once per listener setting, so
/// a connection carries one pointer to it instead of copies.
pub struct ListenerConns {
    pub proxy: Arc<Proxy>,
    pub listener: Name,
    /// `listeners[].half_close`: a client's FIN does not cancel its request.
    pub half_close: bool,
    pub timeouts: ClientTimeouts,
    /// `listeners[].max_request_{line,head,headers}`.
    pub head_limits: crate::client_h1::head::HeadLimits,
    /// `send_timeout` and `request_body_idle_timeout` of the listener.
    pub send_timeout: Duration,
    pub body_idle: Duration,
    pub client_errors: Family<ClientErrorLabels, Counter>,
    /// Where its connections wait between two requests (see `client_conn`).
    pub lot: Arc<ParkLot>,
    /// When its idle connections check whether to park.
    pub idle_tick: Arc<crate::idle_tick::IdleTick>,
    /// Connections of this listener open now, and parked now.
    pub open: Gauge,
    pub parked: Gauge,
    pub parks: Counter,
    /// `listeners[].tls`: connections start with a handshake.
    pub tls: Option<Arc<crate::tls_info::TlsSettings>>,
    /// HTTP/2 from clients (ALPN `h2`, or h2c prior knowledge on a plain listener).
    pub http2: Option<Arc<sluice_config::Http2Settings>>,
}

/// Where a connection reports what went wrong on it; its end is counted on drop.
pub struct ConnContext {
    pub shared: Arc<ListenerConns>,
    /// Held until the connection ends, so shutdown can wait for all of them.
    pub _drain: mpsc::Sender<()>,
    /// `limits.max_client_connections`, released when the connection ends.
    pub _permit: Option<OwnedSemaphorePermit>,
}

impl ConnContext {
    pub fn new(
        shared: Arc<ListenerConns>,
        drain: mpsc::Sender<()>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        shared.open.inc();
        Self {
            shared,
            _drain: drain,
            _permit: permit,
        }
    }
}

impl Drop for ConnContext {
    fn drop(&mut self) {
        self.shared.open.dec();
    }
}

impl ConnContext {
    /// Counts a client error of this connection's listener.
    pub fn count(&self, cause: Cause) {
        self.shared
            .client_errors
            .get_or_create(&ClientErrorLabels {
                listener: self.shared.listener.clone(),
                cause: cause.as_str(),
            })
            .inc();
    }
}
