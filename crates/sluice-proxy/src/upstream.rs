//! Getting an upstream connection for one request: an idle HTTP/1.1 connection from
//! the pool, a stream on a shared HTTP/2 connection, or a new connection (connect,
//! TLS, hyper handshake).

use crate::backend::{now_ms, Backend, Server, PROTO_H1, PROTO_H2};
use crate::body::ReqBody;
use crate::error::ProxyError;
use crate::limit::Slot;
use crate::metrics::{ErrnoLabels, Metrics, Name, SourceLabels};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;
use sluice_config::Protocol;
use sluice_net::UpstreamStream;
use sluice_pool::{Connection, Pool, PoolKey, Pooled};
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// How long a just-returned connection may take to become ready for its next request.
const READY_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A pooled HTTP/1.1 client connection (hyper's send half; its I/O runs in a task).
pub struct H1 {
    pub tx: http1::SendRequest<ReqBody>,
}

impl Connection for H1 {
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One HTTP/2 connection shared by concurrent requests.
pub struct H2Conn {
    tx: http2::SendRequest<ReqBody>,
    streams: AtomicUsize,
    requests: AtomicU64,
    created: Instant,
    last_used_ms: AtomicU64,
    /// Worn out (max requests or lifetime): takes no new streams, closes when drained.
    retired: AtomicBool,
}

/// A request's claim on a stream of an [`H2Conn`]; released on drop.
pub struct H2Stream {
    conn: Arc<H2Conn>,
    gauge: Gauge,
}

impl H2Stream {
    pub fn sender(&self) -> http2::SendRequest<ReqBody> {
        self.conn.tx.clone()
    }

    /// No new streams on this connection (it failed a request, e.g. after GOAWAY);
    /// streams in flight finish.
    pub fn retire(&self) {
        self.conn.retired.store(true, Ordering::Relaxed);
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        self.conn.streams.fetch_sub(1, Ordering::Relaxed);
        self.conn.last_used_ms.store(now_ms(), Ordering::Relaxed);
        self.gauge.dec();
    }
}

/// HTTP/2 connections by pool key. A request takes the least-loaded live connection
/// under `max_concurrent_streams`; a new one is opened only when all are full.
#[derive(Default, Clone)]
pub struct H2Pool {
    map: Arc<Mutex<HashMap<PoolKey, Vec<Arc<H2Conn>>>>>,
}

impl H2Pool {
    fn checkout(&self, backend: &Backend, server: &Server) -> Option<H2Stream> {
        let policy = backend.settings.policy;
        let now = Instant::now();
        let mut map = self.map.lock();
        let list = map.get_mut(&server.key)?;
        list.retain(|c| {
            let worn = !policy.max_lifetime.is_zero()
                && now.saturating_duration_since(c.created) >= policy.max_lifetime;
            if worn {
                c.retired.store(true, Ordering::Relaxed);
            }
            !c.tx.is_closed() && !c.retired.load(Ordering::Relaxed)
        });
        let conn = list
            .iter()
            .filter(|c| c.tx.is_ready())
            .min_by_key(|c| c.streams.load(Ordering::Relaxed))
            .filter(|c| c.streams.load(Ordering::Relaxed) < backend.settings.max_streams)?
            .clone();
        let active = conn.streams.fetch_add(1, Ordering::Relaxed) + 1;
        let n = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if policy.max_requests > 0 && n >= policy.max_requests {
            conn.retired.store(true, Ordering::Relaxed);
        }
        drop(map);
        backend.metrics.h2_per_conn.observe(active as f64);
        backend.metrics.h2_streams.inc();
        Some(H2Stream {
            conn,
            gauge: backend.metrics.h2_streams.clone(),
        })
    }

    fn insert(&self, key: &PoolKey, conn: Arc<H2Conn>) {
        self.map.lock().entry(key.clone()).or_default().push(conn);
    }

    /// Live (not closed, not retired) connections for `key`.
    pub fn count(&self, key: &PoolKey) -> usize {
        self.map.lock().get(key).map_or(0, |l| {
            l.iter()
                .filter(|c| !c.tx.is_closed() && !c.retired.load(Ordering::Relaxed))
                .count()
        })
    }

    /// Drops connections that are closed, or idle (no streams) for longer than
    /// `idle_ms`. Dropping the last handle lets hyper close the connection.
    pub fn evict(&self, idle_ms: impl Fn(&PoolKey) -> Option<u64>) {
        let now = now_ms();
        let mut map = self.map.lock();
        map.retain(|key, list| {
            let limit = idle_ms(key);
            list.retain(|c| {
                let idle = c.streams.load(Ordering::Relaxed) == 0
                    && limit.is_some_and(|l| {
                        now.saturating_sub(c.last_used_ms.load(Ordering::Relaxed)) > l
                    });
                !c.tx.is_closed() && !idle
            });
            !list.is_empty()
        });
    }

    /// Forgets every connection of `key` (a server that left or went down); streams
    /// in flight finish, then the connections close.
    pub fn remove(&self, key: &PoolKey) {
        self.map.lock().remove(key);
    }

    pub fn clear(&self) {
        self.map.lock().clear();
    }
}

pub enum Conn {
    H1(Pooled<H1>),
    H2(H2Stream),
}

/// A connection (or stream) in use plus the request's slot; knows its way back.
pub struct Upstream {
    conn: Option<Conn>,
    pool: Pool<H1>,
    /// Dropped after `conn`, so a queued request that gets the slot finds the
    /// connection already back in the pool.
    pub slot: Slot,
}

impl Upstream {
    pub fn new(conn: Conn, pool: Pool<H1>, slot: Slot) -> Self {
        Self {
            conn: Some(conn),
            pool,
            slot,
        }
    }

    pub fn conn_mut(&mut self) -> Option<&mut Conn> {
        self.conn.as_mut()
    }

    /// After a complete exchange: an HTTP/1.1 connection goes back to the pool (which
    /// closes it if it is dead or worn out, and so do we if its server left).
    pub fn release(mut self) {
        if let Some(Conn::H1(pooled)) = self.conn.take() {
            if self.slot.server.available() {
                self.pool.checkin(pooled);
            }
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
        self.h1.clear_key(&server.key);
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
/// HTTP/1.1 pool (after a pooled connection turned out dead). Returns whether it was reused.
pub async fn acquire(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
    fresh: bool,
) -> Result<(Conn, bool), ProxyError> {
    if wants_h2(backend, server) {
        if let Some(s) = pools.h2.checkout(backend, server) {
            return Ok((Conn::H2(s), true));
        }
        // One connect at a time per server: a burst of requests shares the first
        // connection instead of each opening its own.
        let _gate = server.h2_gate.lock().await;
        if let Some(s) = pools.h2.checkout(backend, server) {
            return Ok((Conn::H2(s), true));
        }
        return new_conn(pools, metrics, backend, server).await;
    }
    if !fresh {
        while let Some(mut pooled) = pools.h1.checkout(&server.key) {
            // One returned right after its previous response ended may not be ready
            // yet: its I/O task is about to mark it ready (or closed). Wait for that,
            // briefly: one that takes longer is broken, and a new connection beats a stall.
            let ready = pooled.conn.tx.is_ready()
                || matches!(
                    tokio::time::timeout(READY_WAIT, poll_fn(|cx| pooled.conn.tx.poll_ready(cx)))
                        .await,
                    Ok(Ok(()))
                );
            if ready {
                pooled.set_idle_gauge(&backend.metrics.idle);
                return Ok((Conn::H1(pooled), true));
            }
        }
    }
    // (Under `auto`, a race with the first negotiation can still bring h2 here.)
    new_conn(pools, metrics, backend, server).await
}

/// Opens a connection and speaks what was negotiated: an HTTP/2 one joins the h2
/// pool and yields a stream on it; an HTTP/1.1 one is returned for this request.
async fn new_conn(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
) -> Result<(Conn, bool), ProxyError> {
    match open_registered(pools, metrics, backend, server).await? {
        Some(h1) => Ok((Conn::H1(h1), false)),
        None => pools
            .h2
            .checkout(backend, server)
            .map(|s| (Conn::H2(s), false))
            .ok_or_else(|| h2_closed(server)),
    }
}

/// Connects and handshakes. HTTP/2 (ALPN `h2` over TLS, or `protocol: http2` on plain
/// TCP) goes into the h2 pool and gives `None`; HTTP/1.1 gives the new connection.
/// Records what the server speaks, for `auto`.
async fn open_registered(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
) -> Result<Option<Pooled<H1>>, ProxyError> {
    let (stream, guard) = open(metrics, backend, server).await?;
    let h2 = if backend.settings.tls {
        stream.alpn() == Some(b"h2")
    } else {
        backend.settings.protocol == Protocol::Http2
    };
    if h2 {
        server.proto.store(PROTO_H2, Ordering::Relaxed);
        let conn = handshake_h2(backend, server, stream, guard).await?;
        pools.h2.insert(&server.key, conn);
        return Ok(None);
    }
    if backend.settings.protocol != Protocol::Http1 {
        server.proto.store(PROTO_H1, Ordering::Relaxed);
    }
    handshake_h1(backend, server, stream, guard).await.map(Some)
}

fn h2_closed(server: &Server) -> ProxyError {
    ProxyError {
        status: http::StatusCode::BAD_GATEWAY,
        cause: "upstream_closed",
        detail: format!(
            "new HTTP/2 connection to {} closed at once",
            server.label.as_str()
        ),
    }
}

/// Opens a connection for the warm pool: an idle HTTP/1.1 connection, or (for
/// HTTP/2) one connection if the server has none.
pub async fn warm(
    pools: &Pools,
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
) -> Result<(), ProxyError> {
    let _gate = if wants_h2(backend, server) {
        let gate = server.h2_gate.lock().await;
        if pools.h2.count(&server.key) > 0 {
            return Ok(());
        }
        Some(gate)
    } else {
        None
    };
    if let Some(h1) = open_registered(pools, metrics, backend, server).await? {
        pools.h1.checkin(h1);
    }
    Ok(())
}

/// Decrements a gauge when the connection it counts ends.
struct GaugeGuard(Option<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

/// Connect (+ TLS), recording timings, errors by errno and the source address used.
async fn open(
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
) -> Result<(UpstreamStream, GaugeGuard), ProxyError> {
    match backend
        .connector
        .connect(&server.target, backend.settings.connect_timeout)
        .await
    {
        Ok((stream, timings)) => {
            backend
                .metrics
                .connect
                .observe(timings.connect.as_secs_f64());
            if let Some(tls) = timings.tls_handshake {
                backend.metrics.tls.observe(tls.as_secs_f64());
            }
            let guard = GaugeGuard(timings.source.map(|ip| {
                let g = metrics
                    .source_connections
                    .get_or_create(&SourceLabels {
                        backend: backend.name.clone(),
                        source: Name::new(&ip.to_string()),
                    })
                    .clone();
                g.inc();
                g
            }));
            Ok((stream, guard))
        }
        Err(e) => {
            tracing::debug!(backend = %backend.name.as_str(), server = %server.label.as_str(), error = %e, "upstream connect failed");
            metrics
                .connect_errors
                .get_or_create(&ErrnoLabels {
                    backend: backend.name.clone(),
                    errno: e.errno_label(),
                })
                .inc();
            Err(ProxyError::connect(&e))
        }
    }
}

async fn handshake_h1(
    backend: &Backend,
    server: &Server,
    stream: UpstreamStream,
    guard: GaugeGuard,
) -> Result<Pooled<H1>, ProxyError> {
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::upstream(&e))?;
    let label = server.label.clone();
    tokio::spawn(async move {
        let _guard = guard;
        if let Err(e) = conn.await {
            tracing::debug!(server = %label.as_str(), error = %crate::error::error_chain(&e), "upstream connection ended with an error");
        }
    });
    backend.metrics.opened.inc();
    Ok(Pooled::new(
        H1 { tx },
        server.key.clone(),
        backend.settings.policy,
        backend.metrics.idle.clone(),
    ))
}

async fn handshake_h2(
    backend: &Backend,
    server: &Server,
    stream: UpstreamStream,
    guard: GaugeGuard,
) -> Result<Arc<H2Conn>, ProxyError> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    if let Some((interval, timeout)) = backend.settings.h2_ping {
        builder
            .keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true);
    }
    let (tx, conn) = builder
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::upstream(&e))?;
    let label = server.label.clone();
    let open = backend.metrics.h2_connections.clone();
    open.inc();
    tokio::spawn(async move {
        let _guard = guard;
        if let Err(e) = conn.await {
            tracing::debug!(server = %label.as_str(), error = %crate::error::error_chain(&e), "upstream HTTP/2 connection ended with an error");
        }
        open.dec();
    });
    backend.metrics.opened.inc();
    Ok(Arc::new(H2Conn {
        tx,
        streams: AtomicUsize::new(0),
        requests: AtomicU64::new(0),
        created: Instant::now(),
        last_used_ms: AtomicU64::new(now_ms()),
        retired: AtomicBool::new(false),
    }))
}
