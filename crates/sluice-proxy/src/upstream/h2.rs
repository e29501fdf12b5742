//! Shared HTTP/2 connections: a request takes a stream on the least-loaded live
//! connection under `max_concurrent_streams`; another connection is opened only when
//! all are full.

use crate::backend::{Backend, Server};
use crate::clock::now_ms;
use crate::req_body::ReqBody;
use hyper::client::conn::http2;
use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;
use sluice_pool::PoolKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

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

impl H2Conn {
    pub fn new(tx: http2::SendRequest<ReqBody>) -> Self {
        Self {
            tx,
            streams: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            created: Instant::now(),
            last_used_ms: AtomicU64::new(now_ms()),
            retired: AtomicBool::new(false),
        }
    }

    fn live(&self) -> bool {
        !self.tx.is_closed() && !self.retired.load(Ordering::Relaxed)
    }
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

/// HTTP/2 connections by pool key.
#[derive(Default, Clone)]
pub struct H2Pool {
    map: Arc<Mutex<HashMap<PoolKey, Vec<Arc<H2Conn>>>>>,
}

impl H2Pool {
    pub fn checkout(&self, backend: &Backend, server: &Server) -> Option<H2Stream> {
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
            c.live()
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

    pub fn insert(&self, key: &PoolKey, conn: Arc<H2Conn>) {
        self.map.lock().entry(key.clone()).or_default().push(conn);
    }

    /// Live (not closed, not retired) connections for `key`.
    pub fn count(&self, key: &PoolKey) -> usize {
        self.map
            .lock()
            .get(key)
            .map_or(0, |l| l.iter().filter(|c| c.live()).count())
    }

    /// Streams in flight over the live connections of `key`.
    pub fn streams(&self, key: &PoolKey) -> usize {
        self.map.lock().get(key).map_or(0, |l| {
            l.iter()
                .filter(|c| c.live())
                .map(|c| c.streams.load(Ordering::Relaxed))
                .sum()
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
