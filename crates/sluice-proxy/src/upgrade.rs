//! HTTP/1.1 Upgrade on the request path (RFC 9110 §7.8): which requests ask for a
//! protocol switch, their head as it goes upstream, and the `101` that turns the
//! exchange into a tunnel.
//!
//! An upgrade request goes to the origin with its `Upgrade` and `Connection: upgrade`
//! (hop-by-hop, so rebuilt after the head is cleaned), over HTTP/1.1 even to an
//! HTTP/2 backend. A `101` makes both connections a tunnel; any other answer is an
//! ordinary response. `h2c` is never passed on: it would switch the client's
//! connection to HTTP/2 with the origin, past sluice (the request goes on without it).

use crate::cause::Cause;
use crate::conn_state::ConnState;
use crate::error::ProxyError;
use crate::headers::{self, X_REQUEST_ID};
use crate::metrics::{TunnelLabels, TunnelMetrics};
use crate::resp_body::{RespBody, UpBody};
use crate::tunnel::{Far, Pending, Tunnels};
use crate::upstream::Upstream;
use http::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use http::request::Parts;
use http::{Response, Version};
use std::time::Duration;

/// The protocols an HTTP/1.1 request asks to switch to (its `Upgrade`, without
/// `h2c`), if it asks: `Connection` must list `upgrade` (RFC 9110 §7.6.1).
pub fn requested(parts: &Parts) -> Option<HeaderValue> {
    if parts.version != Version::HTTP_11 {
        return None;
    }
    let connection = parts
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok());
    if !headers::connection_tokens(connection).any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return None;
    }
    let offered = parts
        .headers
        .get_all(UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let kept: Vec<&str> = headers::connection_tokens(offered)
        .filter(|p| !p.eq_ignore_ascii_case("h2c"))
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

/// Puts the switch back on a head whose hop-by-hop headers were removed.
pub fn keep_on(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(UPGRADE, upgrade);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Everything a switch needs besides the origin's answer.
pub struct Switch<'a> {
    pub conn: &'a ConnState,
    pub labels: TunnelLabels,
    pub idle: Duration,
    pub tunnels: &'a Tunnels,
    pub metrics: &'a TunnelMetrics,
}

/// The origin's `101`, passed on to the client (with an empty body the caller
/// completes); the tunnel starts once it is written (the connection's driver runs
/// it).
pub fn switch(
    resp: Response<UpBody>,
    up: Upstream,
    s: Switch<'_>,
    request_id: HeaderValue,
) -> Result<Response<RespBody>, ProxyError> {
    let (mut parts, body) = resp.into_parts();
    let refused = |detail: &str| ProxyError::new(Cause::UpstreamProtocolError, detail);
    // The origin must take the whole request before it switches (RFC 9110 §15.2.2).
    let body_ok = matches!(&body, UpBody::H1(b) if b.upload_done());
    if !body_ok {
        return Err(refused(
            "the origin switched protocols before it had the whole request",
        ));
    }
    let Some((h1, slot)) = up.into_tunnel() else {
        return Err(refused("the origin switched protocols on an HTTP/2 stream"));
    };
    s.conn.set_tunnel(Pending::new(
        (Far::H1(h1), Some(slot)),
        s.labels,
        s.idle,
        s.tunnels,
        s.metrics,
    ));
    parts.headers.insert(X_REQUEST_ID.clone(), request_id);
    Ok(Response::from_parts(parts, RespBody::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], version: Version) -> Parts {
        let mut b = http::Request::get("/chat").version(version);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn an_upgrade_needs_both_headers_on_http_1_1_and_never_carries_h2c() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert_eq!(
            requested(&parts(&ws, Version::HTTP_11)).unwrap(),
            "websocket"
        );
        assert!(requested(&parts(&ws, Version::HTTP_10)).is_none());
        assert!(requested(&parts(&[("upgrade", "websocket")], Version::HTTP_11)).is_none());
        assert!(requested(&parts(&[("connection", "upgrade")], Version::HTTP_11)).is_none());
        let h2c = [
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ];
        assert!(requested(&parts(&h2c, Version::HTTP_11)).is_none());
        let both = [("connection", "upgrade"), ("upgrade", "H2C, foo/2")];
        assert_eq!(requested(&parts(&both, Version::HTTP_11)).unwrap(), "foo/2");
    }
}
