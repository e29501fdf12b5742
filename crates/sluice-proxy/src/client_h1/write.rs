//! A response as it goes to an HTTP/1.1 client: the head written from the `http`
//! parts with the framing its body needs, then the body's pieces, queued and written
//! with as few (vectored) writes as they allow.

use bytes::{Buf, Bytes};
use http::header::{self, HeaderValue};
use http::response::Parts;
use http::{StatusCode, Version};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

/// What the request said that shapes its response.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub head: bool,
    /// A `CONNECT`: its 2xx starts a tunnel, so it has no framing at all.
    pub connect: bool,
    pub version: Version,
    /// Both sides let the connection go on after this response.
    pub keep_alive: bool,
}

/// How the response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body bytes (HEAD, 1xx, 204, 304, an empty body).
    None,
    /// As many bytes as its `Content-Length`.
    Length,
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    ToEof,
}

/// The framing of a response to `asked` whose body is `end` (already at its end) or
/// `exact` bytes long if known; sets the headers it needs. Returns the framing and
/// whether the connection persists after it.
pub fn frame(parts: &mut Parts, asked: Asked, end: bool, exact: Option<u64>) -> (Framing, bool) {
    let h = &mut parts.headers;
    // sluice frames the body itself: a coding of another hop never passes.
    h.remove(header::TRANSFER_ENCODING);
    let status = parts.status;
    let mut keep_alive = asked.keep_alive;
    let tunnel =
        status == StatusCode::SWITCHING_PROTOCOLS || (asked.connect && status.is_success());
    let framing = if tunnel
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::None
    } else if asked.head {
        // The length of the body a GET would get, if the origin said so.
        if !h.contains_key(header::CONTENT_LENGTH) {
            if let Some(n) = exact.filter(|_| !end) {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
        }
        Framing::None
    } else if h.contains_key(header::CONTENT_LENGTH) {
        Framing::Length
    } else if end || exact.is_some() {
        h.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(exact.unwrap_or(0)),
        );
        Framing::Length
    } else if asked.version == Version::HTTP_11 {
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::ToEof
    };
    if !h.contains_key(header::DATE) {
        h.insert(header::DATE, crate::clock::http_date());
    }
    if !tunnel {
        if !keep_alive {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        } else if asked.version == Version::HTTP_10 {
            h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        }
    }
    let framing = if framing == Framing::Length && end {
        Framing::None
    } else {
        framing
    };
    (framing, keep_alive)
}

/// The head's bytes: `HTTP/1.1 <status>`, the headers, the blank line.
pub fn encode_head(parts: &Parts) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// Bytes queued for the client, written in order.
#[derive(Default)]
pub struct Sink {
    queue: VecDeque<Bytes>,
    queued: usize,
}

/// More than this queued, the body is not read further until some of it is written.
pub const HIGH_WATER: usize = 64 * 1024;

/// The most slices one vectored write takes.
const MAX_SLICES: usize = 32;

impl Sink {
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.queued += b.len();
            self.queue.push_back(b);
        }
    }

    /// One piece of a chunked body: its size line, the data, the CRLF.
    pub fn push_chunk(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.push(Bytes::from(format!("{:x}\r\n", data.len())));
        self.push(data);
        self.push(Bytes::from_static(b"\r\n"));
    }

    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Writes everything queued (then flushes).
    pub fn poll_write_all<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.queue.is_empty() {
            let n = if self.queue.len() == 1 || !io.is_write_vectored() {
                ready!(Pin::new(&mut *io).poll_write(cx, &self.queue[0]))?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (slot, b) in slices.iter_mut().zip(&self.queue) {
                    *slot = IoSlice::new(b);
                    n += 1;
                }
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        Pin::new(&mut *io).poll_flush(cx)
    }

    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.queue.pop_front();
        }
    }
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
