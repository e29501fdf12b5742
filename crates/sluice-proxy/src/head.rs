//! The request head: what sluice refuses before routing, the host it routes on, and
//! the head as it goes upstream (origin form and `Host` for HTTP/1.1, `:scheme` and
//! `:authority` for HTTP/2).

use crate::cause::Cause;
use crate::error::ProxyError;
use crate::headers;
use crate::req_body::ReqBody;
use crate::router::normalize_host;
use http::header::{HeaderValue, HOST};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Uri, Version};
use sluice_net::ClientAddr;

/// Checks what sluice cannot forward and returns the host to route on: the authority
/// of an absolute-form URI (`GET http://api.example.com/x`, forward-proxy style, which
/// RFC 9112 §3.2.2 says wins over `Host`), else the `Host` header.
pub fn request_host(parts: &Parts) -> Result<String, ProxyError> {
    if parts.uri.path() == "*" && parts.uri.authority().is_none() {
        return Err(ProxyError::new(
            Cause::MethodNotSupported,
            format!(
                "{} * (a request about the server itself) is not forwarded",
                parts.method
            ),
        ));
    }
    // RFC 9112 §3.2: more than one Host line is a 400, whatever the target.
    let mut hosts = parts.headers.get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::new(
            Cause::DuplicateHost,
            "the request has more than one Host header",
        ));
    }
    if let Some(auth) = parts.uri.authority() {
        if parts.uri.scheme() != Some(&Scheme::HTTP) {
            let scheme = parts.uri.scheme_str().unwrap_or("none");
            return Err(ProxyError::new(
                Cause::UnsupportedScheme,
                format!("only http:// targets are forwarded, not {scheme}://"),
            ));
        }
        if auth.as_str().contains('@') {
            // Never echo them: this body and the logs would leak the credentials.
            return Err(ProxyError::new(
                Cause::CredentialsInUri,
                "the target URI carries credentials (user:password@host); send them in a header",
            ));
        }
        let host = normalize_host(auth.as_str());
        check_host_chars(&host, auth.as_str())?;
        return Ok(host.into_owned());
    }
    let Some(raw) = host_header else {
        return Err(ProxyError::new(
            Cause::MissingHost,
            "the request has no Host header",
        ));
    };
    let Ok(raw) = raw.to_str() else {
        return Err(ProxyError::new(
            Cause::InvalidHost,
            "the Host header is not valid text",
        ));
    };
    let host = normalize_host(raw.trim());
    if host.is_empty() {
        return Err(ProxyError::new(
            Cause::MissingHost,
            "the Host header is empty",
        ));
    }
    check_host_chars(&host, raw)?;
    Ok(host.into_owned())
}

/// The characters a host may have, whichever part of the request named it.
fn check_host_chars(host: &str, raw: &str) -> Result<(), ProxyError> {
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    if ok {
        return Ok(());
    }
    let shown = if raw.contains('@') {
        "(it contains credentials)".to_string()
    } else {
        format!("{raw:?}")
    };
    Err(ProxyError::new(
        Cause::InvalidHost,
        format!("invalid host {shown}"),
    ))
}

/// Rewrites the request head for the upstream hop: origin-form URI, HTTP/1.1,
/// hop-by-hop headers removed, forwarding headers added, `Host` kept (or taken from an
/// absolute-form URI, which wins).
pub fn prepare_upstream_head(parts: &mut Parts, client: ClientAddr, tls: bool, host: &str) {
    if let Some(auth) = parts.uri.authority().cloned() {
        // The absolute-form target wins (RFC 9112 §3.2.2); `Host` is rebuilt from its
        // host and port only, never anything else the authority carried.
        let rebuilt = match auth.port_u16() {
            Some(port) => format!("{}:{port}", auth.host()),
            None => auth.host().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&rebuilt).or_else(|_| HeaderValue::from_str(host)) {
            parts.headers.insert(HOST, v);
        }
        parts.uri = origin_form(&parts.uri);
    }
    parts.version = Version::HTTP_11;
    // `TE: trailers` is hop-by-hop, but it says what the client at the end of the
    // chain accepts: gRPC servers refuse requests without it (Envoy keeps it too).
    let trailers = parts
        .headers
        .get_all(http::header::TE)
        .iter()
        .any(|v| v.to_str().is_ok_and(headers::names_trailers));
    headers::strip_hop_by_hop(&mut parts.headers);
    if trailers {
        parts
            .headers
            .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    }
    // sluice answers `Expect: 100-continue` towards the client itself when the
    // body is read; the origin gets the body without waiting.
    parts.headers.remove(http::header::EXPECT);
    headers::add_forwarded(&mut parts.headers, client, tls);
}

fn origin_form(uri: &Uri) -> Uri {
    let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    Uri::try_from(pq).unwrap_or_else(|_| Uri::from_static("/"))
}

/// HTTP/2 carries the target in `:scheme` and `:authority` (RFC 9113 §8.3.1): the URI
/// becomes absolute (`https` over TLS) with the authority from `Host`, which is then
/// not sent as a header. A head already in this form is left alone.
pub fn to_h2_form(req: &mut Request<ReqBody>, tls: bool) {
    if req.uri().authority().is_some() {
        return;
    }
    let Some(authority) = req.headers().get(HOST).and_then(|h| h.to_str().ok()) else {
        return;
    };
    let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let built = Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(pq)
        .build();
    if let Ok(uri) = built {
        *req.uri_mut() = uri;
        req.headers_mut().remove(HOST);
    }
}

/// The HTTP/1.1 form of a head [`to_h2_form`] rewrote (a request retried on an
/// HTTP/1.1 connection after an HTTP/2 one refused it).
pub fn to_h1_form(req: &mut Request<ReqBody>) {
    let Some(auth) = req.uri().authority().cloned() else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(auth.as_str()) {
        req.headers_mut().insert(HOST, v);
    }
    let uri = origin_form(req.uri());
    *req.uri_mut() = uri;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: &str) -> Parts {
        let mut lines = req.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default();
        let target = first.next().unwrap_or_default();
        let mut b = Request::builder().method(method).uri(target);
        for l in lines.filter(|l| !l.is_empty()) {
            let (n, v) = l.split_once(": ").unwrap();
            b = b.header(n, v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn cause(req: &str) -> Cause {
        request_host(&parts(req)).unwrap_err().cause
    }

    #[test]
    fn what_is_refused_before_routing() {
        assert_eq!(cause("OPTIONS *\r\nHost: a"), Cause::MethodNotSupported);
        assert_eq!(cause("GET /\r\nHost: a\r\nHost: b"), Cause::DuplicateHost);
        assert_eq!(cause("GET https://a/\r\nHost: a"), Cause::UnsupportedScheme);
        assert_eq!(cause("GET ftp://a/\r\nHost: a"), Cause::UnsupportedScheme);
        let e = request_host(&parts("GET http://u:secret@a/\r\nHost: a")).unwrap_err();
        assert_eq!(e.cause, Cause::CredentialsInUri);
        assert!(!e.detail.contains("secret"));
        let e = request_host(&parts("GET /\r\nHost: u:secret@a")).unwrap_err();
        assert_eq!(e.cause, Cause::InvalidHost);
        assert!(!e.detail.contains("secret"));
        assert_eq!(
            request_host(&parts("GET http://A.test:8080/x\r\nHost: b")).unwrap(),
            "a.test"
        );
        // The host check applies to an absolute-form target too.
        assert_eq!(cause("GET http://a!b/\r\nHost: a"), Cause::InvalidHost);
    }

    #[test]
    fn h2_form_uses_scheme_and_authority_and_back() {
        let mut req = Request::get("/x?y=1")
            .header(HOST, "api.test:8443")
            .body(ReqBody::Empty)
            .unwrap();
        to_h2_form(&mut req, true);
        assert_eq!(req.uri(), "https://api.test:8443/x?y=1");
        assert!(req.headers().get(HOST).is_none());
        to_h1_form(&mut req);
        assert_eq!(req.uri(), "/x?y=1");
        assert_eq!(req.headers()[HOST], "api.test:8443");
    }
}
