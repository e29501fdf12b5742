//! One [`FaultOrigin`](super::FaultOrigin) connection: reading the head, misbehaving per
//! the fault, and noticing how the peer lets go.

use super::{Fault, Held, Shared};
use std::{
    io,
    net::{SocketAddr, SocketAddrV4},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest},
    net::TcpStream,
    time::Instant,
};

/// A request head that has not ended by this size is not HTTP: the connection is closed.
const MAX_HEAD: usize = 64 * 1024;
/// [`Fault::ResetAfter`] resets anyway once its send queue has not shrunk for this long.
const DRAIN_STALLED: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    PeerReset,
    /// EOF, any other error, or our own reset.
    Closed,
}

fn ended(error: &io::Error) -> End {
    match error.kind() {
        io::ErrorKind::ConnectionReset => End::PeerReset,
        _ => End::Closed,
    }
}

/// Runs one connection to its end. The socket is gone by the time `held` counts it
/// closed, so a test that saw `closed` rise can rely on it.
pub(super) async fn connection(stream: TcpStream, held: Held) {
    let shared = held.0.clone();
    let end = match shared.fault {
        Fault::NeverRead => never_read(stream).await,
        _ => serve(stream, &shared).await,
    };
    if end == End::PeerReset {
        shared.bump(&shared.resets_seen);
    }
    drop(held);
}

async fn serve(mut stream: TcpStream, shared: &Shared) -> End {
    let head = match read_head(&mut stream).await {
        Ok(head) => head,
        Err(end) => return end,
    };
    // Stored before it is counted, so a test that waited for `heads` finds it.
    shared.head_texts.lock().push(head);
    shared.bump(&shared.heads);
    match &shared.fault {
        Fault::NoResponse | Fault::NeverRead => discard(&mut stream).await,
        Fault::StallAfter { head, body } => match respond(&mut stream, head, body).await {
            Ok(()) => discard(&mut stream).await,
            Err(end) => end,
        },
        Fault::ResetAfter { head, body } => {
            if let Err(end) = respond(&mut stream, head, body).await {
                return end;
            }
            let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
                return End::Closed;
            };
            let early = tokio::select! {
                () = drained(local, peer) => None,
                end = discard(&mut stream) => Some(end),
            };
            match early {
                Some(End::PeerReset) => return End::PeerReset,
                // A FIN: the peer may still be reading what we sent.
                Some(End::Closed) => drained(local, peer).await,
                None => {}
            }
            let _ = stream.set_zero_linger();
            End::Closed
        }
    }
}

/// Reads up to and including the blank line that ends the head; bytes read past it are
/// dropped.
async fn read_head(io: &mut (impl AsyncRead + Unpin)) -> Result<String, End> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = io.read(&mut buf).await.map_err(|e| ended(&e))?;
        if n == 0 {
            return Err(End::Closed);
        }
        // The blank line may straddle two reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + at + 4);
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
        if head.len() > MAX_HEAD {
            return Err(End::Closed);
        }
    }
}

/// Reads and drops everything until the peer closes or resets.
async fn discard(io: &mut (impl AsyncRead + Unpin)) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match io.read(&mut buf).await {
            Ok(0) => return End::Closed,
            Ok(_) => {}
            Err(e) => return ended(&e),
        }
    }
}

async fn respond(stream: &mut TcpStream, head: &[u8], body: &[u8]) -> Result<(), End> {
    let (mut rd, mut wr) = stream.split();
    let write = async {
        wr.write_all(head).await?;
        wr.write_all(body).await
    };
    tokio::select! {
        written = write => written.map_err(|e| ended(&e)),
        // Reading meanwhile notices a peer that lets go while the write is blocked, and
        // keeps a peer still sending its request body from deadlocking against us.
        end = discard(&mut rd) => Err(end),
    }
}

/// [`Fault::NeverRead`]: waits for a reset or a FIN without reading a byte.
async fn never_read(stream: TcpStream) -> End {
    loop {
        let ready = match stream.ready(Interest::READABLE | Interest::ERROR).await {
            Ok(ready) => ready,
            Err(e) => return ended(&e),
        };
        if ready.is_error() || ready.is_read_closed() {
            // Both end the stream; only a reset leaves an error pending on the socket.
            return match stream.take_error() {
                Ok(Some(e)) => ended(&e),
                _ => End::Closed,
            };
        }
        // Only data, which stays unread: forget this readiness, so the next wake-up is
        // the next event rather than a spin on this one.
        let _ = stream.try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
}

/// Waits until the peer has acknowledged everything we wrote, or the send queue has not
/// shrunk for [`DRAIN_STALLED`] (a peer that stopped reading keeps it full for good).
/// No readiness event reports an empty send queue, hence the polling.
async fn drained(local: SocketAddr, peer: SocketAddr) {
    let mut least = u64::MAX;
    let mut progress = Instant::now();
    while let Some(queued) = send_queue(local, peer) {
        if queued == 0 {
            return;
        }
        if queued < least {
            least = queued;
            progress = Instant::now();
        } else if progress.elapsed() >= DRAIN_STALLED {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The connection's `tx_queue` in `/proc/net/tcp` (bytes not sent or not acknowledged
/// yet); `None` if it is not listed there (not Linux, or the connection is gone).
fn send_queue(local: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let (SocketAddr::V4(local), SocketAddr::V4(peer)) = (local, peer) else {
        return None;
    };
    // The kernel prints the address as the in-memory (network-order) u32, in hex.
    let hex = |a: SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (local, peer) = (hex(local), hex(peer));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (l, r, queues) = (fields.next()?, fields.next()?, fields.nth(1)?);
        if l != local || r != peer {
            return None;
        }
        u64::from_str_radix(queues.split(':').next()?, 16).ok()
    })
}
