//! A client's HTTP/1.1 request head: parsed with `httparse` (strict: no obs-fold, no
//! space before a colon, no invalid header), with the framing its body has (RFC 9112
//! §6.3, read strictly, since a proxy that frames a request differently from its
//! origin is how requests get smuggled) and whether the connection persists.

use crate::cause::Cause;
use crate::h1_chunked::Chunked;
use crate::h1_conn::BodyState;
use crate::headers;
use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

/// Header slots kept on the stack; a listener allowing more parses into a vector.
const STACK_HEADERS: usize = sluice_config::DEFAULT_MAX_REQUEST_HEADERS as usize;

/// A listener's bounds on request heads (`listeners[].max_request_*`). The defaults:
/// a 64 KiB head (NGINX's `large_client_header_buffers` is 4 × 8 KiB, HAProxy's
/// buffer 16 KiB), a 16 KiB request line, 100 headers (hyper's default, HAProxy 101).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// A request line longer than this is refused with 414.
    pub line: usize,
    /// A head larger than this is refused with 431.
    pub head: usize,
    /// More headers than this are refused with 431.
    pub headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            line: sluice_config::DEFAULT_MAX_REQUEST_LINE as usize,
            head: sluice_config::DEFAULT_MAX_REQUEST_HEAD as usize,
            headers: STACK_HEADERS,
        }
    }
}

/// A parsed request head, ready to be answered.
#[derive(Debug)]
pub struct ReqHead {
    pub parts: http::request::Parts,
    /// How its body is framed (`Done`: it has none).
    pub body: BodyState,
    /// The client lets the connection take another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100` before it sends its body.
    pub expect_continue: bool,
}

/// Why a head is refused: the answer's status comes from the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub cause: Cause,
    pub detail: String,
}

impl Refusal {
    fn new(cause: Cause, detail: impl Into<String>) -> Self {
        Self {
            cause,
            detail: detail.into(),
        }
    }

    fn bad(detail: impl Into<String>) -> Self {
        Self::new(Cause::BadRequest, detail)
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success the head's bytes are removed from `buf`.
pub fn parse(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<ReqHead>, Refusal> {
    type Slot<'h> = std::mem::MaybeUninit<httparse::Header<'h>>;
    let scanned = if limits.headers <= STACK_HEADERS {
        let mut slots = [const { Slot::uninit() }; STACK_HEADERS];
        scan(buf, limits, &mut slots[..limits.headers])?
    } else {
        let mut slots: Vec<Slot<'_>> = Vec::new();
        slots.resize_with(limits.headers, Slot::uninit);
        scan(buf, limits, &mut slots)?
    };
    match scanned {
        Some(s) => build(buf, s).map(Some),
        None => Ok(None),
    }
}

/// What `scan` found in a complete head: positions in the buffer, so that the head's
/// bytes can be taken over without copying once the parser's borrow of them ends.
struct Scanned {
    len: usize,
    method: Method,
    version: Version,
    target: (usize, usize),
    /// (name at, name length, value at, value length) per header.
    spans: Vec<(usize, usize, usize, usize)>,
    body: BodyState,
    /// The head has a `Content-Length`, to be forwarded as the one value read.
    content_length: bool,
    keep_alive: bool,
    expect_continue: bool,
}

fn scan<'b>(
    buf: &'b [u8],
    limits: &HeadLimits,
    slots: &mut [std::mem::MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Scanned>, Refusal> {
    let mut req = httparse::Request::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            too_large(buf, buf.len(), limits)?;
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                Cause::RequestHeaderTooLarge,
                format!(
                    "more than {} request headers (listeners[].max_request_headers)",
                    limits.headers
                ),
            ))
        }
        Err(e) => return Err(Refusal::bad(format!("invalid request head: {e}"))),
    };
    too_large(buf, len, limits)?;
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Refusal::bad("incomplete request line"));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| Refusal::bad(format!("invalid method {method:?}")))?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let raw: &[httparse::Header<'_>] = req.headers;
    let base = buf.as_ptr() as usize;
    let seen = Seen::of(raw);
    let body = if seen.transfer_encoding || seen.content_length {
        framing(&method, version, raw)?
    } else {
        BodyState::Done
    };
    Ok(Some(Scanned {
        len,
        version,
        target: (target.as_ptr() as usize - base, target.len()),
        keep_alive: if seen.connection {
            persists(raw, version)
        } else {
            version == Version::HTTP_11
        },
        expect_continue: seen.expect
            && version == Version::HTTP_11
            && values(raw, "expect").any(|v| v.trim().eq_ignore_ascii_case("100-continue")),
        spans: raw
            .iter()
            .map(|h| {
                (
                    h.name.as_ptr() as usize - base,
                    h.name.len(),
                    h.value.as_ptr() as usize - base,
                    h.value.len(),
                )
            })
            .collect(),
        body,
        content_length: seen.content_length,
        method,
    }))
}

/// Takes the scanned head off the front of `buf`; the target and the header values
/// share its bytes instead of each being copied.
fn build(buf: &mut BytesMut, s: Scanned) -> Result<ReqHead, Refusal> {
    let head = buf.split_to(s.len).freeze();
    let (at, n) = s.target;
    let target = &head[at..at + n];
    // `admin` or `host:80` would parse as an authority: only CONNECT takes that form
    // (RFC 9112 §3.2); other methods need `/path`, `scheme://host/path` or `*`.
    let has_scheme = || target.windows(3).any(|w| w == b"://");
    if s.method != Method::CONNECT && !(target.starts_with(b"/") || target == b"*" || has_scheme())
    {
        return Err(Refusal::bad(format!(
            "request target {:?} is neither origin-form (/path) nor absolute-form (http://host/path)",
            String::from_utf8_lossy(target)
        )));
    }
    let uri = Uri::from_maybe_shared(head.slice(at..at + n))
        .map_err(|e| Refusal::bad(format!("invalid request target: {e}")))?;
    let mut map = HeaderMap::with_capacity(s.spans.len());
    for (name_at, name_len, value_at, value_len) in s.spans {
        let raw_name = &head[name_at..name_at + name_len];
        let name = HeaderName::from_bytes(raw_name).map_err(|_| {
            Refusal::bad(format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(raw_name)
            ))
        })?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| Refusal::bad(format!("invalid value of header {name}")))?;
        map.append(name, value);
    }
    // Repeated or listed equal values (`5, 5`) are one length: the origin gets that one
    // value, so no two readers of the forwarded head can disagree about it.
    if s.content_length {
        let n = match s.body {
            BodyState::Length(n) => n,
            _ => 0,
        };
        map.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let mut req = Request::new(());
    *req.method_mut() = s.method;
    *req.uri_mut() = uri;
    *req.version_mut() = s.version;
    *req.headers_mut() = map;
    Ok(ReqHead {
        parts: req.into_parts().0,
        body: s.body,
        keep_alive: s.keep_alive,
        expect_continue: s.expect_continue,
    })
}

/// Refuses a head (of `len` bytes so far) that is over the limits: 414 while the
/// request line alone is too long, 431 for the whole head.
fn too_large(buf: &[u8], len: usize, limits: &HeadLimits) -> Result<(), Refusal> {
    let line = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    if line > limits.line {
        return Err(Refusal::new(
            Cause::UriTooLong,
            format!(
                "request line longer than {} bytes (listeners[].max_request_line)",
                limits.line
            ),
        ));
    }
    if len > limits.head {
        return Err(Refusal::new(
            Cause::RequestHeaderTooLarge,
            format!(
                "request head larger than {} bytes (listeners[].max_request_head)",
                limits.head
            ),
        ));
    }
    Ok(())
}

/// Which of the headers that `scan` reads the head has, found in one pass that compares
/// each name at most once: most requests have none but `Connection`, and then the
/// passes over the headers that read them are skipped.
#[derive(Default)]
struct Seen {
    connection: bool,
    content_length: bool,
    expect: bool,
    transfer_encoding: bool,
}

impl Seen {
    fn of(raw: &[httparse::Header<'_>]) -> Self {
        let mut seen = Self::default();
        for h in raw {
            let name = h.name.as_bytes();
            let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
            match name.len() {
                6 => seen.expect |= is("expect"),
                10 => seen.connection |= is("connection"),
                14 => seen.content_length |= is("content-length"),
                17 => seen.transfer_encoding |= is("transfer-encoding"),
                _ => {}
            }
        }
        seen
    }
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
fn persists(raw: &[httparse::Header<'_>], version: Version) -> bool {
    let mut tokens = headers::connection_tokens(values(raw, header::CONNECTION.as_str()));
    if version == Version::HTTP_10 {
        tokens.any(|t| t.eq_ignore_ascii_case("keep-alive"))
    } else {
        !tokens.any(|t| t.eq_ignore_ascii_case("close"))
    }
}

/// RFC 9112 §6.3 for requests, strictly. Every message an origin could frame
/// differently is refused rather than repaired:
/// - `Transfer-Encoding` must be exactly `chunked` (other codings are 501: the origin
///   would not learn of them, since the header stops at this hop), on HTTP/1.1, and
///   never beside a `Content-Length` (NGINX refuses that too);
/// - `Content-Length` must be digits, and equal where repeated.
///
/// A `CONNECT` has no body (RFC 9110 §9.3.6): what follows its head is the tunnel's.
fn framing(
    method: &Method,
    version: Version,
    raw: &[httparse::Header<'_>],
) -> Result<BodyState, Refusal> {
    let te: Vec<&httparse::Header<'_>> = raw
        .iter()
        .filter(|h| {
            h.name
                .eq_ignore_ascii_case(header::TRANSFER_ENCODING.as_str())
        })
        .collect();
    let has_length = raw
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case(header::CONTENT_LENGTH.as_str()));
    if *method == Method::CONNECT {
        return Ok(BodyState::Done);
    }
    if !te.is_empty() {
        if version == Version::HTTP_10 {
            return Err(Refusal::bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if has_length {
            return Err(Refusal::bad(
                "the request has both Content-Length and Transfer-Encoding",
            ));
        }
        let mut codings = Vec::new();
        for h in te {
            let text = std::str::from_utf8(h.value)
                .map_err(|_| Refusal::bad("invalid Transfer-Encoding value"))?;
            codings.extend(text.split(',').map(str::trim));
        }
        // RFC 9112 §6.1: chunked at most once. An origin that undoes it once would
        // read the still-chunked rest as the body's bytes.
        if codings
            .iter()
            .filter(|c| c.eq_ignore_ascii_case("chunked"))
            .count()
            > 1
        {
            return Err(Refusal::bad(format!(
                "Transfer-Encoding {:?} applies chunked more than once",
                codings.join(", ")
            )));
        }
        return match codings.as_slice() {
            [one] if one.eq_ignore_ascii_case("chunked") => Ok(BodyState::Chunked(Chunked::new())),
            [.., last] if last.eq_ignore_ascii_case("chunked") => Err(Refusal::new(
                Cause::NotImplemented,
                format!(
                    "transfer coding {:?} is not supported (only chunked)",
                    codings.join(", ")
                ),
            )),
            _ => Err(Refusal::bad(format!(
                "Transfer-Encoding {:?} does not end in chunked",
                codings.join(", ")
            ))),
        };
    }
    let mut length = None;
    for text in raw
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(header::CONTENT_LENGTH.as_str()))
        .map(|h| std::str::from_utf8(h.value).unwrap_or("x"))
    {
        for part in text.split(',') {
            let digits = part.trim();
            // `parse` would take a sign ("+5"): the RFC allows digits only.
            let n: u64 = digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| digits.parse().ok())
                .flatten()
                .ok_or_else(|| Refusal::bad(format!("invalid Content-Length {text:?}")))?;
            if length.is_some_and(|l| l != n) {
                return Err(Refusal::bad("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        None | Some(0) => BodyState::Done,
        Some(n) => BodyState::Length(n),
    })
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
