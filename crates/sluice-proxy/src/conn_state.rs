//! What the request path tells a client connection's driver, and what the driver's
//! timers and the socket's close read back: whether a request is in flight, whether
//! the next request head has begun, and whether the connection must end with a reset.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use tokio::sync::Notify;

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
    /// Wakes the driver when it must re-arm its timer.
    pub(crate) changed: Notify,
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
        self.changed.notify_one();
    }

    /// The socket read bytes; while idle they are the start of the next request head.
    pub(crate) fn note_read(&self) {
        if !self.busy.load(Relaxed) && !self.head_started.swap(true, Relaxed) {
            self.changed.notify_one();
        }
    }

    /// Makes the connection end with a reset instead of a FIN.
    pub fn abort(&self) {
        self.abort.store(true, Relaxed);
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Relaxed)
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
