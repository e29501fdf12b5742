//! Client side: the accept loop of each listener, and the drain on shutdown.

use crate::client_conn;
use crate::conn_ctx::{ClientTimeouts, ConnContext, ListenerConns};
use crate::idle_tick::IdleTick;
use crate::metrics::{ListenerLabels, Name};
use crate::park::ParkLot;
use crate::proxy::Proxy;
use crate::tls_info::Peer;
pub use crate::tls_info::TlsSettings;
use sluice_net::Listener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// Settings of one listener's server connections.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub name: String,
    pub keepalive_timeout: Duration,
    pub request_header_timeout: Duration,
    pub request_body_idle_timeout: Duration,
    pub send_timeout: Duration,
    pub half_close: bool,
    /// `max_request_line`, `max_request_head`, `max_request_headers`.
    pub head_limits: crate::HeadLimits,
    /// `limits.max_client_connections`, shared by all listeners.
    pub client_limit: Option<Arc<Semaphore>>,
    /// `limits.when_full: shed`: at the limit, answer new clients 503 and close.
    pub shed_when_full: bool,
    pub tls: Option<Arc<TlsSettings>>,
    pub http2: Option<Arc<sluice_config::Http2Settings>>,
}

/// The open connections of a listener that stopped accepting.
pub struct Drain {
    rx: mpsc::Receiver<()>,
}

impl Drain {
    /// Resolves once every connection has ended. Each was told to finish when the stop
    /// signal turned true: idle ones close at once, busy ones after their response.
    pub async fn wait(mut self) {
        // Nothing is ever sent: `recv` returns `None` once every sender is dropped.
        while self.rx.recv().await.is_some() {}
    }
}

/// Accepts clients on `listener` until `stop` turns true, then closes the listening
/// socket and returns its open connections, so the caller can wait for them.
///
/// `settings` may change while it runs (a reload): new connections get the new ones,
/// open connections keep theirs. The socket stays the same.
pub async fn serve(
    listener: Listener,
    mut settings_rx: watch::Receiver<ListenerSettings>,
    proxy: Arc<Proxy>,
    mut stop: watch::Receiver<bool>,
) -> Drain {
    let (drain_tx, drain_rx) = mpsc::channel(1);
    let mut settings = settings_rx.borrow_and_update().clone();
    let mut setup = Setup::new(&settings, &proxy, &stop);
    let paused = proxy.metrics().client_connections_paused.clone();
    loop {
        // At the connection limit: shed (a fast 503 to each new client), or stop
        // accepting so new clients wait in the kernel's backlog.
        let permit: Option<OwnedSemaphorePermit> = match &settings.client_limit {
            None => None,
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) if settings.shed_when_full => {
                    let accepted = tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        r = listener.accept() => r,
                    };
                    if let Ok((stream, _)) = accepted {
                        proxy.metrics().client_connections_shed.inc();
                        tokio::spawn(crate::shed::answer(stream));
                    }
                    continue;
                }
                Err(_) => {
                    paused.inc();
                    tracing::debug!(listener = %settings.name, "client connection limit reached; accepting paused");
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        p = limit.clone().acquire_owned() => p.ok(),
                    }
                }
            },
        };
        let (stream, addr) = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: log, back off a little, keep serving.
                    tracing::warn!(listener = %settings.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Settings that changed while accept() waited (a reload, a renewed
        // certificate) apply to this connection already.
        if settings_rx.has_changed().unwrap_or(false) {
            settings = settings_rx.borrow_and_update().clone();
            setup = Setup::new(&settings, &proxy, &stop);
        }
        let Setup { conns, accepted } = &setup;
        accepted.inc();
        let ctx = ConnContext::new(conns.clone(), drain_tx.clone(), permit);
        match (stream, conns.tls.is_some()) {
            (sluice_net::ClientStream::Tcp(tcp), true) => {
                // Boxed like every connection's future (see `client_conn::spawn`).
                tokio::spawn(Box::pin(crate::client_tls::serve(
                    tcp,
                    addr,
                    ctx,
                    stop.clone(),
                )));
            }
            (stream, _) => client_conn::spawn(stream, Peer { addr, tls: None }, ctx, stop.clone()),
        }
    }
    drop(listener);
    Drain { rx: drain_rx }
}

/// What every connection of a listener is served with, built from its settings.
struct Setup {
    conns: Arc<ListenerConns>,
    accepted: prometheus_client::metrics::counter::Counter,
}

impl Setup {
    fn new(settings: &ListenerSettings, proxy: &Arc<Proxy>, stop: &watch::Receiver<bool>) -> Self {
        let name = Name::new(&settings.name);
        let labels = ListenerLabels {
            listener: name.clone(),
        };
        let m = proxy.metrics();
        let conns = ListenerConns {
            proxy: proxy.clone(),
            listener: name,
            half_close: settings.half_close,
            timeouts: ClientTimeouts {
                keepalive: settings.keepalive_timeout,
                request_header: settings.request_header_timeout,
            },
            head_limits: settings.head_limits,
            send_timeout: settings.send_timeout,
            body_idle: settings.request_body_idle_timeout,
            client_errors: m.client_errors.clone(),
            lot: ParkLot::new(stop.clone()),
            idle_tick: IdleTick::new(crate::client_conn::PARK_AFTER),
            open: m.client_connections.get_or_create(&labels).clone(),
            parked: m.client_connections_parked.get_or_create(&labels).clone(),
            parks: m.client_parks.get_or_create(&labels).clone(),
            tls: settings.tls.clone(),
            http2: settings.http2.clone(),
        };
        Self {
            conns: Arc::new(conns),
            accepted: m.client_connections_total.get_or_create(&labels).clone(),
        }
    }
}
