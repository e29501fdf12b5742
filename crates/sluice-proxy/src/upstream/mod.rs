//! Getting an upstream connection for one request: an idle HTTP/1.1 connection from
//! the pool, a stream on a shared HTTP/2 connection, or a new connection (connect,
//! TLS, and for HTTP/2 hyper's handshake).

pub mod h1;
mod h2;
mod open;

pub use crate::h1_conn::H1;
pub use h2::{H2Pool, H2Stream};

use crate::backend::{Backend, H2Opening, Server, PROTO_H1, PROTO_H2};
use crate::cause::Cause;
use crate::error::ProxyError;
use crate::limit::Slot;
use crate::metrics::Metrics;
use crate::passive;
use futures_util::FutureExt;
use sluice_config::Protocol;
use sluice_pool::{Pool, Pooled};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Rounds of "wait for the connection being opened, then take a stream on it" before a
/// request opens one of its own (only when a burst outnumbers the streams it brings).
const H2_OPEN_ROUNDS: usize = 3;

// The HTTP/1.1 connection is moved only on checkout and checkin (a copy of ~250
// bytes); boxing it would not make a request cheaper.
#[allow(clippy::large_enum_variant)]
pub enum Conn {
    H1(Pooled<H1>),
    H2(H2Stream),
}

/// A connection (or stream) in use plus the request's slot; knows its way back. Dropped
/// without [`Upstream::release`], its exchange was abandoned: an HTTP/1.1 connection is
/// then closed at once (its state is unknown), an HTTP/2 stream is reset by hyper.
pub struct Upstream {
    conn: Held,
    pools: Pools,
    /// Dropped after `conn`, so a queued request that gets the slot finds the
    /// connection already back in the pool.
    pub slot: Slot,
    /// Its answer's head was not a failure to passive health: a complete body then
    /// counts as the exchange's success (see `RespBody`).
    pub succeeded: bool,
}

/// The connection of an [`Upstream`]; abandons an HTTP/1.1 one still held when dropped.
struct Held(Option<Conn>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(Conn::H1(pooled)) = &mut self.0 {
            pooled.conn.abandon();
        }
    }
}

impl Upstream {
    pub fn new(conn: Conn, pools: Pools, slot: Slot) -> Self {
        Self {
            conn: Held(Some(conn)),
            pools,
            slot,
            succeeded: true,
        }
    }

    pub fn conn_mut(&mut self) -> Option<&mut Conn> {
        self.conn.0.as_mut()
    }

    /// The HTTP/1.1 connection, when the exchange is on one.
    pub fn h1_mut(&mut self) -> Option<&mut H1> {
        match &mut self.conn.0 {
            Some(Conn::H1(p)) => Some(&mut p.conn),
            _ => None,
        }
    }

    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// After a complete exchange: an HTTP/1.1 connection goes back to the pool (which
    /// closes it if it is dead or worn out, and so do we if its server left).
    pub fn release(mut self) {
        if let Some(Conn::H1(pooled)) = self.conn.0.take() {
            let server = self.slot.member();
            if server.available() {
                server.idle.checkin(pooled);
            }
        }
    }

    /// After a `101`: the HTTP/1.1 connection leaves the pool for good, with the slot
    /// it holds on its server for as long as the tunnel lasts.
    pub fn into_tunnel(mut self) -> Option<(H1, Slot)> {
        match self.conn.0.take() {
            Some(Conn::H1(pooled)) => Some((pooled.conn, self.slot)),
            _ => None,
        }
    }
}

/// Shared connection state of the data path.
#[derive(Clone, Default)]
pub struct Pools {
    pub h1: Pool<H1>,
    pub h2: H2Pool,
}

impl Pools {
    /// Closes the idle connections of a server that went down or left DNS.
    pub fn forget(&self, server: &Server) {
        server.idle.clear();
        self.h2.remove(&server.key);
    }
}

fn wants_h2(backend: &Backend, server: &Server) -> bool {
    match backend.settings.protocol {
        Protocol::Http1 => false,
        // A TLS server that did not take ALPN `h2` gets HTTP/1.1 from then on.
        Protocol::Http2 => server.proto.load(Ordering::Relaxed) != PROTO_H1,
        Protocol::Auto => backend.settings.tls && server.proto.load(Ordering::Relaxed) != PROTO_H1,
    }
}

/// A connection for one request to `server`: pooled or new. `fresh` skips the
/// HTTP/1.1 pool (after a pooled connection turned out dead); `http1` never uses
/// HTTP/2 (an upgrade request, whose connection becomes a tunnel: a new one then
/// offers only `http/1.1` in ALPN). Returns whether it was reused.
pub async fn acquire(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Arc<Backend>,
    server: &Arc<Server>,
    fresh: bool,
    http1: bool,
) -> Result<(Conn, bool), ProxyError> {
    for round in 0..H2_OPEN_ROUNDS {
        if http1 || !wants_h2(backend, server) {
            break;
        }
        let take = || h2::checkout(&pools.h2, backend, server);
        if let Some(s) = take() {
            return Ok((Conn::H2(s), round == 0));
        }
        // One open at a time per server, shared by everyone who needs it: a burst
        // shares the first connection, and when that open fails they all fail at once
        // (one connect timeout in total, not one per waiting request).
        if let Some(s) = opened(pools, metrics, backend, server, take).await? {
            return Ok((Conn::H2(s), round == 0));
        }
    }
    if !fresh {
        while let Some(mut pooled) = server.idle.checkout() {
            // Nothing watches an idle connection: one the origin closed meanwhile is
            // found here, without waiting, and closed.
            if pooled.conn.still_open() {
                pooled.set_idle_tally(&backend.metrics.idle_tally);
                return Ok((Conn::H1(pooled), true));
            }
        }
    }
    // (Under `auto`, a race with the first negotiation can still bring h2 here.)
    new_conn(pools, metrics, backend, server, http1).await
}

/// Waits for the connection `server` is opening (starting the open if none is), so
/// every request that needs one waits for the same connect. The open runs in a task of
/// its own: it finishes (and records its failure against the server, once) even when
/// every request that waited for it has gone.
///
/// `take` is tried again under the lock before a new open starts, and what it gives
/// is returned instead: an open that ended between the caller's own try and the lock
/// has already put its connection in the pool (its task clears the slot after), and
/// without this second look a burst's late waiter would open one more connection.
async fn opened<T>(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Arc<Backend>,
    server: &Arc<Server>,
    take: impl FnOnce() -> Option<T>,
) -> Result<Option<T>, ProxyError> {
    let opening = {
        let mut slot = server.h2_opening.lock();
        match &*slot {
            Some(o) => o.outcome.clone(),
            None => {
                if let Some(t) = take() {
                    return Ok(Some(t));
                }
                let o = spawn_open(pools, metrics, backend, server);
                let outcome = o.outcome.clone();
                *slot = Some(o);
                outcome
            }
        }
    };
    opening.await.map(|()| None)
}

/// Called with the server's `h2_opening` locked.
fn spawn_open(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Arc<Backend>,
    server: &Arc<Server>,
) -> H2Opening {
    static IDS: AtomicU64 = AtomicU64::new(0);
    let id = IDS.fetch_add(1, Ordering::Relaxed);
    let (pools, metrics) = (pools.clone(), metrics.clone());
    let (backend, server) = (backend.clone(), server.clone());
    let task = tokio::spawn(async move {
        let opened = open_into_pool(&pools, &metrics, &backend, &server).await;
        {
            let mut slot = server.h2_opening.lock();
            if slot.as_ref().is_some_and(|o| o.id == id) {
                *slot = None;
            }
        }
        opened.map_err(|mut e| {
            if e.cause.counts_against_server() {
                passive::record(&metrics, &backend, &server, false, || pools.forget(&server));
                e.health_fed = true;
            }
            e
        })
    });
    let outcome = async move {
        task.await.unwrap_or_else(|e| {
            Err(ProxyError::new(
                Cause::UpstreamError,
                format!("the HTTP/2 connection open ended early: {e}"),
            ))
        })
    }
    .boxed()
    .shared();
    H2Opening { id, outcome }
}

/// Opens a connection and speaks what was negotiated: an HTTP/2 one joins the h2
/// pool and yields a stream on it; an HTTP/1.1 one is returned for this request.
async fn new_conn(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
    http1: bool,
) -> Result<(Conn, bool), ProxyError> {
    match open_registered(pools, metrics, backend, server, http1).await? {
        Some(h1) => Ok((Conn::H1(h1), false)),
        None => h2::checkout(&pools.h2, backend, server)
            .map(|s| (Conn::H2(s), false))
            .ok_or_else(|| {
                ProxyError::new(
                    Cause::UpstreamClosed,
                    format!(
                        "new HTTP/2 connection to {} closed at once",
                        server.label.as_str()
                    ),
                )
            }),
    }
}

/// Opens a connection into the pool: HTTP/2 joins the h2 pool, HTTP/1.1 (a server
/// that did not take `h2` in ALPN) goes idle into the HTTP/1.1 pool.
async fn open_into_pool(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
) -> Result<(), ProxyError> {
    if let Some(h1) = open_registered(pools, metrics, backend, server, false).await? {
        server.idle.checkin(h1);
    }
    Ok(())
}

/// Connects and handshakes. HTTP/2 (ALPN `h2` over TLS, or `protocol: http2` on plain
/// TCP) goes into the h2 pool and gives `None`; HTTP/1.1 gives the new connection.
/// Records what the server speaks, for `auto`. `http1`: offer and speak only
/// HTTP/1.1 (a tunnel's connection), which says nothing about the server.
async fn open_registered(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
    http1: bool,
) -> Result<Option<Pooled<H1>>, ProxyError> {
    let (stream, guard) = open::connect(metrics, backend, server, http1).await?;
    if http1 {
        return Ok(Some(open::new_h1(backend, server, stream, guard)));
    }
    let h2 = if backend.settings.tls {
        stream.alpn() == Some(b"h2")
    } else {
        backend.settings.protocol == Protocol::Http2
    };
    if h2 {
        server.proto.store(PROTO_H2, Ordering::Relaxed);
        let conn = open::handshake_h2(backend, server, stream, guard).await?;
        pools.h2.insert(&server.key, conn);
        return Ok(None);
    }
    if backend.settings.protocol != Protocol::Http1 {
        server.proto.store(PROTO_H1, Ordering::Relaxed);
    }
    Ok(Some(open::new_h1(backend, server, stream, guard)))
}

/// Opens a connection for the warm pool: an idle HTTP/1.1 connection, or (for
/// HTTP/2) one connection if the server has none.
pub async fn warm(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Arc<Backend>,
    server: &Arc<Server>,
) -> Result<(), ProxyError> {
    if wants_h2(backend, server) {
        let has_one = || (pools.h2.count(&server.key) > 0).then_some(());
        if has_one().is_some() {
            return Ok(());
        }
        return opened(pools, metrics, backend, server, has_one)
            .await
            .map(drop);
    }
    open_into_pool(pools, metrics, backend, server).await
}
