//! Opening one upstream connection: connect (+ TLS) with its metrics, then the hyper
//! handshake, with the connection's I/O in a task of its own.

use super::h2::H2Sender;
use crate::backend::{Backend, Server};
use crate::error::{error_chain, ProxyError};
use crate::h1_conn::H1;
use crate::metrics::{ErrnoLabels, Metrics, Name, SourceLabels};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use sluice_net::UpstreamStream;
use sluice_pool::Pooled;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The upstream socket as hyper sees it; closes with a reset once abandoned.
struct UpstreamIo {
    stream: UpstreamStream,
    reset: Arc<AtomicBool>,
}

impl Drop for UpstreamIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            self.stream.reset_on_close();
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Decrements a gauge when the connection it counts ends.
pub struct GaugeGuard(Option<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

/// Connect (+ TLS), recording timings, errors by errno and the source address used.
pub async fn connect(
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
) -> Result<(UpstreamStream, GaugeGuard), ProxyError> {
    match backend
        .connector
        .connect(&server.target, backend.settings.connect_timeout)
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
            let guard = GaugeGuard(timings.source.map(|ip| {
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

pub async fn handshake_h1(
    backend: &Backend,
    server: &Server,
    stream: UpstreamStream,
    guard: GaugeGuard,
) -> Result<Pooled<H1>, ProxyError> {
    let reset = Arc::new(AtomicBool::new(false));
    let io = UpstreamIo {
        stream,
        reset: reset.clone(),
    };
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| ProxyError::exchange(e).unsent())?;
    let label = server.label.clone();
    let task = tokio::spawn(async move {
        let _guard = guard;
        if let Err(e) = conn.await {
            tracing::debug!(server = %label.as_str(), error = %error_chain(&e), "upstream connection ended with an error");
        }
    })
    .abort_handle();
    backend.metrics.opened.inc();
    server
        .opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Pooled::new(
        H1 { tx, task, reset },
        server.key.clone(),
        backend.settings.policy,
        backend.metrics.idle_tally.clone(),
    ))
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
