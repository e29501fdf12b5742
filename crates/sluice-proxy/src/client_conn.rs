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
//!
//! A connection that waits [`PARK_AFTER`] for its next request is parked (see [`drive`]):
//! its task ends, and a much smaller one ([`Parked`]) holds just the socket until the
//! client sends again, or its listener's park lot (`park.rs`) closes it at its
//! keep-alive timeout or on shutdown.

use crate::cause::Cause;
use crate::client_io::ClientIo;
use crate::conn_ctx::{ConnContext, ListenerConns};
use crate::conn_state::ConnState;
use crate::error::{error_chain, ProxyError};
use crate::park::Ticket;
use crate::proxy::ClientInfo;
use crate::resp_body::RespBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, HttpService, Service};
use hyper_util::rt::TokioIo;
use sluice_net::{ClientAddr, ClientStream};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::coop::unconstrained;
use tokio::time::Instant;

/// How long, and how many bytes, a connection answered 408 is read from before it
/// closes.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// How a connection's driver stopped.
enum Outcome {
    Ended(Result<(), hyper::Error>),
    /// The header or keep-alive timer expired while no request was in flight.
    Idle,
    /// hyper's connection closed at our request between two requests: its socket and
    /// service come back to wait for the next request without hyper's buffers.
    Parked,
}

/// How long a keep-alive connection waits for its next request before it is parked.
/// Far above the gap between back-to-back requests (so a busy client never pays the
/// rebuild, about 2k instructions), short enough that few connections hold buffers at
/// once while many go idle.
const PARK_AFTER: Duration = Duration::from_millis(20);

/// hyper's side of one client connection, rebuilt after each park.
/// With upgrades: after a `101` it resolves, handing the socket to the request that
/// asked for the switch (see [`crate::tunnel`]).
type Http1<S> = http1::UpgradeableConnection<TokioIo<ClientIo>, S>;

/// Serves a connection from its accept (or from its park) in a task of its own.
pub fn spawn(
    stream: ClientStream,
    addr: ClientAddr,
    ctx: ConnContext,
    stop: watch::Receiver<bool>,
) {
    // Spawned as is, not wrapped in another async block: a wrapper would store the
    // arguments twice in every connection's task.
    tokio::spawn(drive(stream, addr, ctx, stop));
}

/// The requests of one connection, answered by the proxy.
fn service(
    shared: &ListenerConns,
    addr: ClientAddr,
    state: &Arc<ConnState>,
) -> impl Service<Request<Incoming>, Response = Response<RespBody>, Error = Infallible, Future: Send>
       + Send
       + Unpin {
    let client = ClientInfo {
        listener: shared.listener.clone(),
        addr,
        conn: state.clone(),
        body_idle: shared.body_idle,
    };
    let proxy = shared.proxy.clone();
    service_fn(move |req| {
        let proxy = proxy.clone();
        let client = client.clone();
        async move { Ok::<_, Infallible>(proxy.handle(req, &client).await) }
    })
}

/// Runs one connection to its end.
///
/// Between two requests, once hyper waits for the next one, the connection is
/// *parked*: hyper's connection (with its 8 KiB read and write buffers) is dropped and
/// only the socket waits for readability; a new hyper connection takes over when the
/// client sends again. This is what lets an idle keep-alive client cost about as
/// little as in HAProxy or NGINX, which also release their buffers while idle. It
/// happens [`PARK_AFTER`] into the wait between two requests, so back-to-back
/// requests never pay for it; a connection is not parked before its first request.
/// A parked connection with nothing read ahead leaves this task for a [`Parked`] one.
async fn drive(
    stream: ClientStream,
    addr: ClientAddr,
    ctx: ConnContext,
    mut stop: watch::Receiver<bool>,
) {
    let state = Arc::new(ConnState::default());
    let mut io = ClientIo::new(stream, state.clone(), ctx.shared.send_timeout);
    let mut service = service(&ctx.shared, addr, &state);
    let t = &ctx.shared.timeouts;
    let builder = &ctx.shared.builder;
    let mut stopping = *stop.borrow_and_update();
    // The stop signal and the timer are polled only to register for a wake-up, and
    // again when they may have fired (checked cheaply): re-polling them on every
    // wake-up of the connection would take a lock and a timer-wheel visit each time.
    let seen = stop.clone();
    let stop_signal = stop.changed();
    tokio::pin!(stop_signal);
    let mut stop_registered = false;
    // Armed from the accept: the first request head is due within request_header.
    // Not parked before its first request: a timer due sooner than every other one
    // makes tokio wake its driver (an eventfd write and an extra epoll round) on
    // every accept, which a close-per-request client would pay each time.
    let mut idle_since = Instant::now();
    let mut park_due = false;
    let sleep = tokio::time::sleep_until(idle_since + t.request_header);
    tokio::pin!(sleep);
    let (mut armed, mut sleep_registered) = (true, false);
    // Boxed, so that a parked connection's task holds a pointer, not hyper's state.
    let mut conn = Box::new(
        builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades(),
    );
    let mut parking = false;
    loop {
        if stopping {
            Pin::new(&mut *conn).graceful_shutdown();
        }
        let outcome = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut *conn).poll(cx) {
                return Poll::Ready(match r {
                    Ok(()) if parking => Outcome::Parked,
                    r => Outcome::Ended(r),
                });
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
                    Pin::new(&mut *conn).graceful_shutdown();
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
                    } else if park_due {
                        // The timer was set to park: back to the accept's deadline.
                        sleep.as_mut().reset(idle_since + t.request_header);
                    }
                    park_due = false;
                } else {
                    // Idle: park soon, close at keepalive_timeout.
                    idle_since = Instant::now();
                    park_due = t.keepalive > PARK_AFTER;
                    let wait = if park_due { PARK_AFTER } else { t.keepalive };
                    sleep.as_mut().reset(idle_since + wait);
                }
                armed = true;
                sleep_registered = false;
            }
            if armed && (!sleep_registered || sleep.is_elapsed()) {
                sleep_registered = true;
                // Unconstrained: a poll that only hit the task's coop budget would
                // return Pending without registering, and the timer would never wake us.
                let fired = Pin::new(&mut unconstrained(sleep.as_mut()))
                    .poll(cx)
                    .is_ready();
                if fired {
                    if state.write_blocked() {
                        // A response is still being handed to a client that reads
                        // slowly: not idle yet (send_timeout bounds that).
                        sleep.as_mut().reset(Instant::now() + t.keepalive);
                        sleep_registered = false;
                        park_due = false;
                        cx.waker().wake_by_ref();
                    } else if state.busy() {
                        // Nothing to time until the request ends (a change re-arms it).
                        armed = false;
                    } else if park_due {
                        park_due = false;
                        if !stopping && state.parkable() {
                            // hyper is idle (keep-alive, nothing buffered to write), so
                            // this closes its connection object at once without
                            // touching the socket (a client socket's shutdown is a
                            // no-op; see sluice_net::ClientStream).
                            parking = true;
                            Pin::new(&mut *conn).graceful_shutdown();
                        }
                        let limit = if state.completed() == 0 {
                            t.request_header
                        } else {
                            t.keepalive
                        };
                        sleep.as_mut().reset(idle_since + limit);
                        sleep_registered = false;
                        cx.waker().wake_by_ref();
                    } else {
                        return Poll::Ready(Outcome::Idle);
                    }
                }
            }
            Poll::Pending
        })
        .await;
        match outcome {
            Outcome::Parked => {}
            Outcome::Ended(Err(e)) if e.is_incomplete_message() && state.head_started() => {
                // A request head arrived with the client's FIN, before hyper handed it over.
                ctx.count(Cause::ClientClosed);
                tracing::info!(listener = %ctx.shared.listener.as_str(), cause = Cause::ClientClosed.as_str(), "client closed its connection right after its request, which was not handled (listeners[].half_close: true serves such clients)");
                return;
            }
            Outcome::Ended(Err(e)) => return note_conn_error(&ctx, &e),
            Outcome::Ended(Ok(())) => {
                // After an upgrade hyper's connection is an empty shell, but its box
                // has the size of a whole one: not kept for the tunnel's life.
                drop(conn);
                if let Some(tunnel) = state.take_tunnel() {
                    // Boxed: a tunnel's state would otherwise enlarge every task.
                    Box::pin(crate::client_tunnel::serve(*tunnel)).await;
                }
                return;
            }
            Outcome::Idle if state.head_started() => {
                let Some(parts) = parts_of(conn) else { return };
                let io = parts.io.into_inner();
                // Boxed: rare, and its state would otherwise enlarge every
                // connection's task.
                return Box::pin(request_header_timeout(io, &ctx)).await;
            }
            // An idle keep-alive connection, or one that never sent a byte: just close.
            Outcome::Idle => return,
        }
        parking = false;
        // The socket and the service go back into their own slots: new bindings would
        // store them a second time in every connection's task.
        let read_buf = {
            let Some(parts) = parts_of(conn) else { return };
            io = parts.io.into_inner();
            service = parts.service;
            parts.read_buf
        };
        ctx.shared.parks.inc();
        if stopping {
            return;
        }
        if !read_buf.is_empty() {
            // hyper had read ahead (a pipelined request): serve it without waiting.
            io.push_back(read_buf);
        } else {
            // Even empty, it holds hyper's whole read buffer.
            drop(read_buf);
            // Everything else of this connection (its state, service, timers, and this
            // task) is freed; its next request builds them again.
            drop(service);
            let Some(stream) = io.into_stream() else {
                return;
            };
            // Refused on shutdown: the socket closes here.
            if let Some(ticket) = ctx.shared.lot.park(sleep.deadline()) {
                ctx.shared.parked.inc();
                tokio::spawn(Parked {
                    conn: Some(ParkedConn {
                        stream,
                        addr,
                        ctx,
                        ticket,
                    }),
                });
            }
            return;
        }
        sleep_registered = false;
        conn = Box::new(
            builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades(),
        );
    }
}

/// A parked connection's whole task: its socket, its address and its context (about
/// 110 bytes), until the client sends again (then it is served by a new [`drive`]) or
/// its lot closes it.
struct Parked {
    conn: Option<ParkedConn>,
}

struct ParkedConn {
    stream: ClientStream,
    addr: ClientAddr,
    ctx: ConnContext,
    ticket: Ticket,
}

impl ParkedConn {
    fn unpark(self) -> (ClientStream, ClientAddr, ConnContext) {
        let shared = &self.ctx.shared;
        shared.lot.leave(self.ticket);
        shared.parked.dec();
        (self.stream, self.addr, self.ctx)
    }
}

impl Future for Parked {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(c) = &this.conn else {
            return Poll::Ready(());
        };
        let readable = c.stream.poll_read_ready(cx).is_ready();
        if !readable && !c.ctx.shared.lot.poll_closed(&c.ticket, cx) {
            return Poll::Pending;
        }
        if let Some(c) = this.conn.take() {
            let (stream, addr, ctx) = c.unpark();
            // Readable wins over a timeout that expired at the same moment, not over
            // shutdown: an idle connection closes at once then.
            if readable && !ctx.shared.lot.stopping() {
                let stop = ctx.shared.lot.stop_signal();
                spawn(stream, addr, ctx, stop);
            }
        }
        Poll::Ready(())
    }
}

impl Drop for Parked {
    /// The runtime drops tasks it never finished (at exit): the lot's slot goes too.
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(c.unpark());
        }
    }
}

/// Takes hyper's connection apart, freeing its box (moving out of a `Box` in place
/// would keep the allocation until the variable is reassigned). `None` after an
/// upgrade, which took the socket.
#[allow(clippy::boxed_local)] // the point is to take the box, so it is freed here
fn parts_of<S>(conn: Box<Http1<S>>) -> Option<http1::Parts<TokioIo<ClientIo>, S>>
where
    S: HttpService<Incoming, ResBody = crate::resp_body::RespBody>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    conn.into_parts()
}

/// Answers a head that did not complete in time with 408 and closes.
async fn request_header_timeout(mut io: ClientIo, ctx: &ConnContext) {
    ctx.count(Cause::RequestHeaderTimeout);
    let e = ProxyError::new(
        Cause::RequestHeaderTimeout,
        format!(
            "no complete request head within {:?}",
            ctx.shared.timeouts.request_header
        ),
    );
    tracing::info!(listener = %ctx.shared.listener.as_str(), cause = e.cause.as_str(), detail = %e.detail, "request head timed out; answered 408");
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

/// A malformed request is answered 400 by hyper before our service runs, so its reason
/// only reaches the log and the client-error counter, here. A client that left
/// mid-request was already counted by its request.
fn note_conn_error(ctx: &ConnContext, e: &hyper::Error) {
    if e.is_parse() || e.is_parse_too_large() {
        ctx.count(Cause::BadRequest);
        tracing::info!(listener = %ctx.shared.listener.as_str(), cause = Cause::BadRequest.as_str(), detail = %error_chain(e), "malformed request");
    } else {
        tracing::debug!(listener = %ctx.shared.listener.as_str(), error = %error_chain(e), "client connection ended with an error");
    }
}
