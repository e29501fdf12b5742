//! Client side: accept loops on the listeners and hyper HTTP/1.1 server connections,
//! with a graceful drain on shutdown.

use crate::metrics::{ListenerLabels, Name};
use crate::proxy::{ClientInfo, Proxy};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use sluice_net::Listener;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Settings of one listener's server connections.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub name: String,
    pub keepalive_timeout: Duration,
    /// `limits.max_client_connections`, shared by all listeners.
    pub client_limit: Option<Arc<Semaphore>>,
}

/// Accepts clients on `listener` until `stop` turns true, then closes the listening
/// socket and returns the tracker of its open connections, so the caller can drain them.
pub async fn serve(
    listener: Listener,
    settings: ListenerSettings,
    proxy: Arc<Proxy>,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let name = Name::new(&settings.name);
    let labels = ListenerLabels {
        listener: name.clone(),
    };
    let open = proxy
        .metrics()
        .client_connections
        .get_or_create(&labels)
        .clone();
    let accepted = proxy
        .metrics()
        .client_connections_total
        .get_or_create(&labels)
        .clone();
    let mut builder = http1::Builder::new();
    // half_close: a client may shut down its sending side right after the request
    // (nc, some HTTP/1.0 clients) and still expects the answer.
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(true)
        .header_read_timeout(settings.keepalive_timeout);
    let paused = proxy.metrics().client_connections_paused.clone();
    loop {
        // At the connection limit, stop accepting: new clients wait in the kernel's
        // backlog instead of being accepted and then starved or dropped.
        let permit: Option<OwnedSemaphorePermit> = match &settings.client_limit {
            None => None,
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(p) => Some(p),
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
        accepted.inc();
        let client = ClientInfo {
            listener: name.clone(),
            addr,
        };
        let proxy = proxy.clone();
        let svc = service_fn(move |req| {
            let proxy = proxy.clone();
            let client = client.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, &client).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        let open = open.clone();
        open.inc();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                log_conn_error(&e);
            }
            open.dec();
            drop(permit);
        });
    }
    drop(listener);
    graceful
}

/// Client-side connection errors: a malformed request is answered 400 by hyper before
/// our service runs, so its reason only reaches the log, here.
fn log_conn_error(e: &hyper::Error) {
    if e.is_parse() || e.is_parse_too_large() {
        tracing::info!(cause = "bad_request", detail = %crate::error::error_chain(e), "malformed request");
    } else if e.is_timeout() {
        tracing::debug!("client connection timed out");
    } else {
        tracing::debug!(error = %crate::error::error_chain(e), "client connection error");
    }
}
