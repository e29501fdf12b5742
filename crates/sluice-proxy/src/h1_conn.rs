//! A pooled HTTP/1.1 upstream connection: the socket and its buffers, driven by the
//! task of the request that has it checked out. It has no task of its own: a request
//! and its response never cross tasks (hyper's client connection cost a task, a
//! dispatch channel and five polls per request). Its own module because servers hold
//! their idle list of these, and the code that opens them needs servers.

use crate::h1_chunked::Chunked;
use crate::h1_wire::RespFraming;
use crate::metrics::GaugeGuard;
use bytes::{Bytes, BytesMut};
use http_body::SizeHint;
use sluice_net::UpstreamStream;
use sluice_pool::Connection;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Room made in the read buffer before each read (hyper's initial buffer size).
const READ_CHUNK: usize = 8 * 1024;

pub struct H1 {
    io: UpstreamStream,
    /// Bytes read from the origin and not consumed yet.
    pub(crate) buf: BytesMut,
    /// Bytes to write to the origin, from `written` on.
    pub(crate) out: Vec<u8>,
    written: usize,
    /// Another request may follow on it: false once the origin said `close`, a body
    /// ran to EOF, or an exchange was cut short.
    reusable: bool,
    /// Close with a reset: an exchange on it was abandoned mid-way.
    reset: bool,
    _source: GaugeGuard,
}

impl H1 {
    pub fn new(io: UpstreamStream, source: GaugeGuard) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            written: 0,
            reusable: true,
            reset: false,
            _source: source,
        }
    }

    /// A connection counted by no source-address gauge. For benches, which fill a
    /// server's idle list over socket pairs.
    #[doc(hidden)]
    pub fn unmetered(io: UpstreamStream) -> Self {
        Self::new(io, GaugeGuard::new(None))
    }

    /// Ends the connection, with a reset when dropped: an exchange on it was abandoned
    /// mid-way (timeout, client gone, failure), so what is queued for the origin is
    /// discarded at once instead of being held for as long as the origin does not read.
    pub fn abandon(&mut self) {
        self.reset = true;
        self.reusable = false;
    }

    /// No further request may use it.
    pub fn retire(&mut self) {
        self.reusable = false;
    }

    /// Whether an idle connection is still usable, checked without waiting: the
    /// origin has not closed it (EOF, reset, TLS close_notify) and sent nothing
    /// unasked. Readiness comes from the runtime's last poll of the socket, so a
    /// connection with no pending event costs no syscall here.
    pub fn still_open(&mut self) -> bool {
        if !self.reusable || !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut probe = [0u8; 1];
        let mut rb = ReadBuf::new(&mut probe);
        match Pin::new(&mut self.io).poll_read(&mut cx, &mut rb) {
            Poll::Pending => true,
            Poll::Ready(_) => {
                self.reusable = false;
                false
            }
        }
    }

    /// Reads what the origin sent into `buf`; `Ok(0)` is EOF.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// Writes all of `out` and flushes it (TLS records included); `out` is then empty.
    pub(crate) fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// The next piece of the response body framed by `body`; `None` at its end. The
    /// error is a detail for the log (the cause is always the origin's body).
    pub fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut BodyState,
    ) -> Poll<Option<Result<Bytes, String>>> {
        loop {
            match body {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(0) => {
                    self.end_of_body(body);
                    continue;
                }
                BodyState::Length(left) if !self.buf.is_empty() => {
                    let n =
                        usize::try_from(*left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
                    *left -= n as u64;
                    return Poll::Ready(Some(Ok(self.buf.split_to(n).freeze())));
                }
                BodyState::Chunked(c) => match c.decode(&mut self.buf) {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(data))),
                    Ok(None) if c.is_done() => {
                        self.end_of_body(body);
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.reusable = false;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                BodyState::ToEof if !self.buf.is_empty() => {
                    return Poll::Ready(Some(Ok(self.buf.split().freeze())));
                }
                BodyState::Length(_) | BodyState::ToEof => {}
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) if *body == BodyState::ToEof => {
                    self.reusable = false;
                    *body = BodyState::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.reusable = false;
                    return Poll::Ready(Some(Err(
                        "the origin closed the connection before the end of the body".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    self.reusable = false;
                    return Poll::Ready(Some(Err(format!("reading the response body: {e}"))));
                }
            }
        }
    }

    /// Bytes after a complete response were not asked for: the connection's framing
    /// can no longer be trusted.
    fn end_of_body(&mut self, body: &mut BodyState) {
        if !self.buf.is_empty() {
            self.reusable = false;
        }
        *body = BodyState::Done;
    }
}

/// An HTTP/1.1 connection after a `101`: a plain byte stream, for a tunnel.
pub struct Raw(H1);

impl H1 {
    /// Leaves HTTP: returns the stream and what the origin sent after the `101`'s head
    /// (already read). Its buffers are freed: an idle tunnel holds none.
    pub fn into_tunnel(mut self) -> (Raw, Vec<u8>) {
        let first = self.buf.to_vec();
        self.buf = BytesMut::new();
        self.out = Vec::new();
        (Raw(self), first)
    }
}

impl Raw {
    /// Closes with a reset when dropped (the tunnel's other side failed).
    pub fn reset_on_close(&mut self) {
        self.0.abandon();
    }
}

impl AsyncRead for Raw {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Raw {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0.io).poll_shutdown(cx)
    }
}

/// Where a response body is: what is left of it, by its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    Length(u64),
    Chunked(Chunked),
    ToEof,
    Done,
}

impl BodyState {
    pub fn new(framing: RespFraming) -> Self {
        match framing {
            RespFraming::Empty => Self::Done,
            RespFraming::Length(n) => Self::Length(n),
            RespFraming::Chunked => Self::Chunked(Chunked::new()),
            RespFraming::ToEof => Self::ToEof,
        }
    }

    pub fn is_end(&self) -> bool {
        matches!(self, Self::Done | Self::Length(0))
    }

    pub fn size_hint(&self) -> SizeHint {
        match self {
            Self::Done => SizeHint::with_exact(0),
            Self::Length(n) => SizeHint::with_exact(*n),
            Self::Chunked(_) | Self::ToEof => SizeHint::default(),
        }
    }
}

impl Connection for H1 {
    fn is_closed(&self) -> bool {
        !self.reusable
    }

    fn probe(&mut self) -> bool {
        self.still_open()
    }
}

impl Drop for H1 {
    fn drop(&mut self) {
        if self.reset {
            self.io.reset_on_close();
        }
    }
}
