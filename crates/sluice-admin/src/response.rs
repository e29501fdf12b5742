//! Response builders shared by the routes.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn text(status: StatusCode, body: &'static str) -> Reply {
    with_type(
        status,
        Bytes::from_static(body.as_bytes()),
        "text/plain; charset=utf-8",
    )
}

pub(crate) fn json(status: StatusCode, body: String) -> Reply {
    with_type(status, Bytes::from(body), "application/json")
}

pub(crate) fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Reply {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(crate) fn method_not_allowed(allow: &'static str, body: &'static str) -> Reply {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, body);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// An answer after which the connection must not be reused: the request body was not
/// (fully) read, so the next bytes on it are not the start of a request.
pub(crate) fn closing(status: StatusCode, body: &'static str) -> Reply {
    let mut r = text(status, body);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}
