//! HTTP/2 upstream connections, shared in sluice-pool's [`SharedPool`]: a request
//! takes a stream on the least-loaded live connection under `max_concurrent_streams`;
//! another connection is opened only when all are full.

use crate::backend::{Backend, Server};
use crate::req_body::ReqBody;
use hyper::client::conn::http2;
use sluice_pool::{Multiplexed, SharedPool, Stream};

/// hyper's send half of one HTTP/2 connection, as the pool sees it.
pub struct H2Sender(pub http2::SendRequest<ReqBody>);

impl Multiplexed for H2Sender {
    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
}

pub type H2Pool = SharedPool<H2Sender>;

/// A request's claim on a stream of a shared connection; released on drop.
pub struct H2Stream(Stream<H2Sender>);

impl H2Stream {
    pub fn sender(&self) -> http2::SendRequest<ReqBody> {
        self.0.conn().0.clone()
    }

    /// No new streams on this connection (it failed a request, e.g. after GOAWAY);
    /// streams in flight finish.
    pub fn retire(&self) {
        self.0.retire();
    }
}

/// A stream to `server` on a connection of the pool, if one has room.
pub fn checkout(pool: &H2Pool, backend: &Backend, server: &Server) -> Option<H2Stream> {
    let s = &backend.settings;
    let (stream, active) = pool.checkout(
        &server.key,
        &s.policy,
        s.max_streams,
        &backend.metrics.h2_streams_tally,
    )?;
    backend.metrics.h2_per_conn.observe(active as f64);
    Some(H2Stream(stream))
}
