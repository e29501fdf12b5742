//! The HTTP/1.1 wire format of sluice's upstream side: a request head written straight
//! from the rewritten `http` parts, and a response head parsed with `httparse`, with
//! the framing its body has (RFC 9112 §6.3) and whether the connection stays open.

use crate::headers;
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
    // Uninitialised slots, and header spans in a Vec of the right size: zeroing two
    // 3.2 KB arrays cost 3.2k instructions per response.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        // One read can bring a whole head that is over the limit.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
            return Err(format!("response head larger than {} KiB", MAX_HEAD / 1024))
        }
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
    let raw: &[httparse::Header<'_>] = resp.headers;
    let mut keep_alive = connection_persists(raw, version);
    let te = has_transfer_encoding(raw);
    let framing = framing(status, version, raw, te, head_request, &mut keep_alive)?;
    // The map is built once, without the headers that stop at this hop, and its values
    // share the head's buffer instead of each being copied into an allocation.
    let listed = connection_tokens(raw)
        .filter(|t| headers::names_a_header(t))
        .collect::<Vec<_>>();
    let base = buf.as_ptr() as usize;
    let mut spans = Vec::with_capacity(raw.len());
    for h in raw {
        let framing_header = te && h.name.eq_ignore_ascii_case(header::CONTENT_LENGTH.as_str());
        if framing_header || headers::stops_here(h.name, &listed) {
            continue;
        }
        let name_at = h.name.as_ptr() as usize - base;
        let value_at = h.value.as_ptr() as usize - base;
        spans.push((name_at, h.name.len(), value_at, h.value.len()));
    }
    // A 101 names the protocol both sides switch to: its `Upgrade` (hop-by-hop, so
    // not among the spans) goes on to the client with the `Connection: upgrade` that
    // makes the answer an upgrade.
    let upgrade = (status == StatusCode::SWITCHING_PROTOCOLS)
        .then(|| raw.iter().find(|h| h.name.eq_ignore_ascii_case("upgrade")))
        .flatten()
        .map(|h| (h.value.as_ptr() as usize - base, h.value.len()));
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    for (name_at, name_len, value_at, value_len) in spans {
        let raw_name = &head[name_at..name_at + name_len];
        let name = HeaderName::from_bytes(raw_name).map_err(|_| {
            format!(
                "invalid response header name {:?}",
                String::from_utf8_lossy(raw_name)
            )
        })?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| format!("invalid value of response header {name}"))?;
        headers.append(name, value);
    }
    if let Some((at, len)) = upgrade {
        let value = HeaderValue::from_maybe_shared(head.slice(at..at + len))
            .map_err(|_| "invalid value of the 101's Upgrade header".to_string())?;
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    Ok(Some(RespHead {
        status,
        version,
        headers,
        framing,
        keep_alive,
    }))
}

/// The comma-separated options of the `Connection` headers.
fn connection_tokens<'a>(raw: &'a [httparse::Header<'a>]) -> impl Iterator<Item = &'a str> + 'a {
    headers::connection_tokens(values(raw, header::CONNECTION.as_str()))
}

/// The values of header `name` (given in lower case), as text (others are skipped).
fn values<'a>(
    raw: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    raw.iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
}

/// RFC 9112 §9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with
/// `Connection: keep-alive`.
fn connection_persists(raw: &[httparse::Header<'_>], version: Version) -> bool {
    let has = |token: &str| connection_tokens(raw).any(|t| t.eq_ignore_ascii_case(token));
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

/// Whether the head has a `Transfer-Encoding` header, readable or not.
fn has_transfer_encoding(raw: &[httparse::Header<'_>]) -> bool {
    raw.iter().any(|h| {
        h.name
            .eq_ignore_ascii_case(header::TRANSFER_ENCODING.as_str())
    })
}

/// RFC 9112 §6.3, in its order. A `Content-Length` beside `Transfer-Encoding` is
/// not forwarded (the caller drops it) and the connection is closed afterwards, as the
/// RFC asks of a message framed both ways; so is an HTTP/1.0 response that claims a
/// transfer coding (§6.1: its framing is faulty).
fn framing(
    status: StatusCode,
    version: Version,
    raw: &[httparse::Header<'_>],
    transfer_encoding: bool,
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
    if transfer_encoding {
        let mut last = None;
        for h in raw.iter().filter(|h| {
            h.name
                .eq_ignore_ascii_case(header::TRANSFER_ENCODING.as_str())
        }) {
            let text = std::str::from_utf8(h.value)
                .map_err(|_| "invalid Transfer-Encoding value".to_string())?;
            if let Some(t) = text.split(',').map(str::trim).rfind(|t| !t.is_empty()) {
                last = Some(t);
            }
        }
        if values(raw, header::CONTENT_LENGTH.as_str())
            .next()
            .is_some()
            || version == Version::HTTP_10
        {
            *keep_alive = false;
        }
        if last.is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            return Ok(RespFraming::Chunked);
        }
        *keep_alive = false;
        return Ok(RespFraming::ToEof);
    }
    let mut length = None;
    for v in raw
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        let text = std::str::from_utf8(v.value).unwrap_or("x");
        for part in text.split(',') {
            let digits = part.trim();
            // `parse` would take a sign ("+5"): the RFC allows digits only.
            let n: u64 = digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| digits.parse().ok())
                .flatten()
                .ok_or_else(|| format!("invalid Content-Length {text:?}"))?;
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
    fn a_head_arriving_in_pieces_parses_once_whole_whatever_the_split() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: x-a\r\nX-A: 1\r\n\
                    X-B: two words\r\n\r\nabc";
        let head_len = raw.len() - 3;
        for split in 0..raw.len() {
            let mut buf = BytesMut::from(&raw[..split]);
            let first = parse_response_head(&mut buf, false).unwrap();
            assert_eq!(first.is_some(), split >= head_len, "split at {split}");
            if first.is_some() {
                continue;
            }
            assert_eq!(buf.len(), split, "an incomplete head is left as it is");
            buf.extend_from_slice(&raw[split..]);
            let h = parse_response_head(&mut buf, false).unwrap().unwrap();
            assert_eq!(h.framing, RespFraming::Length(3));
            let names: Vec<_> = h.headers.keys().map(|n| n.as_str()).collect();
            assert_eq!(names, ["content-length", "x-b"], "split at {split}");
            assert_eq!(h.headers["x-b"], "two words");
            assert_eq!(&buf[..], b"abc");
        }
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
        let gzip_len = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n";
        let h = parse(gzip_len, false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (RespFraming::ToEof, false));
        assert!(
            h.headers.get(header::CONTENT_LENGTH).is_none(),
            "not framed by it"
        );
        let old_chunked =
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(framing_of(old_chunked), (RespFraming::Chunked, false));
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
    fn headers_that_stop_at_this_hop_never_enter_the_map() {
        let raw = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop, Content-Length\r\n\
                   Keep-Alive: timeout=5\r\nX-Hop: 1\r\nUpgrade: h2c\r\nX-End: 2\r\n\
                   Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        let h = parse(raw, false).unwrap().unwrap();
        let names: Vec<_> = h.headers.keys().map(|n| n.as_str()).collect();
        // Content-Length is protected from `Connection`, but framed both ways it goes.
        assert_eq!(names, ["x-end"]);
        let raw = "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\n";
        let h = parse(raw, false).unwrap().unwrap();
        assert_eq!(h.headers[header::CONTENT_LENGTH], "2");
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
        for bad in ["-1", "+5", "0x10", ""] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            let e = parse(&raw, false).unwrap_err();
            assert!(e.starts_with("invalid Content-Length"), "{bad:?}: {e}");
        }
        let mut te =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \xffchunked\r\n\r\n"[..]);
        let e = parse_response_head(&mut te, false).unwrap_err();
        assert_eq!(e, "invalid Transfer-Encoding value");
        assert!(parse("SSH-2.0-OpenSSH\r\n\r\n", false)
            .unwrap_err()
            .starts_with("invalid response head"));
        let big = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(parse(&big, false)
            .unwrap_err()
            .contains("larger than 64 KiB"));
    }
}
