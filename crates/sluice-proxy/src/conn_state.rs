//! What the request path tells a client connection's driver, and what the driver's
//! timers and the socket's close read back: whether a request is in flight, whether
//! the next request head has begun, and whether the connection must end with a reset.
//!
//! Every change happens while the driver polls hyper's connection (the service, the
//! bodies and the socket are all polled from inside it, in the same task), so the
//! driver reads `changed` right after that poll: no waker, no extra task wake-up per
//! request.

use crate::tunnel::Pending;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Shared by one client connection's driver, its socket wrapper and its requests.
#[derive(Debug, Default)]
pub struct ConnState {
    /// A request is being answered (from its head until its response body is done).
    busy: AtomicBool,
    /// Bytes of a request head arrived while idle (so a timeout is a 408, not silence).
    head_started: AtomicBool,
    /// Responses finished on this connection.
    completed: AtomicU64,
    /// Close with a TCP reset, so a truncated response cannot pass for a complete one.
    abort: AtomicBool,
    /// The last write to the client could not complete (it is not reading).
    write_blocked: AtomicBool,
    /// A write waited longer than `send_timeout`.
    send_timed_out: AtomicBool,
    /// Something the driver's timer depends on changed since it last looked.
    changed: AtomicBool,
    /// The last read of the socket found nothing to read (hyper waits for data).
    read_waiting: AtomicBool,
    /// A protocol switch agreed with the origin, for the driver to run once hyper has
    /// written the `101` and handed the connection over.
    tunnel: TunnelSlot,
}

#[derive(Default)]
struct TunnelSlot(parking_lot::Mutex<Option<Box<Pending>>>);

impl std::fmt::Debug for TunnelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelSlot")
    }
}

impl ConnState {
    /// A request head arrived and is being answered.
    pub fn begin_request(&self) {
        self.busy.store(true, Relaxed);
        self.head_started.store(false, Relaxed);
    }

    /// Its response is finished (or abandoned): the connection is idle again.
    pub fn end_request(&self) {
        self.head_started.store(false, Relaxed);
        self.busy.store(false, Relaxed);
        self.completed.fetch_add(1, Relaxed);
        self.changed.store(true, Relaxed);
    }

    /// The socket read bytes; while idle they are the start of the next request head.
    pub(crate) fn note_read(&self) {
        if !self.busy.load(Relaxed) && !self.head_started.swap(true, Relaxed) {
            self.changed.store(true, Relaxed);
        }
    }

    /// Whether the last read found the socket empty.
    pub(crate) fn set_read_waiting(&self, waiting: bool) {
        if self.read_waiting.load(Relaxed) != waiting {
            self.read_waiting.store(waiting, Relaxed);
        }
    }

    /// Nothing in flight, nothing half-read, nothing left to write, and hyper waits
    /// for the client's next request: the connection's buffers can be let go.
    pub(crate) fn parkable(&self) -> bool {
        self.read_waiting.load(Relaxed)
            && !self.busy.load(Relaxed)
            && !self.head_started.load(Relaxed)
            && !self.write_blocked.load(Relaxed)
    }

    /// The connection becomes a tunnel once hyper has written the `101`.
    pub fn set_tunnel(&self, p: Pending) {
        *self.tunnel.0.lock() = Some(Box::new(p));
    }

    pub(crate) fn take_tunnel(&self) -> Option<Box<Pending>> {
        self.tunnel.0.lock().take()
    }

    /// Makes the connection end with a reset instead of a FIN.
    pub fn abort(&self) {
        self.abort.store(true, Relaxed);
    }

    pub(crate) fn set_write_blocked(&self, blocked: bool) {
        if self.write_blocked.load(Relaxed) != blocked {
            self.write_blocked.store(blocked, Relaxed);
        }
    }

    pub(crate) fn write_blocked(&self) -> bool {
        self.write_blocked.load(Relaxed)
    }

    pub(crate) fn send_timeout(&self) {
        self.send_timed_out.store(true, Relaxed);
        self.abort();
    }

    /// Why a request on this connection ended early, if the connection knows.
    pub fn failure(&self) -> Option<crate::cause::Cause> {
        self.send_timed_out
            .load(Relaxed)
            .then_some(crate::cause::Cause::SendTimeout)
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Relaxed)
    }

    /// Whether anything changed since the last call.
    pub(crate) fn take_changed(&self) -> bool {
        self.changed.load(Relaxed) && self.changed.swap(false, Relaxed)
    }

    pub(crate) fn busy(&self) -> bool {
        self.busy.load(Relaxed)
    }

    pub(crate) fn head_started(&self) -> bool {
        self.head_started.load(Relaxed)
    }

    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Relaxed)
    }
}
