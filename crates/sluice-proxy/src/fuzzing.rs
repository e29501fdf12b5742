//! Entry points for the fuzz targets in `fuzz/` (not an API): the steps of the request
//! path that involve no socket, run as the proxy runs them.

use crate::client_h1::head::{self, HeadLimits};
use crate::h1_conn::BodyState;
use crate::h1_wire::{self, ReqFraming};
use crate::runtime::Runtime;
use bytes::BytesMut;

/// What an HTTP/1.1 request becomes on its way upstream.
#[derive(Debug)]
pub struct Forwarded {
    /// The bytes the origin is sent: head and body, framed as sluice frames them.
    pub wire: Vec<u8>,
    /// The request body as sluice read it from the client.
    pub body: Vec<u8>,
    /// The client's bytes the request used (head and body); the rest is the next one.
    pub used: usize,
}

/// Reads one request from `input` with the client side's parser and body decoder,
/// prepares its head for the upstream hop and encodes it with the upstream writer.
/// `None`: refused (a 4xx the client would get), incomplete, or a CONNECT.
pub fn forward_h1(input: &[u8], limits: &HeadLimits) -> Option<Forwarded> {
    let mut buf = BytesMut::from(input);
    let h = head::parse(&mut buf, limits).ok()??;
    let mut parts = h.parts;
    if parts.method == http::Method::CONNECT {
        return None;
    }
    let host = crate::head::request_host(&parts).ok()?;
    let mut body = Vec::new();
    let chunked = match h.body {
        BodyState::Done => false,
        BodyState::Length(n) => {
            let n = usize::try_from(n).ok()?;
            if buf.len() < n {
                return None;
            }
            body.extend_from_slice(&buf.split_to(n));
            false
        }
        BodyState::Chunked(mut c) => {
            while !c.is_done() {
                match c.decode(&mut buf).ok()? {
                    Some(data) => body.extend_from_slice(&data),
                    None if c.is_done() => break,
                    None => return None,
                }
            }
            true
        }
        BodyState::ToEof => return None,
    };
    let used = input.len() - buf.len();
    crate::head::prepare_upstream_head(&mut parts, sluice_net::ClientAddr::Unix, false, &host);
    // As `upstream::h1::send` decides: a body the client framed by length keeps that
    // length; a chunked one is re-chunked; none, none.
    let framing = if !chunked && body.is_empty() {
        ReqFraming::None
    } else if parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        ReqFraming::Length
    } else {
        ReqFraming::Chunked
    };
    let mut wire = Vec::new();
    h1_wire::encode_request_head(
        &mut wire,
        &parts.method,
        &parts.uri,
        &parts.headers,
        framing,
    );
    match framing {
        ReqFraming::None => {}
        ReqFraming::Length => wire.extend_from_slice(&body),
        ReqFraming::Chunked => {
            h1_wire::encode_chunk(&mut wire, &body);
            wire.extend_from_slice(h1_wire::LAST_CHUNK);
        }
    }
    Some(Forwarded { wire, body, used })
}

/// The route a request for `host_header` and `path` takes on `rt`, as the proxy
/// looks it up: (its host normalised, the route's path prefix).
pub fn route(rt: &Runtime, host_header: &str, path: &str) -> Option<(String, String)> {
    let host = crate::router::normalize_host(host_header);
    let r = rt.router.find(&host, path, &http::HeaderMap::new())?;
    Some((host.into_owned(), r.prefix.clone()))
}
