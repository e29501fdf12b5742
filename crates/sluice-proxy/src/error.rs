//! Errors the proxy answers itself: a [`Cause`] (status, `sluice-error` value, who is
//! to blame) plus a human detail, and the classification of the lower layers' errors
//! into causes.

use crate::cause::Cause;
use sluice_net::ConnectError;
use std::sync::Arc;
use std::time::Duration;

/// The response header naming why sluice (not the origin) produced a response.
pub const ERROR_HEADER: &str = "sluice-error";

/// Whether the request may be sent again after this failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The origin may have acted on it (or the failure would repeat): never.
    Never,
    /// The origin did not see it (no connection; a refused HTTP/2 stream): any method,
    /// on another server.
    NotSent,
    /// A pooled connection closed under it (the idle-timeout race): the origin most
    /// likely never read it, but may have; replayed once, for replayable requests.
    Stale,
}

/// A failure sluice answers (or logs) itself: its kind and who caused it (the
/// [`Cause`], which gives the status and whether it counts against the server),
/// whether a retry is safe, a human detail, and the error it came from.
#[derive(Debug, Clone)]
pub struct ProxyError {
    pub cause: Cause,
    pub detail: String,
    pub retry: Retry,
    /// Already fed to passive health (a shared HTTP/2 open records its failure once,
    /// not once per request that waited for it).
    pub health_fed: bool,
    /// The lower layer's error (hyper, I/O, TLS), kept for its source chain.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for ProxyError {
    fn eq(&self, other: &Self) -> bool {
        self.cause == other.cause && self.detail == other.detail && self.retry == other.retry
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.cause.as_str(), self.detail)
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why the client's request body could not be forwarded. It travels inside hyper's
/// client error as the body's own error, so the exchange's failure can be blamed on
/// the client (400/408, or nothing when it left) instead of on the server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the request body is malformed: {0}")]
    Malformed(String),
    #[error("no request body data from the client for {0:?}")]
    Idle(Duration),
    #[error("the client closed the connection before its request body was complete")]
    Closed,
    #[error("the request body is larger than the route's limit of {0} bytes (routes[].max_request_body)")]
    TooLarge(u64),
}

impl ClientBodyError {
    /// An HTTP/2 client's body failed: the stream was reset or the connection lost
    /// (the client left), or it broke the protocol (malformed).
    pub fn from_incoming(e: &hyper::Error) -> Self {
        let reset_or_gone = e.is_canceled()
            || e.is_incomplete_message()
            || find::<h2::Error>(e).is_some_and(|h| h.is_reset() || h.is_io() || h.is_go_away());
        if reset_or_gone {
            Self::Closed
        } else {
            Self::Malformed(error_chain(e))
        }
    }

    pub fn cause(&self) -> Cause {
        match self {
            Self::Malformed(_) => Cause::BadRequestBody,
            Self::Idle(_) => Cause::RequestBodyTimeout,
            Self::Closed => Cause::ClientClosed,
            Self::TooLarge(_) => Cause::RequestBodyTooLarge,
        }
    }
}

impl ProxyError {
    pub fn new(cause: Cause, detail: impl Into<String>) -> Self {
        Self {
            cause,
            detail: detail.into(),
            retry: Retry::Never,
            health_fed: false,
            source: None,
        }
    }

    /// No connection was made, so nothing was sent: another server may take it
    /// (unless the certificate did not verify: it will not next time either).
    pub fn connect(e: &ConnectError) -> Self {
        Self::new(e.kind.into(), e.detail.clone()).unsent()
    }

    /// The failure happened before anything of the request was sent (getting a
    /// connection failed): another server may take it, for any method, unless the
    /// cause would repeat there (a certificate that does not verify).
    pub fn unsent(mut self) -> Self {
        self.retry = if self.cause.retry_after_failed_open() {
            Retry::NotSent
        } else {
            Retry::Never
        };
        self
    }

    pub fn response_timeout(after: Duration) -> Self {
        Self::new(
            Cause::ResponseTimeout,
            format!("no response head from upstream within {after:?} of the request's last byte"),
        )
    }

    /// A failed exchange on an upstream connection: the client's body failing (its
    /// fault), or the connection or origin failing (the server's).
    pub fn exchange(e: hyper::Error) -> Self {
        if let Some(body) = find::<ClientBodyError>(&e) {
            return Self::new(body.cause(), body.to_string());
        }
        let cause = if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
            Cause::UpstreamProtocolError
        } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() || is_reset(&e) {
            Cause::UpstreamClosed
        } else if e.is_timeout() {
            Cause::UpstreamTimeout
        } else {
            Cause::UpstreamError
        };
        // Cancelled: hyper dropped the request before it went out (its HTTP/2
        // connection closed, e.g. a GOAWAY racing the dispatch), without handing it
        // back; a replayable request may go again.
        let retry = if is_h2_refused(&e) || e.is_canceled() {
            Retry::NotSent
        } else if cause == Cause::UpstreamClosed {
            Retry::Stale
        } else {
            Retry::Never
        };
        let mut err = Self::new(cause, error_chain(&e));
        err.retry = retry;
        err.source = Some(Arc::new(e));
        err
    }

    /// The connection vanished between checkout and use (should not happen).
    pub fn upstream_gone() -> Self {
        Self::new(
            Cause::UpstreamClosed,
            "upstream connection lost before the request was sent",
        )
    }

    /// `"408 Request Timeout: request_header_timeout: detail\n"`.
    pub fn body_text(&self) -> String {
        let status = self.cause.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        format!(
            "{} {reason}: {}: {}\n",
            status.as_u16(),
            self.cause.as_str(),
            self.detail
        )
    }
}

/// The first error of type `T` in `e`'s source chain.
fn find<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// The kinds of the I/O errors in `e`'s source chain.
fn io_kinds<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = std::io::ErrorKind> + 'a {
    std::iter::successors(Some(e), |err| err.source()).filter_map(|err| {
        err.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
    })
}

/// The peer reset or closed the connection under us (as when an origin's idle timer
/// closes a pooled connection just as a request goes out).
fn is_reset(e: &(dyn std::error::Error + 'static)) -> bool {
    io_kinds(e).any(|k| {
        matches!(
            k,
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
        )
    })
}

/// The server reset this one HTTP/2 stream (RST_STREAM): the connection itself is
/// fine and keeps serving the other streams.
pub fn is_stream_reset(e: &hyper::Error) -> bool {
    find::<h2::Error>(e).is_some_and(h2::Error::is_reset)
}

/// An HTTP/2 stream the server did not process: refused (REFUSED_STREAM) or above
/// the last stream id of a GOAWAY. RFC 9113 §8.7: such requests can be retried.
fn is_h2_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    find::<h2::Error>(e)
        .is_some_and(|h2| h2.reason() == Some(h2::Reason::REFUSED_STREAM) || is_graceful_goaway(h2))
}

fn is_graceful_goaway(h2: &h2::Error) -> bool {
    h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR)
}

/// An HTTP/2 stream above the last stream id of a graceful GOAWAY (NO_ERROR): the
/// server was closing the connection normally and never saw the request.
pub fn is_drained(e: &ProxyError) -> bool {
    e.source
        .as_deref()
        .is_some_and(|s| find::<h2::Error>(s).is_some_and(is_graceful_goaway))
}

/// "outer: inner: innermost" for an error and its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}
