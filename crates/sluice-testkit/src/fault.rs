//! A raw-TCP origin that misbehaves on purpose, for tests of a proxy against broken origins.
//!
//! [`FaultOrigin::start`] listens on `127.0.0.1:0` and treats every connection the same
//! way, per its [`Fault`]. It speaks just enough HTTP/1.1 to read a request head (up to
//! the blank line, kept raw in [`FaultOrigin::heads`]); anything after the head (a request
//! body, a second request) is read and discarded.
//!
//! # Faults
//!
//! | fault | reads | writes | ends when | notices of the peer |
//! | --- | --- | --- | --- | --- |
//! | [`NoResponse`](Fault::NoResponse) | the head, then discards | nothing | the peer closes or resets | FIN, reset |
//! | [`StallAfter`](Fault::StallAfter) | the head, then discards (also while writing) | `head`, `body`, then nothing | the peer closes or resets | FIN, reset |
//! | [`ResetAfter`](Fault::ResetAfter) | the head, then discards | `head`, `body` | it resets, once the peer has acknowledged every byte | a FIN or reset that comes first |
//! | [`NeverRead`](Fault::NeverRead) | nothing, with a 4 KiB receive buffer | nothing | the peer resets, or its FIN gets through | reset; FIN only if everything the peer sent fits the receive buffer |
//!
//! Every connection task keeps polling its socket while it hangs, so `closed` rises as
//! soon as the peer lets go of the connection: that is what tests assert on. A peer that
//! only half-closes (shuts down writing, keeps reading) counts as closed too, and the
//! origin then closes its side.
//!
//! **NeverRead** cannot see a FIN in the byte stream, since it never reads; it watches
//! the socket's readiness instead: a reset shows as an error (`ECONNRESET` pending), a FIN
//! as read-closed. But a FIN travels behind the peer's data: once the origin's receive
//! buffer is full, the peer's kernel holds the rest *and the FIN* (zero window), so a
//! peer that closes normally with unsent data is never noticed (its kernel keeps probing
//! for minutes). Only an abortive close (`SO_LINGER` 0, which sends an RST at once) is.
//! A peer that sent a few KiB at most and then closes is noticed either way.
//!
//! **ResetAfter** resets with `SO_LINGER` 0, and an abortive close discards whatever the
//! kernel has not sent yet. So it first waits until the peer has acknowledged every byte
//! (the connection's send queue in `/proc/net/tcp` is empty), giving up once that queue
//! has not shrunk for 500 ms: a peer that stopped reading then loses the rest.
//!
//! # Counters
//!
//! See [`FaultStats`]: `accepted`, `heads`, `open`, `closed`, `resets_seen`; wait on them
//! with [`FaultOrigin::wait_until`].

use crate::{body::generated_bytes, wait};
use parking_lot::Mutex;
use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::Notify,
    task::{JoinHandle, JoinSet},
};

/// `SO_RCVBUF` for [`Fault::NeverRead`] (Linux doubles it): small, so the peer's writes
/// block after a few KiB.
const NEVER_READ_RCVBUF: u32 = 4 * 1024;

/// How a [`FaultOrigin`] treats every connection; see the [module docs](self) for what
/// each can observe.
#[derive(Clone)]
pub enum Fault {
    /// Reads the request head, then never answers; keeps reading (and discarding) so it
    /// notices when the peer closes or resets.
    NoResponse,
    /// Reads the head, writes `head` (raw bytes, e.g.
    /// `"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"`) and then `body` (raw, may be
    /// empty), then sends nothing more; keeps reading and discarding to notice the peer
    /// closing.
    StallAfter { head: Vec<u8>, body: Vec<u8> },
    /// Reads the head, writes `head` then `body`, then resets the connection (`SO_LINGER`
    /// 0, then close: the peer gets an RST, not a FIN).
    ResetAfter { head: Vec<u8>, body: Vec<u8> },
    /// Accepts and never reads a byte, so the peer's writes block once the 4 KiB receive
    /// buffer is full; holds the connection until the peer resets it (or its FIN gets
    /// through, see the module docs).
    NeverRead,
}

impl Fault {
    /// [`Fault::StallAfter`]: `200 OK` with `Content-Length: content_length`, then the
    /// first `sent` bytes of the [`crate::body`] pattern.
    pub fn stall_body(content_length: u64, sent: usize) -> Fault {
        let (head, body) = sized(content_length, sent);
        Fault::StallAfter { head, body }
    }

    /// [`Fault::ResetAfter`]: `200 OK` with `Content-Length: content_length`, the first
    /// `sent` pattern bytes, then a reset.
    pub fn reset_body(content_length: u64, sent: usize) -> Fault {
        let (head, body) = sized(content_length, sent);
        Fault::ResetAfter { head, body }
    }

    /// [`Fault::StallAfter`]: `200 OK` with `Transfer-Encoding: chunked` and one chunk of
    /// `sent` pattern bytes (none if `sent` is 0: a zero-size chunk would end the body).
    pub fn stall_chunked(sent: usize) -> Fault {
        let (head, body) = one_chunk(sent);
        Fault::StallAfter { head, body }
    }

    /// [`Fault::ResetAfter`]: `200 OK` with `Transfer-Encoding: chunked`, one chunk of
    /// `sent` pattern bytes (none if `sent` is 0), then a reset.
    pub fn reset_chunked(sent: usize) -> Fault {
        let (head, body) = one_chunk(sent);
        Fault::ResetAfter { head, body }
    }
}

fn sized(content_length: u64, sent: usize) -> (Vec<u8>, Vec<u8>) {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {content_length}\r\n\r\n");
    (head.into_bytes(), generated_bytes(sent))
}

fn one_chunk(sent: usize) -> (Vec<u8>, Vec<u8>) {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut body = Vec::new();
    if sent > 0 {
        body.extend_from_slice(format!("{sent:x}\r\n").as_bytes());
        body.extend_from_slice(&generated_bytes(sent));
        body.extend_from_slice(b"\r\n");
    }
    (head, body)
}

impl fmt::Debug for Fault {
    // The body can be megabytes: show its length, not its bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, head, body) = match self {
            Fault::NoResponse => return f.write_str("NoResponse"),
            Fault::NeverRead => return f.write_str("NeverRead"),
            Fault::StallAfter { head, body } => ("StallAfter", head, body),
            Fault::ResetAfter { head, body } => ("ResetAfter", head, body),
        };
        f.debug_struct(name)
            .field("head", &String::from_utf8_lossy(head))
            .field("body_len", &body.len())
            .finish()
    }
}

/// A snapshot of a [`FaultOrigin`]'s counters, for `assert_eq!` and
/// [`FaultOrigin::wait_until`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Request heads read in full (always 0 for [`Fault::NeverRead`]).
    pub heads: u64,
    /// Connections still held: `accepted - closed`.
    pub open: u64,
    /// Connections that ended: the peer's FIN (EOF), a reset, another error, or the
    /// origin's own reset ([`Fault::ResetAfter`]). Counted once the origin's socket is
    /// closed.
    pub closed: u64,
    /// Connections the peer reset (`ECONNRESET` on a read or write, or pending on a
    /// [`Fault::NeverRead`] socket); each is in `closed` too.
    pub resets_seen: u64,
}

/// A running fault origin. Stops, and drops every connection, when dropped.
pub struct FaultOrigin {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

struct Shared {
    fault: Fault,
    accepted: AtomicU64,
    heads: AtomicU64,
    closed: AtomicU64,
    resets_seen: AtomicU64,
    head_texts: Mutex<Vec<String>>,
    changed: Notify,
}

impl FaultOrigin {
    /// Listens on `127.0.0.1:0` and treats every connection per `fault`.
    pub async fn start(fault: Fault) -> FaultOrigin {
        let socket = TcpSocket::new_v4().expect("fault origin socket");
        if matches!(fault, Fault::NeverRead) {
            // Before listen: accepted sockets inherit it, and the window the handshake
            // announces is then small from the start.
            socket
                .set_recv_buffer_size(NEVER_READ_RCVBUF)
                .expect("fault origin SO_RCVBUF");
        }
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind fault origin");
        let listener = socket.listen(1024).expect("fault origin listen");
        let addr = listener.local_addr().expect("fault origin local addr");
        let shared = Arc::new(Shared {
            fault,
            accepted: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            resets_seen: AtomicU64::new(0),
            head_texts: Mutex::new(Vec::new()),
            changed: Notify::new(),
        });
        let accept_task = tokio::spawn(accept(listener, shared.clone()));
        FaultOrigin {
            shared,
            addr,
            accept_task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as a backend `servers` entry: `127.0.0.1:PORT`.
    pub fn server_spec(&self) -> String {
        self.addr.to_string()
    }

    /// All counters at once.
    pub fn stats(&self) -> FaultStats {
        let s = &self.shared;
        // Each connection bumps accepted, heads, resets_seen, closed in that order; loading
        // them in reverse keeps a snapshot consistent (resets_seen <= closed <= accepted).
        let resets_seen = s.resets_seen.load(SeqCst);
        let closed = s.closed.load(SeqCst);
        let heads = s.heads.load(SeqCst);
        let accepted = s.accepted.load(SeqCst);
        FaultStats {
            accepted,
            heads,
            open: accepted - closed,
            closed,
            resets_seen,
        }
    }

    /// Every request head received, raw (lossy UTF-8, ending with the blank line's
    /// `\r\n\r\n`), in the order they were read.
    pub fn heads(&self) -> Vec<String> {
        self.shared.head_texts.lock().clone()
    }

    /// Waits (at most [`wait::DEFAULT_WAIT`]) until `condition` holds for the counters;
    /// panics otherwise. E.g. `origin.wait_until(|s| s.heads == 1 && s.open == 0).await`.
    pub async fn wait_until(&self, condition: impl Fn(&FaultStats) -> bool) {
        self.wait_until_within(wait::DEFAULT_WAIT, condition).await;
    }

    /// [`FaultOrigin::wait_until`] with an explicit timeout.
    pub async fn wait_until_within(
        &self,
        timeout: Duration,
        condition: impl Fn(&FaultStats) -> bool,
    ) {
        if !wait::until(&self.shared.changed, timeout, || condition(&self.stats())).await {
            panic!(
                "fault origin ({:?}) condition not met within {timeout:?}; counters: {:?}",
                self.shared.fault,
                self.stats()
            );
        }
    }
}

impl fmt::Debug for FaultOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultOrigin")
            .field("server", &self.server_spec())
            .field("fault", &self.shared.fault)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for FaultOrigin {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection task.
        self.accept_task.abort();
    }
}

impl Shared {
    fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, SeqCst);
        self.changed.notify_waiters();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off briefly instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        conns.spawn(conn::connection(stream, Held::new(&shared)));
        while conns.try_join_next().is_some() {}
    }
}

/// Counts a connection accepted, and closed when dropped: however its task ends, even
/// aborted.
struct Held(Arc<Shared>);

impl Held {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.bump(&shared.accepted);
        Self(shared.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.bump(&self.0.closed);
    }
}

mod conn;
#[cfg(test)]
mod tests;
