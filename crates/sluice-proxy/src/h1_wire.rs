//! The HTTP/1.1 wire format of sluice's upstream side: a request head written straight
//! from the rewritten `http` parts, and a response head parsed with `httparse`, with
//! the framing its body has (RFC 9112 §6.3) and whether the connection stays open.

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// A response head larger than this is refused (HAProxy's default buffer is 16 KiB,
/// NGINX's proxy buffer 4–8 KiB; hyper's default was 400 KiB).
pub const MAX_HEAD: usize = 64 * 1024;

/// Headers in a response head, at most (hyper's default too).
const MAX_HEADERS: usize = 100;

/// How the request body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqFraming {
    /// No body (the client sent none).
    None,
    /// As many bytes as the `Content-Length` the client sent.
    Length,
    /// Chunked: the client's body had no length (it was chunked towards us).
    Chunked,
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespFraming {
    Empty,
    Length(u64),
    Chunked,
    /// Until the origin closes: the connection cannot be reused.
    ToEof,
}

/// A parsed response head.
#[derive(Debug)]
pub struct RespHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: RespFraming,
    /// The origin lets the connection take another request after this response.
    pub keep_alive: bool,
}

/// Writes `method target HTTP/1.1`, the headers, and the framing header the body
/// needs (`Transfer-Encoding: chunked` for a body of unknown length).
pub fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    framing: ReqFraming,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        uri.path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if framing == ReqFraming::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk of a chunked body: its size line, the data, the CRLF.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut size = [0u8; 16];
    let mut n = data.len();
    let mut i = size.len();
    while n > 0 || i == size.len() {
        i -= 1;
        size[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.extend_from_slice(&size[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Parses a response head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success the head's bytes are removed from `buf`. `head_request`: the request
/// was HEAD, so the response has no body whatever its headers say.
pub fn parse_response_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<RespHead>, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= MAX_HEAD {
                return Err(format!("response head larger than {} KiB", MAX_HEAD / 1024));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!(
                "response head with more than {MAX_HEADERS} headers"
            ))
        }
        Err(e) => return Err(format!("invalid response head: {e}")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or("invalid response status code")?;
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("invalid response header name {:?}", h.name))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| format!("invalid value of response header {:?}", h.name))?;
        headers.append(name, value);
    }
    let _ = buf.split_to(len);
    let mut keep_alive = connection_persists(&headers, version);
    let framing = framing(status, &mut headers, head_request, &mut keep_alive)?;
    Ok(Some(RespHead {
        status,
        version,
        headers,
        framing,
        keep_alive,
    }))
}

/// RFC 9112 §9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with
/// `Connection: keep-alive`.
fn connection_persists(headers: &HeaderMap, version: Version) -> bool {
    let has = |token: &str| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

/// RFC 9112 §6.3, in its order. A `Content-Length` beside `Transfer-Encoding` is
/// dropped (it must not reach the client) and the connection is closed afterwards, as
/// the RFC asks of a message framed both ways.
fn framing(
    status: StatusCode,
    headers: &mut HeaderMap,
    head_request: bool,
    keep_alive: &mut bool,
) -> Result<RespFraming, String> {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(RespFraming::Empty);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            *keep_alive = false;
        }
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty());
        if last.is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            return Ok(RespFraming::Chunked);
        }
        *keep_alive = false;
        return Ok(RespFraming::ToEof);
    }
    let mut length = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.to_str().unwrap_or("x").split(',') {
            let n: u64 = part
                .trim()
                .parse()
                .map_err(|_| format!("invalid Content-Length {v:?}"))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length values".to_string());
            }
            length = Some(n);
        }
    }
    match length {
        Some(0) => Ok(RespFraming::Empty),
        Some(n) => Ok(RespFraming::Length(n)),
        None => {
            *keep_alive = false;
            Ok(RespFraming::ToEof)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, head: bool) -> Result<Option<RespHead>, String> {
        parse_response_head(&mut BytesMut::from(raw), head)
    }

    fn framing_of(raw: &str) -> (RespFraming, bool) {
        let h = parse(raw, false).unwrap().unwrap();
        (h.framing, h.keep_alive)
    }

    #[test]
    fn request_heads_carry_the_origin_form_and_the_framing() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("api.test"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        let uri = Uri::from_static("/p?q=1");
        encode_request_head(&mut out, &Method::POST, &uri, &h, ReqFraming::Chunked);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nhost: api.test\r\nx-a: 1\r\nx-a: 2\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn chunks_are_sized_in_hex() {
        let mut out = Vec::new();
        encode_chunk(&mut out, &[b'a'; 26]);
        encode_chunk(&mut out, b"");
        encode_chunk(&mut out, b"z");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("1a\r\n{}\r\n1\r\nz\r\n", "a".repeat(26))
        );
    }

    #[test]
    fn a_head_is_parsed_and_consumed_leaving_the_body() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc");
        let h = parse_response_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.headers["x-a"], "b");
        assert_eq!(h.framing, RespFraming::Length(3));
        assert!(h.keep_alive);
        assert_eq!(&buf[..], b"abc");
        assert!(parse("HTTP/1.1 200 OK\r\nContent-", false)
            .unwrap()
            .is_none());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(framing_of(chunked), (RespFraming::Chunked, true));
        let both = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        let h = parse(both, false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (RespFraming::Chunked, false));
        assert!(h.headers.get(header::CONTENT_LENGTH).is_none());
        let gzip_only = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(framing_of(gzip_only), (RespFraming::ToEof, false));
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\n\r\n"),
            (RespFraming::ToEof, false)
        );
        assert_eq!(
            framing_of("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
            (RespFraming::Empty, true)
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n"),
            (RespFraming::Length(4), true)
        );
        let head = parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert_eq!(head.unwrap().unwrap().framing, RespFraming::Empty);
    }

    #[test]
    fn persistence_depends_on_version_and_connection() {
        let close = "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n";
        assert!(!framing_of(close).1);
        let old = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!framing_of(old).1);
        let old_ka = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert!(framing_of(old_ka).1);
    }

    #[test]
    fn bad_heads_are_refused_with_a_reason() {
        let e = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            false,
        );
        assert_eq!(e.unwrap_err(), "conflicting Content-Length values");
        let e = parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false);
        assert!(e.unwrap_err().starts_with("invalid Content-Length"));
        assert!(parse("SSH-2.0-OpenSSH\r\n\r\n", false)
            .unwrap_err()
            .starts_with("invalid response head"));
        let big = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(parse(&big, false)
            .unwrap_err()
            .contains("larger than 64 KiB"));
    }
}
