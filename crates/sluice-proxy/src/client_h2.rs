//! HTTP/2 from clients: hyper's server connection, with the listener's flow-control,
//! concurrency and abuse limits (`listeners[].http2_settings`), each stream handed to
//! the proxy like an HTTP/1.1 request.
//!
//! The denial-of-service patterns are answered by hyper's h2 and these settings:
//! rapid reset (streams opened and cancelled at once) by `max_pending_reset_streams`,
//! MadeYouReset by `max_local_error_reset_streams`, CONTINUATION floods by
//! `max_header_list_size` (h2 counts the head across CONTINUATION frames), SETTINGS
//! and PING floods by h2 queueing one acknowledgement at a time (it stops reading
//! while an ACK is unsent, so a client that does not read stalls only itself). The
//! tests in `crates/sluice/tests/e2e/http2_clients.rs` flood each of them.

use crate::cause::Cause;
use crate::client_body::ClientBody;
use crate::clock::{instant, now_ms};
use crate::conn_ctx::ConnContext;
use crate::conn_state::ConnState;
use crate::error::ProxyError;
use crate::metrics::ListenerLabel;
use crate::proxy::ClientInfo;
use crate::resp_body::RespBody;
use crate::tls_info::Peer;
use bytes::{Buf, Bytes};
use http::header::HOST;
use http::{HeaderValue, Method, Request, Uri};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_config::Http2Settings;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// The connection preface an h2c client with prior knowledge starts with.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one HTTP/2 connection until the client closes it or, after shutdown began,
/// its last stream ends (GOAWAY first, so the client opens no more).
pub async fn serve<I>(io: I, peer: Peer, ctx: ConnContext, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(settings) = ctx.shared.http2.clone() else {
        return;
    };
    let shared = ctx.shared.clone();
    let labels = ListenerLabel {
        listener: shared.listener.clone(),
    };
    let tls_metrics = &shared.proxy.metrics().tls;
    let open = tls_metrics.h2_connections.get_or_create(&labels).clone();
    let streams = tls_metrics.h2_streams.get_or_create(&labels).clone();
    open.inc();
    let client = Arc::new(ClientInfo {
        listener: shared.listener.clone(),
        addr: peer.addr,
        // Shared by the streams: HTTP/2 has no connection-wide abort or tunnel, so
        // nothing a stream sets here affects the others.
        conn: Arc::new(ConnState::default()),
        body_idle: shared.body_idle,
        tls: peer.tls,
    });
    // A connection with no stream for the listener's `keepalive_timeout` is closed.
    let activity = Arc::new(Activity {
        active: AtomicUsize::new(0),
        last: AtomicU64::new(now_ms()),
        streams: parking_lot::Mutex::new(Vec::new()),
    });
    let seen = activity.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        streams.inc();
        let guard = Active::new(&seen);
        let (shared, client) = (shared.clone(), client.clone());
        // Boxed: hyper spawns a task per stream holding this future, and tokio copies
        // a task's future whole at spawn; inline, the request's state is kilobytes.
        Box::pin(async move {
            let resp = match to_proxy_form(req, shared.head_limits.headers) {
                Ok(req) => shared.proxy.handle(req, &client).await,
                Err(e) => {
                    shared
                        .proxy
                        .metrics()
                        .client_errors
                        .get_or_create(&crate::metrics::ClientErrorLabels {
                            listener: shared.listener.clone(),
                            cause: e.cause.as_str(),
                        })
                        .inc();
                    RespBody::error_response(&e)
                }
            };
            Ok::<_, Infallible>(resp.map(|inner| Tracked {
                inner,
                active: guard,
            }))
        })
    });
    let conn = builder(&settings).serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let keepalive = ctx.shared.timeouts.keepalive;
    let send_timeout = ctx.shared.send_timeout;
    // How often running streams are checked for a client that stopped reading.
    let check_every = (send_timeout / 4).max(std::time::Duration::from_millis(100));
    let mut closing = *stop.borrow_and_update();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    let ended = loop {
        let idle_until = activity.idle_until(keepalive);
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(idle_until), if !closing => {
                if activity.idle_until(keepalive) <= tokio::time::Instant::now() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            // Not conditional on running streams: select! evaluates conditions only
            // when it starts, before the first stream came.
            _ = tokio::time::sleep(check_every) => {
                if activity.stalled(send_timeout) {
                    // Dropping the connection resets its streams: their upstream
                    // exchanges are abandoned and their slots freed.
                    tracing::info!(listener = %ctx.shared.listener.as_str(), send_timeout = ?send_timeout, "HTTP/2 client read nothing of a response for send_timeout; connection closed");
                    ctx.count(Cause::SendTimeout);
                    break Ok(());
                }
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(listener = %ctx.shared.listener.as_str(), error = %e, "HTTP/2 client connection ended with an error");
    }
    open.dec();
    drop(ctx);
}

/// The streams of one connection: how many run, when the last one ended, and when
/// each running one last handed hyper data the client has not taken yet.
struct Activity {
    active: AtomicUsize,
    last: AtomicU64,
    streams: parking_lot::Mutex<Vec<Arc<AtomicU64>>>,
}

impl Activity {
    /// When the connection will have been idle for `keepalive` (from now, while a
    /// stream runs).
    fn idle_until(&self, keepalive: std::time::Duration) -> tokio::time::Instant {
        if self.active.load(Relaxed) > 0 {
            return tokio::time::Instant::now() + keepalive;
        }
        instant(self.last.load(Relaxed)) + keepalive
    }

    /// A stream's response waits on the client (flow control: it reads nothing, so
    /// hyper polls the body no more) for longer than `limit`, like `send_timeout` on
    /// HTTP/1.1. A stream waiting on its origin is not the client's fault.
    fn stalled(&self, limit: std::time::Duration) -> bool {
        let now = now_ms();
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.streams.lock().iter().any(|h| {
            let handed = h.load(Relaxed);
            handed != 0 && now.saturating_sub(handed) > limit
        })
    }
}

/// One running stream, from its request to the end of its response body; `handed`:
/// when its body last gave hyper a frame (0: it waits on the origin, or has ended).
struct Active {
    conn: Arc<Activity>,
    handed: Arc<AtomicU64>,
}

impl Active {
    fn new(a: &Arc<Activity>) -> Self {
        a.active.fetch_add(1, Relaxed);
        let handed = Arc::new(AtomicU64::new(0));
        a.streams.lock().push(handed.clone());
        Self {
            conn: a.clone(),
            handed,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.conn
            .streams
            .lock()
            .retain(|h| !Arc::ptr_eq(h, &self.handed));
        self.conn.last.store(now_ms(), Relaxed);
        self.conn.active.fetch_sub(1, Relaxed);
    }
}

/// A response body that keeps its stream counted as running until hyper drops it.
struct Tracked {
    inner: RespBody,
    active: Active,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = crate::resp_body::ResponseCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let handed = match &polled {
            Poll::Ready(Some(Ok(_))) => now_ms().max(1),
            _ => 0,
        };
        this.active.handed.store(handed, Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn builder(s: &Http2Settings) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(s.max_concurrent_streams)
        .initial_stream_window_size(s.initial_stream_window)
        .initial_connection_window_size(s.initial_connection_window)
        .max_frame_size(s.max_frame_size)
        .max_header_list_size(s.max_header_list_size)
        .max_pending_accept_reset_streams(s.max_pending_reset_streams)
        .max_local_error_reset_streams(s.max_local_error_reset_streams);
    let interval = s.keepalive_interval.get();
    if !interval.is_zero() {
        b.keep_alive_interval(interval)
            .keep_alive_timeout(s.keepalive_timeout.get());
    }
    b
}

/// An HTTP/2 request as the proxy takes requests: the target in `Host` and an
/// origin-form URI, as an HTTP/1.1 client sends them (the upstream side rebuilds
/// `:authority` when it speaks HTTP/2).
fn to_proxy_form(
    req: Request<Incoming>,
    max_headers: usize,
) -> Result<Request<ClientBody>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    // Pseudo-headers are not in the map; HTTP/1.1 does not count them either.
    if parts.headers.len() > max_headers {
        return Err(ProxyError::new(
            Cause::RequestHeaderTooLarge,
            format!("more than {max_headers} request headers (listeners[].max_request_headers)"),
        ));
    }
    if parts.method == Method::CONNECT {
        return Err(ProxyError::new(
            Cause::NotImplemented,
            "CONNECT over HTTP/2 is not supported; use HTTP/1.1 for tunnels",
        ));
    }
    if let Some(auth) = parts.uri.authority() {
        match parts.headers.get(HOST) {
            // RFC 9113 §8.3.1: a Host naming another entity than :authority is malformed.
            Some(h) if !h.as_bytes().eq_ignore_ascii_case(auth.as_str().as_bytes()) => {
                return Err(ProxyError::new(
                    Cause::BadRequest,
                    "the Host header names another host than :authority",
                ));
            }
            Some(_) => {}
            None => {
                let v = HeaderValue::from_str(auth.as_str()).map_err(|_| {
                    ProxyError::new(Cause::BadRequest, "the :authority is not a valid host")
                })?;
                parts.headers.insert(HOST, v);
            }
        }
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::try_from(pq)
            .map_err(|_| ProxyError::new(Cause::BadRequest, "the :path is not a valid target"))?;
    }
    let body = if http_body::Body::is_end_stream(&body) {
        ClientBody::Empty
    } else {
        ClientBody::H2(Box::new(body))
    };
    Ok(Request::from_parts(parts, body))
}

/// An h2c connection whose first bytes the HTTP/1.1 reader already took: they are
/// read again before the socket.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
