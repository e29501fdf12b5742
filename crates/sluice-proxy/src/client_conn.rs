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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::coop::unconstrained;
use tokio::time::Instant;

/// How long, and how many bytes, a connection answered 408 is read from before it
/// closes.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

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

/// How a connection's driver stopped.
enum Outcome {
    Ended(Result<(), hyper::Error>),
    /// The header or keep-alive timer expired while no request was in flight.
    Idle,
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
    S: HttpService<Incoming, ResBody = crate::resp_body::RespBody> + Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let t = ctx.timeouts;
    let mut conn = builder.serve_connection(TokioIo::new(io), service);
    let mut stopping = *stop.borrow_and_update();
    if stopping {
        Pin::new(&mut conn).graceful_shutdown();
    }
    // The stop signal and the timer are polled only to register for a wake-up, and
    // again when they may have fired (checked cheaply): re-polling them on every
    // wake-up of the connection would take a lock and a timer-wheel visit each time.
    let seen = stop.clone();
    let stop_signal = stop.changed();
    tokio::pin!(stop_signal);
    let mut stop_registered = false;
    // Armed from the accept: the first request head is due within request_header.
    let sleep = tokio::time::sleep(t.request_header);
    tokio::pin!(sleep);
    let (mut armed, mut sleep_registered) = (true, false);
    let outcome = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = Pin::new(&mut conn).poll(cx) {
            return Poll::Ready(Outcome::Ended(r));
        }
        if !stopping {
            let stop_now = if stop_registered {
                seen.has_changed().unwrap_or(true)
            } else {
                stop_registered = true;
                Pin::new(&mut unconstrained(stop_signal.as_mut()))
                    .poll(cx)
                    .is_ready()
            };
            if stop_now {
                stopping = true;
                Pin::new(&mut conn).graceful_shutdown();
                // hyper acts on it when polled next.
                cx.waker().wake_by_ref();
            }
        }
        if state.take_changed() && !state.busy() {
            // The first request keeps the deadline counted from the accept.
            let first = state.completed() == 0;
            if state.head_started() {
                if !first {
                    sleep.as_mut().reset(Instant::now() + t.request_header);
                }
            } else {
                sleep.as_mut().reset(Instant::now() + t.keepalive);
            }
            armed = true;
            sleep_registered = false;
        }
        if armed && (!sleep_registered || sleep.is_elapsed()) {
            sleep_registered = true;
            // Unconstrained: a poll that only hit the task's coop budget would return
            // Pending without registering, and the timer would never wake us.
            let fired = Pin::new(&mut unconstrained(sleep.as_mut()))
                .poll(cx)
                .is_ready();
            if fired {
                if state.write_blocked() {
                    // A response is still being handed to a client that reads slowly:
                    // not idle yet (send_timeout bounds that).
                    sleep.as_mut().reset(Instant::now() + t.keepalive);
                    sleep_registered = false;
                    cx.waker().wake_by_ref();
                } else if state.busy() {
                    // Nothing to time until the request ends (a change re-arms it).
                    armed = false;
                } else {
                    return Poll::Ready(Outcome::Idle);
                }
            }
        }
        Poll::Pending
    })
    .await;
    match outcome {
        Outcome::Ended(Err(e)) if e.is_incomplete_message() && state.head_started() => {
            // A request head arrived with the client's FIN, before hyper handed it over.
            count(&ctx, Cause::ClientClosed);
            tracing::info!(listener = %ctx.listener.as_str(), cause = Cause::ClientClosed.as_str(), "client closed its connection right after its request, which was not handled (listeners[].half_close: true serves such clients)");
        }
        Outcome::Ended(Err(e)) => note_conn_error(&ctx, &e),
        Outcome::Ended(Ok(())) => {}
        Outcome::Idle if state.head_started() => {
            let io = conn.into_parts().io.into_inner();
            request_header_timeout(io, &ctx).await;
        }
        // An idle keep-alive connection, or one that never sent a byte: just close.
        Outcome::Idle => {}
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
    // client that reads nothing from holding the task. Then a short lingering close:
    // closing with the client's bytes unread would send a reset, which can destroy
    // the 408 before the client reads it.
    let answer = async {
        io.write_all(head.as_bytes()).await?;
        io.write_all(body.as_bytes()).await?;
        io.flush().await?;
        let mut buf = vec![0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match io.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER, answer).await;
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
