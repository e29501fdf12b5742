//! What the origin answers; see the table in the parent module.

use super::Shared;
use crate::body::{Drip, Generated, PatternCheck};
use crate::wait;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::sync::Notify;

/// Per-connection facts the handler reports.
pub(super) struct Conn {
    id: u64,
    requests: AtomicU64,
    /// Notified (once) when the connection should shut down gracefully.
    goaway: Notify,
}

impl Conn {
    pub(super) fn new(id: u64) -> Self {
        Self {
            id,
            requests: AtomicU64::new(0),
            goaway: Notify::new(),
        }
    }

    pub(super) fn goaway(&self) -> &Notify {
        &self.goaway
    }
}

type Boxed = BoxBody<Bytes, io::Error>;

/// Carries an HTTP/2 reset reason out of the handler. hyper looks for an
/// `h2::Error` among the *sources* of the service error, and `io::Error` reports
/// its payload's source rather than the payload, hence this wrapper.
#[derive(Debug)]
struct Refused(h2::Error);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by the test origin: {}", self.0)
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

pub(super) async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
) -> io::Result<Response<Tracked>> {
    let nth = conn.requests.fetch_add(1, SeqCst) + 1;
    if shared.behaviour.goaway_after == Some(nth) {
        // A stored permit: the connection task sees it even if not waiting yet.
        conn.goaway.notify_one();
    }
    if nth <= shared.behaviour.refuse_first {
        shared.bump(&shared.requests);
        return Err(io::Error::other(Refused(h2::Reason::REFUSED_STREAM.into())));
    }
    let echo = echo_headers(&req, &conn, nth);
    let healthy = shared.healthy.load(SeqCst);

    if req.uri().path() == "/health" {
        shared.bump(&shared.health_checks);
        let mut response = if healthy {
            Response::new(boxed(Full::new(Bytes::from_static(b"ok"))))
        } else {
            unhealthy("unhealthy")
        };
        response.headers_mut().extend(echo);
        return Ok(response.map(|body| Tracked { body, _guard: None }));
    }

    let guard = InFlight::enter(shared.clone());
    if !healthy {
        let mut response = unhealthy("origin unhealthy");
        response.headers_mut().extend(echo);
        return Ok(response.map(|body| Tracked {
            body,
            _guard: Some(guard),
        }));
    }
    if let Some(delay) = shared.behaviour.delay {
        tokio::time::sleep(delay).await;
    }

    let path = req.uri().path().to_owned();
    let (segment, arg) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((segment, arg)) => (segment, arg.parse::<u64>().ok()),
        None => (path.trim_start_matches('/'), None),
    };
    let mut response = match (segment, arg) {
        ("bytes", Some(n)) => octets(boxed(Generated::sized(n))),
        ("chunked", Some(n)) => octets(boxed(Generated::chunked(n))),
        ("truncate", Some(n)) => {
            let mut response = octets(BoxBody::new(Truncated::new(n)));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n * 2));
            response
        }
        ("drip", Some(chunks)) => octets(boxed(Drip::from_query(chunks, req.uri().query()))),
        ("status", Some(code)) => status(code),
        ("sink", None) => sink(req.into_body()).await,
        ("drop", None) => return Err(io::Error::other("/drop: closing without a response")),
        ("delay", Some(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            hello(req.into_body()).await
        }
        ("gate", Some(n)) => {
            // The high-water mark, not the current count: it latches, so every held
            // request is let go by the n-th arrival even as the first ones finish.
            let max = || shared.max_in_flight.load(SeqCst) >= n;
            wait::until(&shared.changed, wait::DEFAULT_WAIT, max).await;
            hello(req.into_body()).await
        }
        _ => hello(req.into_body()).await,
    };
    response.headers_mut().extend(echo);
    Ok(response.map(|body| Tracked {
        body,
        _guard: Some(guard),
    }))
}

/// 503 with `x-origin-unhealthy: true`.
fn unhealthy(text: &'static str) -> Response<Boxed> {
    let mut response = Response::new(boxed(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert("x-origin-unhealthy", HeaderValue::from_static("true"));
    response
}

/// The default answer: read and count the request body, then say hello.
async fn hello(body: Incoming) -> Response<Boxed> {
    let (count, _) = drain(body).await;
    let mut response = Response::new(boxed(Full::new(Bytes::from_static(b"hello from origin"))));
    response
        .headers_mut()
        .insert("x-origin-body-bytes", HeaderValue::from(count));
    response
}

/// `/sink`: the request body's length as text, and whether it matched the pattern.
async fn sink(body: Incoming) -> Response<Boxed> {
    let (count, intact) = drain(body).await;
    let mut response = Response::new(boxed(Full::new(Bytes::from(count.to_string()))));
    response.headers_mut().insert(
        "x-origin-body-intact",
        HeaderValue::from_static(if intact { "true" } else { "false" }),
    );
    response
}

/// `/status/<code>`.
fn status(code: u64) -> Response<Boxed> {
    let Some(status) = u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| !s.is_informational())
    else {
        let mut response = Response::new(boxed(Full::new(Bytes::from("bad status code\n"))));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let body = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        boxed(Empty::new())
    } else {
        boxed(Full::new(Bytes::from(format!("status {code}\n"))))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn octets(body: Boxed) -> Response<Boxed> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// Reads a request body to its end without keeping it; a broken body just ends the count.
async fn drain(mut body: Incoming) -> (u64, bool) {
    let mut check = PatternCheck::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            check.update(data);
        }
    }
    (check.len(), check.intact())
}

fn echo_headers(req: &Request<Incoming>, conn: &Conn, nth: u64) -> HeaderMap {
    let mut echo = HeaderMap::new();
    let mut put = |name: &'static str, value: HeaderValue| {
        echo.insert(HeaderName::from_static(name), value);
    };
    let text = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("?"));

    put("x-origin-method", text(req.method().as_str()));
    put("x-origin-uri", text(&req.uri().to_string()));
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    put("x-origin-path", text(path));
    let headers = req.headers();
    for (echo_name, name) in [
        ("x-origin-host", "host"),
        ("x-origin-xff", "x-forwarded-for"),
        ("x-origin-xfp", "x-forwarded-proto"),
    ] {
        if let Some(value) = headers.get(name) {
            put(echo_name, value.clone());
        }
    }
    if req.version() == Version::HTTP_2 && !headers.contains_key(header::HOST) {
        if let Some(authority) = req.uri().authority() {
            put("x-origin-host", text(authority.as_str()));
        }
    }
    put("x-origin-version", text(&format!("{:?}", req.version())));
    let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    put("x-origin-headers", text(&names.join(",")));
    put("x-origin-conn-id", HeaderValue::from(conn.id));
    put("x-origin-conn-request", HeaderValue::from(nth));
    echo
}

fn boxed<B>(body: B) -> Boxed
where
    B: Body<Data = Bytes, Error = Infallible> + Send + Sync + 'static,
{
    BoxBody::new(body.map_err(|never| match never {}))
}

/// Counts a request as in flight from its head's arrival until its response body is done.
pub(super) struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: Arc<Shared>) -> Self {
        shared.requests.fetch_add(1, SeqCst);
        let now = shared.in_flight.fetch_add(1, SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, SeqCst);
        shared.changed.notify_waiters();
        Self(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// A response body that holds the request's [`InFlight`] guard (none for `/health`)
/// until hyper drops it.
pub(crate) struct Tracked {
    body: Boxed,
    _guard: Option<InFlight>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The generated bytes, then an error, which makes hyper cut the connection.
struct Truncated {
    bytes: Generated,
    flushed: bool,
}

impl Truncated {
    fn new(len: u64) -> Self {
        Self {
            bytes: Generated::chunked(len),
            flushed: false,
        }
    }
}

impl Body for Truncated {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match Pin::new(&mut self.bytes).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(never))) => match never {},
            // hyper flushes what it has buffered whenever the body is pending; without this
            // the error would discard the head and the bytes still sitting in its buffer.
            Poll::Ready(None) if !self.flushed => {
                self.flushed = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::other("/truncate: cut short")))),
            Poll::Pending => Poll::Pending,
        }
    }
}
