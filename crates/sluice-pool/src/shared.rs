//! Shared (multiplexed) connections, such as HTTP/2: a request takes a stream on the
//! least-loaded live connection of its key that has a stream free; another connection
//! is opened (by the caller) only when all are full. Streams are counted here, so the
//! pool knows which connections are idle and may be evicted.

use crate::{Policy, PoolKey, Tally};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// What the pool needs to know about a multiplexed connection.
pub trait Multiplexed: Send + Sync + 'static {
    /// The peer or transport closed it.
    fn is_closed(&self) -> bool;
    /// It can take a new stream right now (not waiting for the peer's settings).
    fn is_ready(&self) -> bool;
}

/// Milliseconds since the first call (tokio's clock, so tests can pause it).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    Instant::now().saturating_duration_since(epoch).as_millis() as u64
}

/// One connection shared by concurrent requests.
pub struct SharedConn<C> {
    conn: C,
    streams: AtomicUsize,
    requests: AtomicU64,
    created: Instant,
    last_used_ms: AtomicU64,
    /// Worn out (max requests or lifetime) or failed: takes no new streams, closes
    /// when its streams are done.
    retired: AtomicBool,
}

impl<C: Multiplexed> SharedConn<C> {
    pub fn new(conn: C) -> Self {
        Self {
            conn,
            streams: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            created: Instant::now(),
            last_used_ms: AtomicU64::new(now_ms()),
            retired: AtomicBool::new(false),
        }
    }

    fn live(&self) -> bool {
        !self.conn.is_closed() && !self.retired.load(Ordering::Relaxed)
    }

    fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }
}

/// A request's claim on a stream of a [`SharedConn`]; released on drop.
pub struct Stream<C> {
    conn: Arc<SharedConn<C>>,
    tally: Arc<dyn Tally>,
}

impl<C: Multiplexed> Stream<C> {
    pub fn conn(&self) -> &C {
        &self.conn.conn
    }

    /// No new streams on this connection (it failed a request, e.g. after GOAWAY);
    /// streams in flight finish.
    pub fn retire(&self) {
        self.conn.retired.store(true, Ordering::Relaxed);
    }
}

impl<C> Drop for Stream<C> {
    fn drop(&mut self) {
        self.conn.streams.fetch_sub(1, Ordering::Relaxed);
        self.conn.last_used_ms.store(now_ms(), Ordering::Relaxed);
        self.tally.add(-1);
    }
}

type ByKey<C> = HashMap<PoolKey, Vec<Arc<SharedConn<C>>>>;

/// Shared connections by pool key. Cheap to clone.
pub struct SharedPool<C> {
    map: Arc<Mutex<ByKey<C>>>,
}

impl<C> Clone for SharedPool<C> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
        }
    }
}

impl<C: Multiplexed> Default for SharedPool<C> {
    fn default() -> Self {
        Self {
            map: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<C: Multiplexed> SharedPool<C> {
    /// A stream on the least-loaded ready connection of `key` with fewer than
    /// `max_streams` streams, and how many streams that connection now carries.
    /// Connections past `policy`'s lifetime or request count are retired on the way.
    /// `tally` counts the stream while it lives.
    pub fn checkout(
        &self,
        key: &PoolKey,
        policy: &Policy,
        max_streams: usize,
        tally: &Arc<dyn Tally>,
    ) -> Option<(Stream<C>, usize)> {
        let now = Instant::now();
        let mut map = self.map.lock();
        let list = map.get_mut(key)?;
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
            .filter(|c| c.conn.is_ready())
            .min_by_key(|c| c.streams())
            .filter(|c| c.streams() < max_streams)?
            .clone();
        let active = conn.streams.fetch_add(1, Ordering::Relaxed) + 1;
        let n = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if policy.max_requests > 0 && n >= policy.max_requests {
            conn.retired.store(true, Ordering::Relaxed);
        }
        drop(map);
        tally.add(1);
        Some((
            Stream {
                conn,
                tally: tally.clone(),
            },
            active,
        ))
    }

    pub fn insert(&self, key: &PoolKey, conn: C) {
        self.map
            .lock()
            .entry(key.clone())
            .or_default()
            .push(Arc::new(SharedConn::new(conn)));
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
            l.iter().filter(|c| c.live()).map(|c| c.streams()).sum()
        })
    }

    /// Drops connections that are closed, or without streams for longer than
    /// `idle_timeout(key)` (`None`: no key user knows it, keep it until closed).
    /// Dropping the last handle lets the connection close.
    pub fn evict(&self, idle_timeout: impl Fn(&PoolKey) -> Option<Duration>) {
        let now = now_ms();
        let mut gone = Vec::new();
        {
            let mut map = self.map.lock();
            map.retain(|key, list| {
                let limit = idle_timeout(key).map(|d| d.as_millis() as u64);
                list.retain(|c| {
                    let idle = c.streams() == 0
                        && limit.is_some_and(|l| {
                            now.saturating_sub(c.last_used_ms.load(Ordering::Relaxed)) > l
                        });
                    let keep = !c.conn.is_closed() && !idle;
                    if !keep {
                        gone.push(c.clone());
                    }
                    keep
                });
                !list.is_empty()
            });
        }
        drop(gone);
    }

    /// Forgets every connection of `key` (a server that left or went down); streams
    /// in flight finish, then the connections close.
    pub fn remove(&self, key: &PoolKey) {
        let gone = self.map.lock().remove(key);
        drop(gone);
    }

    pub fn clear(&self) {
        let all: Vec<_> = self.map.lock().drain().collect();
        drop(all);
    }
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
