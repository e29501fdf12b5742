//! The client socket as the HTTP/1.1 server side uses it: a write that waits longer
//! than `send_timeout` for a client that does not read fails the connection, and an
//! aborted connection is closed with a reset. A parked connection or a tunnel takes
//! the bare socket ([`ClientIo::into_stream`]).

use crate::conn_state::ConnState;
use crate::idle::IdleTimer;
use sluice_net::ClientStream;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct ClientIo {
    /// Always `Some` until [`ClientIo::into_stream`] takes it (an `Option` because the
    /// `Drop` below forbids moving a field out).
    stream: Option<ClientStream>,
    state: Arc<ConnState>,
    send: IdleTimer,
}

impl ClientIo {
    pub fn new(stream: ClientStream, state: Arc<ConnState>, send_timeout: Duration) -> Self {
        Self {
            stream: Some(stream),
            state,
            send: IdleTimer::new(send_timeout),
        }
    }

    /// The socket alone, for a parked connection or a tunnel (not aborted: only an
    /// idle or switched connection gets here).
    pub fn into_stream(mut self) -> Option<ClientStream> {
        self.stream.take()
    }

    fn stream(&mut self) -> io::Result<Pin<&mut ClientStream>> {
        match &mut self.stream {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "client socket already handed over",
            )),
        }
    }

    /// Sends our FIN now (a lingering close reads on after it).
    pub fn poll_close_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Some(s) => s.poll_close_write(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Tracks a write: done (progress), or waiting for the client to read, which may
    /// last at most `send_timeout`.
    fn write_polled<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.send.progress();
            return polled;
        }
        match self.send.poll_expired(cx) {
            Poll::Ready(()) => {
                self.state.send_timeout();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client read nothing for {:?} (send_timeout)",
                        self.send.limit()
                    ),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = match this.stream() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        this.write_polled(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = match this.stream() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => return Poll::Ready(Err(e)),
        };
        this.write_polled(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = match this.stream() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => return Poll::Ready(Err(e)),
        };
        this.write_polled(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for ClientIo {
    fn drop(&mut self) {
        if let Some(s) = &self.stream {
            if self.state.aborted() {
                s.reset_on_close();
            }
        }
    }
}
