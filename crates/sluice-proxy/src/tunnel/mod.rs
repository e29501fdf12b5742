//! Tunnels: a client connection and an upstream one joined byte for byte after a
//! protocol switch (`101` to an HTTP/1.1 Upgrade, e.g. a WebSocket).
//!
//! A tunnel runs in its client connection's task, so it still counts as that
//! listener's open connection (drain, `limits.max_client_connections`). It holds its
//! server slot (`limits.maxconn*`) to its end, and its upstream connection never goes
//! back to the pool. It belongs to no config generation: a reload leaves it alone.
//! On shutdown it is closed last, when the drain time is over ([`Tunnels::close_all`]).

pub mod pump;

use crate::h1_conn::{Raw, H1};
use crate::limit::Slot;
use crate::metrics::{TunnelLabels, TunnelMetrics};
use pump::{End, Moved, Pump, Side};
use sluice_net::ClientStream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// What every tunnel shares: the signal that closes them all.
pub struct Tunnels {
    close: watch::Sender<bool>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Self {
            close: watch::channel(false).0,
        }
    }
}

impl Tunnels {
    /// Closes every open tunnel (and any opened from now on): the drain time is over.
    pub fn close_all(&self) {
        self.close.send_replace(true);
    }

    fn closing(&self) -> watch::Receiver<bool> {
        self.close.subscribe()
    }
}

/// The origin's side of a tunnel: the HTTP/1.1 connection that answered `101`, or the
/// TCP connection a `CONNECT` opened.
pub enum Far {
    H1(H1),
    Tcp(TcpStream),
}

/// A switch the origin agreed to, waiting for the `101` (or the `200` to a `CONNECT`)
/// to be written to the client.
pub struct Pending {
    pub upstream: Far,
    /// Its server slot (`maxconn`), held to the end; a `CONNECT` has none.
    pub slot: Option<Slot>,
    pub labels: TunnelLabels,
    pub idle: Duration,
    close: watch::Receiver<bool>,
    metrics: TunnelMetrics,
}

impl Pending {
    pub fn new(
        (upstream, slot): (Far, Option<Slot>),
        labels: TunnelLabels,
        idle: Duration,
        tunnels: &Tunnels,
        metrics: &TunnelMetrics,
    ) -> Self {
        Self {
            upstream,
            slot,
            labels,
            idle,
            close: tunnels.closing(),
            metrics: metrics.clone(),
        }
    }
}

/// Relays between the client (its socket, and `first`: bytes it sent after its
/// request, already read) and the origin until the tunnel ends; logs and counts it.
pub async fn run(p: Pending, client: ClientStream, first: Vec<u8>) {
    let Pending {
        upstream,
        slot,
        labels,
        idle,
        close,
        metrics,
        ..
    } = p;
    let (mut upstream, to_client) = match upstream {
        Far::H1(h1) => {
            let (raw, first) = h1.into_tunnel();
            (FarEnd::H1(raw), first)
        }
        Far::Tcp(tcp) => (FarEnd::Tcp(tcp), Vec::new()),
    };
    let mut client = ClientEnd(client);
    let handles = metrics.handles(&labels);
    handles.open.inc();
    let started = Instant::now();
    let pump = Pump {
        idle,
        close,
        up_bytes: &handles.up,
        down_bytes: &handles.down,
    };
    let (end, Moved { up, down }) =
        pump::run(&mut client, &mut upstream, first, to_client, pump).await;
    // A side that failed is passed on as a reset, so the other peer knows the tunnel
    // broke instead of ending.
    match end {
        End::Failed(Side::Upstream) => client.0.reset_on_close(),
        End::Failed(Side::Client) => upstream.reset_on_close(),
        _ => {}
    }
    let lasted = started.elapsed();
    handles.open.dec();
    handles.duration.observe(lasted.as_secs_f64());
    metrics.closed(&labels, end.as_str());
    drop(slot);
    tracing::info!(
        route = %labels.route.as_str(),
        backend = %labels.backend.as_str(),
        reason = end.as_str(),
        bytes_up = up,
        bytes_down = down,
        duration_ms = lasted.as_millis() as u64,
        "tunnel closed"
    );
}

/// The origin's side as a byte stream.
enum FarEnd {
    H1(Raw),
    Tcp(TcpStream),
}

impl FarEnd {
    fn reset_on_close(&mut self) {
        match self {
            Self::H1(raw) => raw.reset_on_close(),
            // Best effort: a FIN is still an end.
            Self::Tcp(s) => {
                let _ = s.set_zero_linger();
            }
        }
    }
}

impl AsyncRead for FarEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::H1(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for FarEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::H1(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::H1(s) => Pin::new(s).poll_flush(cx),
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::H1(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The client's socket with a real half-close: the end of the origin's side goes on
/// to the client as a FIN while the client may still send.
struct ClientEnd(ClientStream);

impl AsyncRead for ClientEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().0.poll_close_write(cx)
    }
}
