//! A pooled HTTP/1.1 upstream connection. Its own module because servers hold their
//! idle list of these, and the code that opens them needs servers.

use crate::req_body::ReqBody;
use hyper::client::conn::http1;
use sluice_pool::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::AbortHandle;

/// A pooled HTTP/1.1 client connection: hyper's send half, and the task running its I/O.
pub struct H1 {
    pub tx: http1::SendRequest<ReqBody>,
    pub(crate) task: AbortHandle,
    pub(crate) reset: Arc<AtomicBool>,
}

impl H1 {
    /// A connection from hyper's send half and the task running its I/O. For benches,
    /// which fill a server's idle list over an in-memory pipe instead of a socket.
    #[doc(hidden)]
    pub fn from_parts(tx: http1::SendRequest<ReqBody>, task: AbortHandle) -> Self {
        Self {
            tx,
            task,
            reset: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Ends the connection now, with a reset: an exchange on it was abandoned mid-way
    /// (timeout, client gone, failure), so what is queued for the origin is discarded at
    /// once instead of being held for as long as the origin does not read.
    pub fn abandon(&self) {
        self.reset.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

impl Connection for H1 {
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Drop for H1 {
    /// Nobody can send on it any more: close it now rather than when hyper notices.
    fn drop(&mut self) {
        self.task.abort();
    }
}
