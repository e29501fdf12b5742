//! Stream enums so one connection type serves every transport without boxing.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Forwards AsyncRead/AsyncWrite to whichever variant is live (all variants are Unpin).
macro_rules! delegate_io {
    ($ty:ident { $($variant:ident),+ }) => {
        delegate_io!($ty { $($variant),+ } shutdown: forward);
    };
    (@shutdown forward $ty:ident { $($variant:ident),+ } $self:ident $cx:ident) => {
        match $self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_shutdown($cx),)+ }
    };
    (@shutdown noop $ty:ident { $($variant:ident),+ } $self:ident $cx:ident) => {{
        let _ = ($self, $cx);
        Poll::Ready(Ok(()))
    }};
    ($ty:ident { $($variant:ident),+ } shutdown: $shutdown:ident) => {
        impl AsyncRead for $ty {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_read(cx, buf),)+ }
            }
        }
        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_write(cx, buf),)+ }
            }
            fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_write_vectored(cx, bufs),)+ }
            }
            fn is_write_vectored(&self) -> bool {
                match self { $($ty::$variant(s) => s.is_write_vectored(),)+ }
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_flush(cx),)+ }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                delegate_io!(@shutdown $shutdown $ty { $($variant),+ } self cx)
            }
        }
    };
}

/// A client connection accepted by a listener.
///
/// Its `poll_shutdown` does nothing: hyper shuts a client connection down only right
/// before dropping it, and the `close()` on drop sends the same FIN. That saves one
/// syscall per connection for close-per-request clients (the PHP case). Anything that
/// needs a real half-close (tunnels) must use the inner socket.
///
/// A TLS connection's `poll_shutdown` does nothing either: a close without
/// `close_notify` is what HAProxy and NGINX do for HTTP/1.1 too, and every client
/// takes the framing (length, chunks) as the end, not the alert.
#[derive(Debug)]
pub enum ClientStream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}
delegate_io!(ClientStream { Tcp, Unix, Tls } shutdown: noop);

impl ClientStream {
    /// Makes the coming close send a TCP reset (SO_LINGER 0) instead of a FIN: the
    /// peer sees the connection aborted, not ended, and unsent data is discarded.
    /// Unix sockets have no reset; they just close.
    pub fn reset_on_close(&self) {
        match self {
            Self::Tcp(s) => linger_zero(s),
            Self::Tls(s) => linger_zero(s.get_ref().0),
            Self::Unix(_) => {}
        }
    }

    /// A real half-close (the FIN goes out now), unlike `poll_shutdown`: a tunnel passes
    /// each side's end on to the other while the other direction goes on.
    pub fn poll_close_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            // close_notify, then the FIN.
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    /// Ready once the socket has something to read (data, or the peer's FIN or
    /// reset), without reading it: a parked connection waits this way with no buffer.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_read_ready(cx),
            Self::Unix(s) => s.poll_read_ready(cx),
            // A read that returned `Pending` left no whole record in rustls's buffer:
            // the next plaintext needs more bytes from the socket.
            Self::Tls(s) => s.get_ref().0.poll_read_ready(cx),
        }
    }
}

/// A connected upstream socket before (or without) TLS.
#[derive(Debug)]
pub enum PlainStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}
delegate_io!(PlainStream { Tcp, Unix });

/// An upstream connection, ready for HTTP.
#[derive(Debug)]
pub enum UpstreamStream {
    Plain(PlainStream),
    Tls(Box<tokio_rustls::client::TlsStream<PlainStream>>),
}
delegate_io!(UpstreamStream { Plain, Tls });

impl UpstreamStream {
    /// See [`ClientStream::reset_on_close`]: for abandoning an exchange mid-way, so the
    /// kernel drops what is queued for the origin at once instead of holding it.
    pub fn reset_on_close(&self) {
        let plain = match self {
            Self::Plain(p) => p,
            Self::Tls(s) => s.get_ref().0,
        };
        if let PlainStream::Tcp(s) = plain {
            linger_zero(s);
        }
    }

    /// The ALPN protocol the server selected, if TLS negotiated one.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }
}

fn linger_zero(s: &TcpStream) {
    // Best effort: if it fails the socket closes with a FIN, which is still a close.
    let _ = socket2::SockRef::from(s).set_linger(Some(std::time::Duration::ZERO));
}
