//! The bytes of a tunnel, both ways, until both sides have ended, one side fails, the
//! tunnel sat idle for its timeout, or sluice closes it.
//!
//! Reads go into a buffer on the stack and are written on at once; only what the
//! other side cannot take right away is kept, on the heap, and no more is read from
//! that side until it has gone. So an idle tunnel holds no buffer at all, and a busy
//! one at most one read's worth per direction.

use prometheus_client::metrics::counter::Counter;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

/// The most read from one side at a time (one TLS record's worth of plaintext).
const READ_MAX: usize = 16 * 1024;

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides sent their end (FIN, close_notify), each passed on to the other.
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// sluice is shutting down and its drain time is over.
    Shutdown,
    /// Reading or writing one side failed (a reset, a TLS error).
    Failed(Side),
}

/// Which end of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

impl End {
    /// For the log and the `sluice_tunnels_closed` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Idle => "idle_timeout",
            Self::Shutdown => "shutdown",
            Self::Failed(Side::Client) => "client_error",
            Self::Failed(Side::Upstream) => "upstream_error",
        }
    }
}

/// Which side of one direction failed.
enum Fail {
    Read,
    Write,
}

/// One direction: what was read and not yet written, and how far its end has got.
#[derive(Default)]
struct Half {
    backlog: Vec<u8>,
    at: usize,
    /// Written since the last flush.
    unflushed: bool,
    /// The reading side ended.
    eof: bool,
    /// ... and the end was passed on (write side shut down): this direction is done.
    shut: bool,
    moved: u64,
}

impl Half {
    /// Bytes that must go out before anything else is read (what a side had sent
    /// along with the exchange that opened the tunnel).
    fn with_backlog(first: Vec<u8>) -> Self {
        Self {
            backlog: first,
            ..Self::default()
        }
    }

    /// Moves bytes from `r` to `w` until either side would wait. `Ready(Ok)` once this
    /// direction is over; `moved` is set when any byte went through.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        count: &Counter,
        moved: &mut bool,
    ) -> Poll<Result<(), Fail>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let wfail = |_: io::Error| Fail::Write;
        loop {
            while self.at < self.backlog.len() {
                let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.backlog[self.at..]))
                    .map_err(wfail)?;
                if n == 0 {
                    return Poll::Ready(Err(Fail::Write));
                }
                self.at += n;
                self.unflushed = true;
            }
            if !self.backlog.is_empty() {
                // Freed, not cleared: an idle tunnel holds no buffer.
                self.backlog = Vec::new();
                self.at = 0;
            }
            if self.unflushed {
                ready!(Pin::new(&mut *w).poll_flush(cx)).map_err(wfail)?;
                self.unflushed = false;
            }
            if self.eof {
                if !self.shut {
                    // A failed half-close still ends this direction.
                    let _ = ready!(Pin::new(&mut *w).poll_shutdown(cx));
                    self.shut = true;
                }
                return Poll::Ready(Ok(()));
            }
            let mut buf = [0u8; READ_MAX];
            let mut rb = ReadBuf::new(&mut buf);
            ready!(Pin::new(&mut *r).poll_read(cx, &mut rb)).map_err(|_| Fail::Read)?;
            let n = rb.filled().len();
            if n == 0 {
                self.eof = true;
                continue;
            }
            *moved = true;
            self.moved += n as u64;
            count.inc_by(n as u64);
            let mut off = 0;
            while off < n {
                match Pin::new(&mut *w).poll_write(cx, &buf[off..n]) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(Fail::Write)),
                    Poll::Ready(Ok(k)) => off += k,
                    Poll::Pending => break,
                }
            }
            self.unflushed = true;
            if off < n {
                self.backlog.extend_from_slice(&buf[off..n]);
            }
        }
    }
}

/// What [`run`] moves and how it is told to stop.
pub struct Pump<'a> {
    /// The idle timeout: no byte either way for this long closes the tunnel.
    pub idle: Duration,
    /// Turns true when the tunnel must close (sluice's drain time is over).
    pub close: watch::Receiver<bool>,
    pub up_bytes: &'a Counter,
    pub down_bytes: &'a Counter,
}

/// Bytes moved: client → upstream, upstream → client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moved {
    pub up: u64,
    pub down: u64,
}

/// Relays between `client` and `upstream`. `to_upstream` and `to_client` are bytes
/// to send first (read ahead while the tunnel was being set up).
pub async fn run<C, U>(
    client: &mut C,
    upstream: &mut U,
    to_upstream: Vec<u8>,
    to_client: Vec<u8>,
    mut pump: Pump<'_>,
) -> (End, Moved)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut up = Half::with_backlog(to_upstream);
    let mut down = Half::with_backlog(to_client);
    let mut last = Instant::now();
    // Moved on only when it fires: a tunnel that keeps moving never touches the timer.
    let sleep = tokio::time::sleep_until(last + pump.idle);
    tokio::pin!(sleep);
    let closing = pump.close.wait_for(|c| *c);
    tokio::pin!(closing);
    let end = poll_fn(|cx| {
        let mut moved = false;
        let up_done = if up.shut {
            true
        } else {
            match up.poll(cx, client, upstream, pump.up_bytes, &mut moved) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(Fail::Read)) => return Poll::Ready(End::Failed(Side::Client)),
                Poll::Ready(Err(Fail::Write)) => return Poll::Ready(End::Failed(Side::Upstream)),
                Poll::Pending => false,
            }
        };
        let down_done = if down.shut {
            true
        } else {
            match down.poll(cx, upstream, client, pump.down_bytes, &mut moved) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(Fail::Read)) => return Poll::Ready(End::Failed(Side::Upstream)),
                Poll::Ready(Err(Fail::Write)) => return Poll::Ready(End::Failed(Side::Client)),
                Poll::Pending => false,
            }
        };
        if up_done && down_done {
            return Poll::Ready(End::Closed);
        }
        if closing.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Shutdown);
        }
        if moved {
            last = Instant::now();
        }
        while sleep.as_mut().poll(cx).is_ready() {
            let due = last + pump.idle;
            if due <= Instant::now() {
                return Poll::Ready(End::Idle);
            }
            sleep.as_mut().reset(due);
        }
        Poll::Pending
    })
    .await;
    let moved = Moved {
        up: up.moved,
        down: down.moved,
    };
    (end, moved)
}

#[cfg(test)]
#[path = "pump_tests.rs"]
mod tests;
