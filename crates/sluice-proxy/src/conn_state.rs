//! What the request path tells a client connection: that it must end with a reset,
//! why a request on it ended early, and the tunnel it becomes after a protocol switch.

use crate::tunnel::Pending;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Shared by one client connection's driver, its socket wrapper and its requests.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Close with a TCP reset, so a truncated response cannot pass for a complete one.
    abort: AtomicBool,
    /// A write waited longer than `send_timeout`.
    send_timed_out: AtomicBool,
    /// A protocol switch agreed with the origin, for the driver to run once it has
    /// written the `101` (or the `200` to a `CONNECT`).
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
    /// The connection becomes a tunnel once the `101` is written.
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
}
