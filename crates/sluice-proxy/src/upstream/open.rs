//! Opening one upstream connection: connect (+ TLS) with its metrics, then HTTP/1.1
//! as it is, or the HTTP/2 handshake with the connection's I/O in a task of its own.

use super::h2::H2Sender;
use crate::backend::{Backend, Server};
use crate::error::{error_chain, ProxyError};
use crate::h1_conn::H1;
use crate::metrics::GaugeGuard;
use crate::metrics::{ErrnoLabels, Metrics, Name, SourceLabels};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_config::Protocol;
use sluice_net::UpstreamStream;
use sluice_pool::Pooled;

/// Connect (+ TLS), recording timings, errors by errno and the source address used.
/// `http1`: offer only `http/1.1` in ALPN (for a tunnel).
pub async fn connect(
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
    http1: bool,
) -> Result<(UpstreamStream, GaugeGuard), ProxyError> {
    let h1_target;
    let target = if http1 && backend.settings.tls && backend.settings.protocol != Protocol::Http1 {
        h1_target = server.target.http1_only();
        &h1_target
    } else {
        &server.target
    };
    match backend
        .connector
        .connect(target, backend.settings.connect_timeout)
        .await
    {
        Ok((stream, timings)) => {
            backend
                .metrics
                .connect
                .observe(timings.connect.as_secs_f64());
            if let Some(tls) = timings.tls_handshake {
                backend.metrics.tls.observe(tls.as_secs_f64());
            }
            let guard = GaugeGuard::new(timings.source.map(|ip| {
                let g = metrics
                    .source_connections
                    .get_or_create(&SourceLabels {
                        backend: backend.name.clone(),
                        source: Name::new(&ip.to_string()),
                    })
                    .clone();
                g.inc();
                g
            }));
            Ok((stream, guard))
        }
        Err(e) => {
            tracing::debug!(backend = %backend.name.as_str(), server = %server.label.as_str(), error = %e, "upstream connect failed");
            metrics
                .connect_errors
                .get_or_create(&ErrnoLabels {
                    backend: backend.name.clone(),
                    errno: e.errno_label(),
                })
                .inc();
            Err(ProxyError::connect(&e))
        }
    }
}

/// A new HTTP/1.1 connection: nothing to negotiate, and no task of its own (the
/// requests that use it drive it).
pub fn new_h1(
    backend: &Backend,
    server: &Server,
    stream: UpstreamStream,
    guard: GaugeGuard,
) -> Pooled<H1> {
    backend.metrics.opened.inc();
    server
        .opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Pooled::new(
        H1::new(stream, guard),
        server.key.clone(),
        backend.settings.policy,
        backend.metrics.idle_tally.clone(),
    )
}

pub async fn handshake_h2(
    backend: &Backend,
    server: &Server,
    stream: UpstreamStream,
    guard: GaugeGuard,
) -> Result<H2Sender, ProxyError> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    if let Some((interval, timeout)) = backend.settings.h2_ping {
        builder
            .keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true);
    }
    let (tx, conn) = builder
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::exchange(e).unsent())?;
    let label = server.label.clone();
    let open = backend.metrics.h2_connections.clone();
    open.inc();
    tokio::spawn(async move {
        let _guard = guard;
        if let Err(e) = conn.await {
            tracing::debug!(server = %label.as_str(), error = %error_chain(&e), "upstream HTTP/2 connection ended with an error");
        }
        open.dec();
    });
    backend.metrics.opened.inc();
    server
        .opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(H2Sender(tx))
}
