//! One client connection's socket and read buffer, and the request body read from
//! them.
//!
//! While a request is in flight its body and the connection's driver both use the
//! connection: the body reads (from whichever task the upstream exchange polls it in:
//! the request's own for HTTP/1.1, hyper's for HTTP/2), the driver writes the
//! response (which may start before the upload ends). Hence the lock, only ever held
//! for one non-blocking poll. Only one side reads at a time: the body until it ends,
//! then the driver (tokio keeps one reader's waker per socket, so two readers would
//! lose wake-ups).

use crate::client_io::ClientIo;
use crate::error::ClientBodyError;
use crate::h1_conn::BodyState;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

/// How much a read asks for at least (one 8 KiB buffer, like hyper's first one).
const READ_CHUNK: usize = 8 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Bytes of a pipelined request read ahead while the current one is answered; the
/// rest waits in the socket until its turn.
const READ_AHEAD: usize = 64 * 1024;

pub struct Wire {
    pub io: ClientIo,
    /// Read and not consumed yet: the rest of a head, body bytes, a pipelined request.
    pub buf: BytesMut,
    /// What is left of the current request's body.
    pub body: BodyState,
    /// Bytes of the `100 Continue` still owed before the body is read (`Expect`).
    continue_left: usize,
    /// The client sent its FIN.
    pub eof: bool,
}

pub type Shared = Arc<Mutex<Wire>>;

impl Wire {
    pub fn new(io: ClientIo) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            body: BodyState::Done,
            continue_left: 0,
            eof: false,
        }
    }

    /// A new request's body begins; `expect_continue`: owe the client a `100` first.
    pub fn begin_body(&mut self, body: BodyState, expect_continue: bool) {
        self.body = body;
        self.continue_left = if expect_continue && !body.is_end() {
            CONTINUE.len()
        } else {
            0
        };
    }

    /// The response went out first: the `100` is no longer owed.
    pub fn forget_continue(&mut self) {
        self.continue_left = 0;
    }

    /// Reads what the client sent into `buf`; `Ok(0)` is EOF (also remembered).
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        let polled = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.buf
        ));
        // A failed socket reads nothing more either.
        if !matches!(polled, Ok(n) if n > 0) {
            self.eof = true;
        }
        Poll::Ready(polled)
    }

    /// Watches the client while its request is answered (once its body is read): for
    /// its close, and for bytes of a pipelined request, kept for later (up to a
    /// head's worth). True when the client is gone: its FIN (unless `half_close`: it
    /// may still read) or a failed socket.
    pub fn poll_client_gone(&mut self, cx: &mut Context<'_>, half_close: bool) -> bool {
        while self.body.is_end() && !self.eof && self.buf.len() < READ_AHEAD {
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) => return !half_close,
                Poll::Ready(Err(_)) => return true,
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => break,
            }
        }
        false
    }

    /// A read buffer with nothing in it is let go: an idle connection holds none.
    pub fn release_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// The next piece of the request body; `None` at its end.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ClientBodyError>>> {
        loop {
            match &mut self.body {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(0) => {
                    self.body = BodyState::Done;
                    return Poll::Ready(None);
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
                        self.body = BodyState::Done;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // Its framing is lost: the connection cannot take another request.
                        self.eof = true;
                        return Poll::Ready(Some(Err(ClientBodyError::Malformed(e))));
                    }
                },
                BodyState::Length(_) | BodyState::ToEof => {}
            }
            if self.eof {
                return Poll::Ready(Some(Err(ClientBodyError::Closed)));
            }
            if self.continue_left > 0 {
                if let Err(e) = ready!(self.poll_continue(cx)) {
                    tracing::debug!(error = %e, "writing 100 Continue failed");
                    return Poll::Ready(Some(Err(ClientBodyError::Closed)));
                }
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) | Err(_) => return Poll::Ready(Some(Err(ClientBodyError::Closed))),
                Ok(_) => {}
            }
        }
    }

    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.continue_left > 0 {
            let from = CONTINUE.len() - self.continue_left;
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &CONTINUE[from..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.continue_left -= n;
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

/// A client's request body, read from its connection as the exchange asks for it.
#[derive(Debug)]
pub struct WireBody {
    wire: Option<Shared>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("buffered", &self.buf.len())
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl WireBody {
    pub fn empty() -> Self {
        Self { wire: None }
    }

    /// The body of the request whose head was just read from `wire`.
    pub fn new(wire: &Shared) -> Self {
        Self {
            wire: Some(wire.clone()),
        }
    }
}

impl Body for WireBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let Some(wire) = &self.wire else {
            return Poll::Ready(None);
        };
        wire.lock()
            .poll_body(cx)
            .map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.wire.as_ref().is_none_or(|w| w.lock().body.is_end())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.wire {
            None => SizeHint::with_exact(0),
            Some(w) => w.lock().body.size_hint(),
        }
    }
}
