//! HTTP/2 by hand, for the clients no library would be: frames written byte by byte
//! (RFC 9113 §4.1) over a plain TCP connection with prior knowledge (h2c), and a reader
//! that parses the server's frames to see its SETTINGS, RST_STREAMs, responses and
//! GOAWAY (with its error code), or the socket closing. [`crate::H2Client`] is the
//! well-behaved counterpart, to check a listener still serves.
//!
//! The HPACK encoding is the smallest that is valid: static-table indexed fields and
//! literals without indexing, no Huffman, so nothing depends on the encoder's state.
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr) {
//! use sluice_testkit::h2_raw::{self, code, hpack, End};
//! let (mut w, mut r) = h2_raw::connect(addr).await;
//! w.send(&h2_raw::headers(1, &hpack::get("app.test", "/"), true)).await.unwrap();
//! w.send(&h2_raw::rst_stream(1, code::CANCEL)).await.unwrap();
//! let (end, _at) = r.wait_end(std::time::Duration::from_secs(5)).await;
//! assert!(matches!(end, End::StillOpen | End::GoAway(_)));
//! # }
//! ```

use crate::client::CLIENT_TIMEOUT;
use bytes::BytesMut;
use std::{io, net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
    time::Instant,
};

/// What an h2c client with prior knowledge sends first.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS and PING.
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
}

/// Error codes of RST_STREAM and GOAWAY (RFC 9113 §7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// SETTINGS parameters (RFC 9113 §6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// One frame: 9-byte header (24-bit length, type, flags, 31-bit stream id), payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame payload length");
    assert!(len < 1 << 24, "frame payload over 2^24 bytes");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(params.len() * 6);
    for (id, value) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&value.to_be_bytes());
    }
    frame(kind::SETTINGS, 0, 0, &p)
}

pub fn settings_ack() -> Vec<u8> {
    frame(kind::SETTINGS, flag::ACK, 0, &[])
}

pub fn ping(data: [u8; 8]) -> Vec<u8> {
    frame(kind::PING, 0, 0, &data)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(kind::RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// HEADERS carrying `block`, with END_STREAM (a request without a body) if `end_stream`.
/// END_HEADERS is set; for a block continued in CONTINUATION frames use
/// [`headers_open`].
pub fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    let es = if end_stream { flag::END_STREAM } else { 0 };
    frame(kind::HEADERS, es | flag::END_HEADERS, stream, block)
}

/// HEADERS with END_STREAM but without END_HEADERS: CONTINUATION frames must follow.
pub fn headers_open(stream: u32, block: &[u8]) -> Vec<u8> {
    frame(kind::HEADERS, flag::END_STREAM, stream, block)
}

pub fn continuation(stream: u32, block: &[u8], end_headers: bool) -> Vec<u8> {
    let eh = if end_headers { flag::END_HEADERS } else { 0 };
    frame(kind::CONTINUATION, eh, stream, block)
}

/// Minimal HPACK (RFC 7541): static-table indices and literals without indexing.
pub mod hpack {
    /// A request head: `:method GET`, `:scheme http`, `:path`, `:authority`.
    pub fn get(authority: &str, path: &str) -> Vec<u8> {
        // Indexed (§6.1): 2 `:method GET`, 6 `:scheme http`, 4 `:path /`.
        let mut out = vec![0x82, 0x86];
        if path == "/" {
            out.push(0x84);
        } else {
            indexed_name(&mut out, 4, path.as_bytes());
        }
        indexed_name(&mut out, 1, authority.as_bytes()); // 1 `:authority`
        out
    }

    /// A literal field without indexing, new name (§6.2.2): `0x00`, name, value.
    pub fn literal(name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0x00];
        string(&mut out, name.as_bytes());
        string(&mut out, value);
        out
    }

    /// A literal without indexing whose name is static-table entry `index`.
    fn indexed_name(out: &mut Vec<u8>, index: usize, value: &[u8]) {
        int(out, 0x00, 4, index);
        string(out, value);
    }

    /// A string literal, not Huffman-coded (§5.2).
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        int(out, 0x00, 7, s.len());
        out.extend_from_slice(s);
    }

    /// An integer with an N-bit prefix (§5.1); `high` holds the bits above it.
    fn int(out: &mut Vec<u8>, high: u8, prefix: u32, mut v: usize) {
        let max = (1usize << prefix) - 1;
        if v < max {
            out.push(high | v as u8);
            return;
        }
        out.push(high | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }
}

/// A frame the server sent.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// A GOAWAY's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoAway {
    pub last_stream: u32,
    pub code: u32,
    pub debug: String,
}

impl Frame {
    /// The parameters of a SETTINGS frame.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|c| {
                let id = u16::from_be_bytes([c[0], c[1]]);
                (id, u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
            })
            .collect()
    }

    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            kind::RST_STREAM => 0,
            kind::GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn goaway(&self) -> Option<GoAway> {
        if self.kind != kind::GOAWAY || self.payload.len() < 8 {
            return None;
        }
        let p = &self.payload;
        Some(GoAway {
            last_stream: u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff,
            code: self.error_code()?,
            debug: String::from_utf8_lossy(&p[8..]).into_owned(),
        })
    }

    /// The `:status` of a response HEADERS whose block starts with a static-table
    /// indexed status (what h2 sends for 200, 204, 206, 304, 400, 404, 500).
    pub fn status(&self) -> Option<u16> {
        if self.kind != kind::HEADERS {
            return None;
        }
        let statuses = [200, 204, 206, 304, 400, 404, 500];
        let i = self.payload.first()?.checked_sub(0x88)?;
        statuses.get(usize::from(i)).copied()
    }
}

/// How the server's side of a connection ended, as [`H2Reader::wait_end`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    GoAway(GoAway),
    /// FIN without a GOAWAY.
    Closed,
    /// ECONNRESET (or another read error) without a GOAWAY.
    Reset,
    /// Neither within the wait.
    StillOpen,
}

/// Opens an h2c connection: sends the preface and an empty SETTINGS. The halves can be
/// used from different tasks (flood on one, watch the server on the other).
pub async fn connect(addr: SocketAddr) -> (H2Writer, H2Reader) {
    let stream = tokio::time::timeout(CLIENT_TIMEOUT, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("connect to {addr}: no answer within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut w = H2Writer { write };
    let mut hello = PREFACE.to_vec();
    hello.extend(settings(&[]));
    w.send(&hello).await.expect("send the preface");
    let r = H2Reader {
        read,
        buf: BytesMut::new(),
        counts: [0; 10],
        kept: Vec::new(),
    };
    (w, r)
}

/// The writing half: bytes as given, nothing added.
pub struct H2Writer {
    write: OwnedWriteHalf,
}

impl H2Writer {
    /// Writes all of `bytes`; the error if the server closed or reset. Unbounded: a
    /// server that stops reading stalls it (wrap it in a timeout to see back-pressure).
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write.write_all(bytes).await
    }
}

/// The reading half: parses frames, counts them by type, keeps all but SETTINGS and
/// PING acknowledgements (a flood of those is only counted).
pub struct H2Reader {
    read: OwnedReadHalf,
    buf: BytesMut,
    counts: [u64; 10],
    kept: Vec<Frame>,
}

impl H2Reader {
    /// The next frame; `Ok(None)` at a clean close, `Err` on a reset or a frame
    /// header that is not HTTP/2.
    pub async fn next(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let b = self.buf.split_to(9 + len);
                    let f = Frame {
                        kind: b[3],
                        flags: b[4],
                        stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
                        payload: b[9..].to_vec(),
                    };
                    self.count(&f);
                    return Ok(Some(f));
                }
            }
            self.buf.reserve(16 * 1024);
            if self.read.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    fn count(&mut self, f: &Frame) {
        if let Some(c) = self.counts.get_mut(usize::from(f.kind)) {
            *c += 1;
        }
        let ack = matches!(f.kind, kind::SETTINGS | kind::PING) && f.flags & flag::ACK != 0;
        if !ack {
            self.kept.push(f.clone());
        }
    }

    /// Frames of type `kind` received so far.
    pub fn count_of(&self, kind: u8) -> u64 {
        self.counts.get(usize::from(kind)).copied().unwrap_or(0)
    }

    /// Every frame received so far but SETTINGS/PING acknowledgements.
    pub fn frames(&self) -> &[Frame] {
        &self.kept
    }

    /// Reads until the server's first SETTINGS (not an ACK); its parameters.
    pub async fn server_settings(&mut self, wait: Duration) -> Vec<(u16, u32)> {
        let reading = async {
            loop {
                match self.next().await {
                    Ok(Some(f)) if f.kind == kind::SETTINGS && f.flags & flag::ACK == 0 => {
                        return f.settings()
                    }
                    Ok(Some(_)) => {}
                    other => panic!("no SETTINGS from the server: {other:?}"),
                }
            }
        };
        tokio::time::timeout(wait, reading)
            .await
            .unwrap_or_else(|_| panic!("no SETTINGS from the server within {wait:?}"))
    }

    /// Reads (and counts) frames until a GOAWAY, the close, or `wait` running out;
    /// how it ended and when.
    pub async fn wait_end(&mut self, wait: Duration) -> (End, Instant) {
        let reading = async {
            loop {
                match self.next().await {
                    Ok(Some(f)) => {
                        if let Some(g) = f.goaway() {
                            return End::GoAway(g);
                        }
                    }
                    Ok(None) => return End::Closed,
                    Err(_) => return End::Reset,
                }
            }
        };
        let end = tokio::time::timeout(wait, reading)
            .await
            .unwrap_or(End::StillOpen);
        (end, Instant::now())
    }
}
