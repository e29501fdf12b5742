//! One client connection from accept to close: hyper's HTTP/1.1 server connection plus
//! the timers hyper does not have in the form a proxy needs.
//!
//! - `request_header_timeout`: a request head must be complete within this, counted
//!   from the accept for the first request and from its first byte for later ones.
//!   When bytes of a head arrived, the client gets `408` (`sluice-error:
//!   request_header_timeout`); a connection that sent nothing is closed silently.
//! - `keepalive_timeout`: an idle keep-alive connection (no request started) is
//!   closed silently.
//!
//! While a request is in flight neither applies: the request's own timeouts do (body
//! idle on both sides, response, queue). On shutdown the connection finishes its
//! request and closes.

use crate::cause::Cause;
use crate::client_io::ClientIo;
use crate::conn_state::ConnState;
use crate::error::{error_chain, ProxyError};
use crate::metrics::{ClientErrorLabels, Metrics, Name};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The client-side timeouts of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    pub keepalive: Duration,
    pub request_header: Duration,
}

/// Where a connection reports what went wrong on it.
pub struct ConnContext {
    pub listener: Name,
    pub metrics: Metrics,
    pub timeouts: ClientTimeouts,
    /// Held until the connection ends, so shutdown can wait for all of them.
    pub _drain: mpsc::Sender<()>,
}

/// Runs one connection to its end.
pub async fn drive<S>(
    builder: &http1::Builder,
    io: ClientIo,
    service: S,
    state: Arc<ConnState>,
    ctx: ConnContext,
    mut stop: watch::Receiver<bool>,
) where
    S: HttpService<Incoming, ResBody = crate::body::RespBody> + Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let t = ctx.timeouts;
    let mut conn = builder.serve_connection(TokioIo::new(io), service);
    let sleep = tokio::time::sleep(t.request_header);
    tokio::pin!(sleep);
    let mut armed = true;
    let mut stopping = *stop.borrow();
    if stopping {
        Pin::new(&mut conn).graceful_shutdown();
    }
    loop {
        tokio::select! {
            biased;
            ended = &mut conn => {
                if let Err(e) = ended {
                    note_conn_error(&ctx, &e);
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            () = state.changed.notified() => {
                if state.busy() {
                    continue;
                }
                // The first request keeps the deadline counted from the accept.
                let first = state.completed() == 0;
                let wait = if state.head_started() { t.request_header } else { t.keepalive };
                if !(first && state.head_started()) {
                    sleep.as_mut().reset(Instant::now() + wait);
                }
                armed = true;
            }
            () = &mut sleep, if armed => {
                armed = false;
                if state.busy() {
                    continue;
                }
                if state.head_started() {
                    let io = conn.into_parts().io.into_inner();
                    request_header_timeout(io, &ctx).await;
                }
                return;
            }
        }
    }
}

/// Answers a head that did not complete in time with 408 and closes.
async fn request_header_timeout(mut io: ClientIo, ctx: &ConnContext) {
    count(ctx, Cause::RequestHeaderTimeout);
    let e = ProxyError::new(
        Cause::RequestHeaderTimeout,
        format!(
            "no complete request head within {:?}",
            ctx.timeouts.request_header
        ),
    );
    tracing::info!(listener = %ctx.listener.as_str(), cause = e.cause.as_str(), detail = %e.detail, "request head timed out; answered 408");
    let body = e.body_text();
    let status = e.cause.status();
    let head = format!(
        "HTTP/1.1 {} {}\r\n{}: {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        crate::error::ERROR_HEADER,
        e.cause.as_str(),
        body.len()
    );
    // The socket is idle, so this fits its send buffer at once; the bound only stops a
    // client that reads nothing from holding the task.
    let write = async {
        io.write_all(head.as_bytes()).await?;
        io.write_all(body.as_bytes()).await?;
        io.flush().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

fn count(ctx: &ConnContext, cause: Cause) {
    ctx.metrics
        .client_errors
        .get_or_create(&ClientErrorLabels {
            listener: ctx.listener.clone(),
            cause: cause.as_str(),
        })
        .inc();
}

/// A malformed request is answered 400 by hyper before our service runs, so its reason
/// only reaches the log and the client-error counter, here. A client that left
/// mid-request was already counted by its request.
fn note_conn_error(ctx: &ConnContext, e: &hyper::Error) {
    if e.is_parse() || e.is_parse_too_large() {
        count(ctx, Cause::BadRequest);
        tracing::info!(listener = %ctx.listener.as_str(), cause = Cause::BadRequest.as_str(), detail = %error_chain(e), "malformed request");
    } else {
        tracing::debug!(listener = %ctx.listener.as_str(), error = %error_chain(e), "client connection ended with an error");
    }
}
