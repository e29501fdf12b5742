//! One client connection from accept to close: sluice's own HTTP/1.1 server side
//! ([`crate::client_h1`]), run in the connection's task, with the timers a proxy needs.
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
//! A connection that waits [`PARK_AFTER`] for its next request is parked: its task
//! ends, and a much smaller one ([`Parked`]) holds just the socket until the client
//! sends again, or its listener's park lot (`park.rs`) closes it at its keep-alive
//! timeout or on shutdown.

use crate::cause::Cause;
use crate::client_body::ClientBody;
use crate::client_h1::head::{self, Refusal, ReqHead};
use crate::client_h1::wire::{Shared, Wire, WireBody};
use crate::client_h1::write::Asked;
use crate::client_h2::PREFACE;
use crate::client_io::ClientIo;
use crate::client_respond::{self as respond, Written};
use crate::conn_ctx::ConnContext;
use crate::conn_state::ConnState;
use crate::error::ProxyError;
use crate::park::Ticket;
use crate::proxy::ClientInfo;
use crate::resp_body::RespBody;
use crate::tls_info::Peer;
use http::{Method, Request};
use parking_lot::Mutex;
use sluice_net::ClientStream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::coop::unconstrained;
use tokio::time::Instant;

/// How long a keep-alive connection waits for its next request before it is parked.
/// Far above the gap between back-to-back requests (so a busy client never pays the
/// rebuild), short enough that few connections hold buffers at once while many go
/// idle.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(20);

/// Serves a connection from its accept (or from its park) in a task of its own.
pub fn spawn(stream: ClientStream, peer: Peer, ctx: ConnContext, stop: watch::Receiver<bool>) {
    // Boxed: the connection's future is a few KB (a response being written holds its
    // body and head), and tokio copies a task's future whole when it spawns, runs and
    // finishes it: four copies of it cost about 1.4k instructions per connection, the
    // box one (callgrind, bench/instructions). Not wrapped in another async block: a
    // wrapper would store the arguments twice.
    tokio::spawn(Box::pin(drive(stream, peer, ctx, stop)));
}

/// Serves a connection in the current task (after its TLS handshake).
pub async fn run(stream: ClientStream, peer: Peer, ctx: ConnContext, stop: watch::Receiver<bool>) {
    drive(stream, peer, ctx, stop).await;
}

/// What waiting for the next request head gave.
// Not boxed: the head is the usual outcome, and it moves on at once.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(ReqHead),
    Bad(Refusal),
    /// Part of a head arrived, not all of it, within `request_header_timeout`.
    Timeout,
    /// Idle for [`PARK_AFTER`]: park until this deadline.
    Park(Instant),
    /// The HTTP/2 connection preface (h2c with prior knowledge, where enabled).
    H2c,
    /// Nothing to answer: idle timeout, the client's close, or shutdown.
    Close,
}

/// How one exchange ended for the connection.
enum Served {
    KeepAlive,
    /// Closed once what the client still sends has been read for a moment.
    Close,
    /// Closed at once (with a reset if the connection was aborted).
    Abort,
    Tunnel(Box<crate::tunnel::Pending>),
}

/// Runs one connection to its end.
async fn drive(
    stream: ClientStream,
    peer: Peer,
    ctx: ConnContext,
    mut stop: watch::Receiver<bool>,
) {
    let state = Arc::new(ConnState::default());
    let io = ClientIo::new(stream, state.clone(), ctx.shared.send_timeout);
    let wire: Shared = Arc::new(Mutex::new(Wire::new(io)));
    let client = ClientInfo {
        listener: ctx.shared.listener.clone(),
        addr: peer.addr,
        conn: state.clone(),
        body_idle: ctx.shared.body_idle,
        tls: peer.tls.clone(),
    };
    let mut first = true;
    loop {
        let head = match next_head(&wire, &ctx, &mut stop, first).await {
            Next::Head(h) => h,
            // Boxed, as everything rare here: inline, their futures would enlarge
            // every connection's task (copied whole at spawn).
            Next::Bad(r) => return Box::pin(refuse(&wire, &ctx, r)).await,
            Next::Timeout => return Box::pin(header_timeout(&wire, &ctx)).await,
            Next::Park(deadline) => {
                drop(client);
                return park(wire, peer, ctx, deadline);
            }
            Next::H2c => {
                drop(client);
                return Box::pin(h2c(wire, peer, ctx, stop)).await;
            }
            Next::Close => return,
        };
        first = false;
        match serve(&wire, &ctx, &stop, head, &client).await {
            Served::KeepAlive => {}
            Served::Close if must_linger(&wire) => return Box::pin(linger(&wire)).await,
            // TLS ends with close_notify, so a close-delimited (HTTP/1.0) body cannot
            // be truncated unnoticed; plain TCP just closes (one syscall less).
            Served::Close if peer.tls.is_some() => return Box::pin(close_write(&wire)).await,
            Served::Close => return,
            Served::Abort => return,
            Served::Tunnel(p) => {
                let Some(wire) = Arc::into_inner(wire) else {
                    tracing::warn!("client connection still shared at its upgrade; closed");
                    return;
                };
                let Wire { io, buf, .. } = wire.into_inner();
                let Some(stream) = io.into_stream() else {
                    return;
                };
                // Boxed: a tunnel's state would otherwise enlarge every task.
                return Box::pin(crate::client_tunnel::serve(*p, stream, buf)).await;
            }
        }
    }
}

/// Waits for the next request head and parses it. What a previous read brought (a
/// pipelined request) is parsed first; a head that is already there (the usual case
/// right after an accept) is taken without arming any timer.
async fn next_head(
    wire: &Shared,
    ctx: &ConnContext,
    stop: &mut watch::Receiver<bool>,
    first: bool,
) -> Next {
    let t = &ctx.shared.timeouts;
    let since = Instant::now();
    let mut started = false;
    // Parking is timed by the listener's idle tick (see idle_tick.rs), not a timer of
    // this connection's: the sleep below is armed only for a head that has begun, or
    // when the connection cannot park.
    let park = !first && t.keepalive > PARK_AFTER;
    let idle_limit = if first { t.request_header } else { t.keepalive };
    let sleep = tokio::time::sleep_until(since + idle_limit);
    tokio::pin!(sleep);
    let mut timed = !park;
    let tick = &ctx.shared.idle_tick;
    let mut waiting = None;
    let next_tick = tick.next();
    tokio::pin!(next_tick);
    let stopping = *stop.borrow_and_update();
    let stop_signal = stop.changed();
    tokio::pin!(stop_signal);
    std::future::poll_fn(|cx| {
        {
            let mut w = wire.lock();
            loop {
                if first && ctx.shared.http2.is_some() && !w.buf.is_empty() {
                    let n = w.buf.len().min(PREFACE.len());
                    if w.buf[..n] == PREFACE[..n] {
                        if n == PREFACE.len() {
                            return Poll::Ready(Next::H2c);
                        }
                        // Maybe the preface, not complete yet: read on.
                        match w.poll_fill(cx) {
                            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Next::Close),
                            Poll::Ready(Ok(_)) => continue,
                            Poll::Pending => break,
                        }
                    }
                }
                if !w.buf.is_empty() {
                    match head::parse(&mut w.buf, &ctx.shared.head_limits) {
                        Ok(Some(h)) => return Poll::Ready(Next::Head(h)),
                        Ok(None) => {}
                        Err(r) => return Poll::Ready(Next::Bad(r)),
                    }
                    if !started {
                        started = true;
                        timed = true;
                        waiting = None;
                        // The first request keeps the deadline counted from the accept.
                        if !first {
                            sleep.as_mut().reset(Instant::now() + t.request_header);
                        }
                    }
                }
                if w.eof {
                    if started {
                        tracing::debug!(listener = %ctx.shared.listener.as_str(), "client closed its connection in the middle of a request head");
                    }
                    return Poll::Ready(Next::Close);
                }
                match w.poll_fill(cx) {
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(Next::Close),
                    Poll::Pending => break,
                }
            }
        }
        if !started && (stopping || stop_signal.as_mut().poll(cx).is_ready()) {
            return Poll::Ready(Next::Close);
        }
        if !timed {
            if waiting.is_none() {
                waiting = Some(tick.join());
            }
            while Pin::new(&mut unconstrained(next_tick.as_mut()))
                .poll(cx)
                .is_ready()
            {
                if since.elapsed() >= PARK_AFTER {
                    return Poll::Ready(Next::Park(since + t.keepalive));
                }
                next_tick.set(tick.next());
            }
            return Poll::Pending;
        }
        // Unconstrained: a poll that only hit the task's coop budget would return
        // Pending without registering, and the timer would never wake us.
        if Pin::new(&mut unconstrained(sleep.as_mut()))
            .poll(cx)
            .is_ready()
        {
            return Poll::Ready(if started {
                Next::Timeout
            } else {
                Next::Close
            });
        }
        Poll::Pending
    })
    .await
}

/// Answers one request: the proxy's answer is written while the client is watched
/// (its close cancels the request, unless `half_close`).
async fn serve(
    wire: &Shared,
    ctx: &ConnContext,
    stop: &watch::Receiver<bool>,
    head: ReqHead,
    client: &ClientInfo,
) -> Served {
    let ReqHead {
        parts,
        body,
        keep_alive,
        expect_continue,
    } = head;
    let asked = Asked {
        head: parts.method == Method::HEAD,
        connect: parts.method == Method::CONNECT,
        version: parts.version,
        keep_alive,
    };
    let req_body = if body.is_end() {
        ClientBody::Empty
    } else {
        wire.lock().begin_body(body, expect_continue);
        ClientBody::H1(WireBody::new(wire))
    };
    let req = Request::from_parts(parts, req_body);
    let half_close = ctx.shared.half_close;
    // Boxed: the request's future is kilobytes, and inline it would make every
    // connection's task that big, copied whole at each spawn (about 7k instructions
    // per connection, measured with callgrind).
    let mut handling = Box::pin(ctx.shared.proxy.handle(req, client));
    let resp = std::future::poll_fn(|cx| {
        if let Poll::Ready(resp) = handling.as_mut().poll(cx) {
            return Poll::Ready(Some(resp));
        }
        if wire.lock().poll_client_gone(cx, half_close) {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    let Some(resp) = resp else {
        // The client left: dropping the request abandons it (logged as 499).
        return Served::Abort;
    };
    let stopping = *stop.borrow();
    match respond::write(wire, resp, asked, stopping, half_close).await {
        Written::Failed => Served::Abort,
        Written::Done { keep_alive } => {
            if let Some(p) = client.conn.take_tunnel() {
                return Served::Tunnel(p);
            }
            let w = wire.lock();
            if !keep_alive || w.eof || !w.body.is_end() {
                // An unread body (the answer did not need it) would be taken for the
                // next request: the connection ends here.
                Served::Close
            } else {
                Served::KeepAlive
            }
        }
    }
}

/// A head sluice cannot take: 400/414/431/501 with the reason, then the close.
async fn refuse(wire: &Shared, ctx: &ConnContext, r: Refusal) {
    ctx.count(r.cause);
    tracing::info!(listener = %ctx.shared.listener.as_str(), cause = r.cause.as_str(), detail = %r.detail, "malformed request");
    answer_and_close(wire, ProxyError::new(r.cause, r.detail)).await;
}

/// Answers a head that did not complete in time with 408 and closes.
async fn header_timeout(wire: &Shared, ctx: &ConnContext) {
    ctx.count(Cause::RequestHeaderTimeout);
    let e = ProxyError::new(
        Cause::RequestHeaderTimeout,
        format!(
            "no complete request head within {:?}",
            ctx.shared.timeouts.request_header
        ),
    );
    tracing::info!(listener = %ctx.shared.listener.as_str(), cause = e.cause.as_str(), detail = %e.detail, "request head timed out; answered 408");
    answer_and_close(wire, e).await;
}

/// sluice's own answer to a request it did not take, then a lingering close.
async fn answer_and_close(wire: &Shared, e: ProxyError) {
    let asked = Asked {
        head: false,
        connect: false,
        version: http::Version::HTTP_11,
        keep_alive: false,
    };
    let resp = RespBody::error_response(&e);
    // The socket is idle, so the answer fits its send buffer at once; the bound only
    // stops a client that reads nothing from holding the task.
    if tokio::time::timeout(LINGER, respond::write(wire, resp, asked, true, true))
        .await
        .is_ok()
    {
        linger(wire).await;
    }
}

/// How long, and how many bytes, a closing connection is read from before it closes.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// Whether a close must linger: not when everything the client sent was read (its FIN
/// too), or nothing is left unread; a close cannot turn into a reset then.
fn must_linger(wire: &Shared) -> bool {
    let w = wire.lock();
    !(w.eof || (w.buf.is_empty() && w.body.is_end()))
}

/// A lingering close: what the client still sends is read and dropped for a moment
/// after our FIN. Closing with its bytes unread would send a reset, which can destroy
/// the answer before the client reads it. Nothing unread and nothing more coming
/// (the usual case): the socket just closes.
async fn linger(wire: &Shared) {
    if !must_linger(wire) {
        return;
    }
    wire.lock().buf.clear();
    let mut closed_write = false;
    let mut total = 0;
    let drained = std::future::poll_fn(|cx| {
        let mut w = wire.lock();
        if !closed_write {
            match w.io.poll_close_write(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => closed_write = true,
            }
        }
        while !w.eof && total < LINGER_BYTES {
            match w.poll_fill(cx) {
                Poll::Ready(Ok(n)) => {
                    total += n;
                    w.buf.clear();
                }
                Poll::Ready(Err(_)) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    });
    let _ = tokio::time::timeout(LINGER, drained).await;
}

/// Hands a plain connection that opened with the HTTP/2 preface to the HTTP/2 server,
/// with the bytes already read.
async fn h2c(wire: Shared, peer: Peer, ctx: ConnContext, stop: watch::Receiver<bool>) {
    let Some(wire) = Arc::into_inner(wire) else {
        return;
    };
    let Wire { io, buf, .. } = wire.into_inner();
    let Some(stream) = io.into_stream() else {
        return;
    };
    let io = crate::client_h2::Prefixed::new(buf.freeze(), stream);
    crate::client_h2::serve(io, peer, ctx, stop).await;
}

/// Sends our end (for TLS: close_notify, then the FIN), bounded by [`LINGER`].
async fn close_write(wire: &Shared) {
    let closing = std::future::poll_fn(|cx| wire.lock().io.poll_close_write(cx));
    let _ = tokio::time::timeout(LINGER, closing).await;
}

/// Leaves this task for a [`Parked`] one holding the bare socket until `deadline`.
fn park(wire: Shared, peer: Peer, ctx: ConnContext, deadline: Instant) {
    ctx.shared.parks.inc();
    let Some(wire) = Arc::into_inner(wire) else {
        tracing::debug!("client connection still shared while idle; closed");
        return;
    };
    let Some(stream) = wire.into_inner().io.into_stream() else {
        return;
    };
    // Refused on shutdown: the socket closes here.
    if let Some(ticket) = ctx.shared.lot.park(deadline) {
        ctx.shared.parked.inc();
        tokio::spawn(Parked {
            conn: Some(ParkedConn {
                stream,
                peer,
                ctx,
                ticket,
            }),
        });
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
    peer: Peer,
    ctx: ConnContext,
    ticket: Ticket,
}

impl ParkedConn {
    fn unpark(self) -> (ClientStream, Peer, ConnContext) {
        let shared = &self.ctx.shared;
        shared.lot.leave(self.ticket);
        shared.parked.dec();
        (self.stream, self.peer, self.ctx)
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
            let (stream, peer, ctx) = c.unpark();
            // Readable wins over a timeout that expired at the same moment, not over
            // shutdown: an idle connection closes at once then.
            if readable && !ctx.shared.lot.stopping() {
                let stop = ctx.shared.lot.stop_signal();
                spawn(stream, peer, ctx, stop);
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
