//! Errors the proxy answers itself. Each has a status, a short machine-readable cause
//! (sent as `sluice-error` and logged) and a human detail.

use crate::body::RespBody;
use http::{HeaderValue, Response, StatusCode};
use sluice_net::ConnectError;

/// The response header naming why sluice (not the origin) produced a response.
pub const ERROR_HEADER: &str = "sluice-error";

/// Who caused a failure, which decides the status and whether a retry could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub status: StatusCode,
    pub cause: &'static str,
    pub detail: String,
}

impl ProxyError {
    pub fn bad_request(cause: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            cause,
            detail: detail.into(),
        }
    }

    pub fn no_route(host: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            cause: "no_route",
            detail: format!("no route for host {host:?}"),
        }
    }

    pub fn connect(e: &ConnectError) -> Self {
        let status = if e.kind.is_timeout() {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        Self {
            status,
            cause: e.kind.cause(),
            detail: e.detail.clone(),
        }
    }

    pub fn response_timeout(after: std::time::Duration) -> Self {
        Self {
            status: StatusCode::GATEWAY_TIMEOUT,
            cause: "response_timeout",
            detail: format!("no response head from upstream within {after:?}"),
        }
    }

    /// True when the upstream connection was closed or reset under the request (the
    /// stale-connection case a replay can fix), not when the origin misbehaved.
    pub fn is_upstream_closed(&self) -> bool {
        self.cause == "upstream_closed"
    }

    /// A failure of an exchange on an established upstream connection.
    pub fn upstream(e: &hyper::Error) -> Self {
        let cause = if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
            "upstream_protocol_error"
        } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() || is_reset(e) {
            "upstream_closed"
        } else if e.is_timeout() {
            "upstream_timeout"
        } else {
            "upstream_error"
        };
        let status = if cause == "upstream_timeout" {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        Self {
            status,
            cause,
            detail: error_chain(e),
        }
    }

    /// The connection vanished between checkout and use (should not happen).
    pub fn upstream_gone() -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            cause: "upstream_closed",
            detail: "upstream connection lost before the request was sent".into(),
        }
    }

    /// The response sent to the client.
    pub fn to_response(&self) -> Response<RespBody> {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let text = format!(
            "{} {reason}: {}: {}\n",
            self.status.as_u16(),
            self.cause,
            self.detail
        );
        let mut resp = Response::new(RespBody::full(text));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(ERROR_HEADER, HeaderValue::from_static(self.cause));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

/// The peer reset or closed the connection under us (as when an origin's idle timer
/// closes a pooled connection just as a request goes out).
fn is_reset(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        cur = err.source();
    }
    false
}

/// An HTTP/2 stream the server did not process: refused (REFUSED_STREAM) or above
/// the last stream id of a GOAWAY. RFC 9113 §8.7: such requests can be retried.
pub fn is_h2_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR));
        }
        cur = err.source();
    }
    false
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
