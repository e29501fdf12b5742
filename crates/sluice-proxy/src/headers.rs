//! Header rules of a forwarding proxy (RFC 9110 §7.6): hop-by-hop headers stop here,
//! forwarding headers are added.

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sluice_net::ClientAddr;
use std::fmt::Write;

/// Headers that describe one hop, never forwarded (plus any named in `Connection`).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers a `Connection` line may not remove: the ones routing and framing rely on,
/// and the ones sluice sets itself. A client must not be able to strip `Host` after
/// routing (the origin would get an HTTP/1.1 request without one).
static PROTECTED: [HeaderName; 5] = [
    header::HOST,
    header::CONTENT_LENGTH,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-request-id"),
];

fn is_hop_by_hop(n: &HeaderName) -> bool {
    *n == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(n)
}

/// Whether a header of a raw head (as `httparse` gives it) stops at this hop: a
/// hop-by-hop one, or one the head's `Connection` lists (`listed`), unless protected.
/// For heads sluice parses itself, so it never builds a map entry it would remove.
pub fn stops_here(name: &str, listed: &[&str]) -> bool {
    let is = |n: &HeaderName| n.as_str().eq_ignore_ascii_case(name);
    (is(&header::TRANSFER_ENCODING) || HOP_BY_HOP.iter().any(is))
        || (listed.iter().any(|l| l.eq_ignore_ascii_case(name)) && !PROTECTED.iter().any(is))
}

/// The comma-separated options of `Connection` header values (RFC 9110 §7.6.1).
pub fn connection_tokens<'a>(
    values: impl Iterator<Item = &'a str> + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    values
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A `Connection` option that names a header to drop: `close` and `keep-alive` are
/// options of the connection itself (`Keep-Alive` the header is hop-by-hop anyway).
pub fn names_a_header(token: &str) -> bool {
    !token.eq_ignore_ascii_case("close") && !token.eq_ignore_ascii_case("keep-alive")
}

/// Removes hop-by-hop headers. `Transfer-Encoding` goes too: each hop frames bodies itself.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the few headers a request has, comparing names (an enum compare
    // for standard ones), instead of nine hashed removals for headers that are
    // almost never there: that cost 4.9k instructions per request.
    if !h.keys().any(is_hop_by_hop) {
        return;
    }
    // Only the names present are removed (usually just `Connection`), and its
    // `close`/`keep-alive` options are not header names to look up.
    let mut gone: Vec<HeaderName> = h.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    if h.contains_key(header::CONNECTION) {
        let values = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok());
        gone.extend(
            connection_tokens(values)
                .filter(|t| names_a_header(t))
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .filter(|n| !PROTECTED.contains(n)),
        );
    }
    for n in gone {
        h.remove(n);
    }
}

/// Whether a `TE` value lists `trailers`.
pub fn names_trailers(value: &str) -> bool {
    value.split(',').any(|t| {
        t.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
    })
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto` (`https` when
/// the client came over TLS). Unix-socket clients have no address, so
/// `X-Forwarded-For` is left as it came.
pub fn add_forwarded(h: &mut HeaderMap, client: ClientAddr, tls: bool) {
    if let ClientAddr::Tcp(sa) = client {
        // One allocation: previous value, separator and address written in place.
        let prev = h
            .get(&X_FORWARDED_FOR)
            .map(HeaderValue::as_bytes)
            .filter(|p| !p.is_empty());
        let mut value = BytesMut::with_capacity(prev.map_or(0, |p| p.len() + 2) + 39);
        if let Some(p) = prev {
            value.extend_from_slice(p);
            value.extend_from_slice(b", ");
        }
        match sa.ip() {
            // By hand: `Display` for an address went through the formatting machinery
            // (~700 instructions per request in callgrind).
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        value.extend_from_slice(b".");
                    }
                    push_decimal(&mut value, octet);
                }
            }
            ip => {
                let _ = write!(value, "{ip}");
            }
        }
        if let Ok(v) = HeaderValue::from_maybe_shared(value.freeze()) {
            h.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    let proto = if tls { "https" } else { "http" };
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
}

fn push_decimal(out: &mut BytesMut, n: u8) {
    if n >= 100 {
        out.extend_from_slice(&[b'0' + n / 100]);
    }
    if n >= 10 {
        out.extend_from_slice(&[b'0' + n / 10 % 10]);
    }
    out.extend_from_slice(&[b'0' + n % 10]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_hop_by_hop_headers_is_left_alone() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a.test"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2, "transfer-encoding alone is stripped too");
    }

    #[test]
    fn strips_listed_and_standard_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-keep"]);
    }

    #[test]
    fn connection_cannot_remove_host_framing_or_forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("host, Content-Length, x-request-id, x-gone"),
        );
        h.insert(header::HOST, HeaderValue::from_static("a.test"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("id"));
        h.insert("x-gone", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "host", "x-request-id"]);
    }

    #[test]
    fn appends_to_forwarded_for() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        add_forwarded(
            &mut h,
            ClientAddr::Tcp("127.0.0.9:5000".parse().unwrap()),
            false,
        );
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn forwarded_for_writes_every_address_form() {
        for addr in ["0.10.100.255:1", "[2001:db8::1]:1", "[::ffff:1.2.3.4]:1"] {
            let sa: std::net::SocketAddr = addr.parse().unwrap();
            let mut h = HeaderMap::new();
            add_forwarded(&mut h, ClientAddr::Tcp(sa), false);
            assert_eq!(h[&X_FORWARDED_FOR], sa.ip().to_string().as_str());
        }
    }
}
