use crate::PoolKey;
use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// What the pool needs to know about a connection.
pub trait Connection: Send + 'static {
    /// True once the peer or the transport has closed it; it must not be handed out.
    fn is_closed(&self) -> bool;
}

/// When a connection is retired. Copied into each connection at creation, so a
/// connection follows the settings it was opened under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Idle connections kept per key; a connection returned beyond that is closed.
    pub max_idle: usize,
    /// Idle longer than this: closed.
    pub idle_timeout: Duration,
    /// Retired after this many requests (0 = unlimited).
    pub max_requests: u64,
    /// Retired after this age (zero = unlimited); checked when idle, never mid-request.
    pub max_lifetime: Duration,
}

/// A connection checked out of (or destined for) the pool, with its bookkeeping.
#[derive(Debug)]
pub struct Pooled<C> {
    pub conn: C,
    key: PoolKey,
    policy: Policy,
    created: Instant,
    requests: u64,
    idle_gauge: Gauge,
}

impl<C> Pooled<C> {
    /// Wraps a newly opened connection. `idle_gauge` counts it while it sits idle.
    pub fn new(conn: C, key: PoolKey, policy: Policy, idle_gauge: Gauge) -> Self {
        Self {
            conn,
            key,
            policy,
            created: Instant::now(),
            requests: 0,
            idle_gauge,
        }
    }

    /// Records one request sent on this connection.
    pub fn note_request(&mut self) {
        self.requests += 1;
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn key(&self) -> &PoolKey {
        &self.key
    }

    /// Sets the gauge that counts this connection while idle (the last user's).
    pub fn set_idle_gauge(&mut self, g: &Gauge) {
        self.idle_gauge = g.clone();
    }

    fn worn_out(&self, now: Instant) -> bool {
        (self.policy.max_requests > 0 && self.requests >= self.policy.max_requests)
            || (!self.policy.max_lifetime.is_zero()
                && now.saturating_duration_since(self.created) >= self.policy.max_lifetime)
    }
}

struct Idle<C> {
    pooled: Pooled<C>,
    since: Instant,
}

impl<C: Connection> Idle<C> {
    fn usable(&self, now: Instant) -> bool {
        !self.pooled.conn.is_closed()
            && now.saturating_duration_since(self.since) < self.pooled.policy.idle_timeout
            && !self.pooled.worn_out(now)
    }
}

/// The shared pool. Cheap to clone.
pub struct Pool<C> {
    inner: Arc<Mutex<HashMap<PoolKey, Vec<Idle<C>>>>>,
}

impl<C> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Connection> Default for Pool<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Connection> Pool<C> {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes the most recently used live idle connection for `key`, if any.
    /// Dead or expired ones met on the way are closed (outside the lock).
    pub fn checkout(&self, key: &PoolKey) -> Option<Pooled<C>> {
        let now = Instant::now();
        let mut discard = Vec::new();
        let found = {
            let mut map = self.inner.lock();
            let list = map.get_mut(key)?;
            let mut found = None;
            while let Some(idle) = list.pop() {
                idle.pooled.idle_gauge.dec();
                if idle.usable(now) {
                    found = Some(idle.pooled);
                    break;
                }
                discard.push(idle);
            }
            if list.is_empty() {
                map.remove(key);
            }
            found
        };
        drop(discard);
        found
    }

    /// Returns a connection after a complete exchange. It is closed instead if it is
    /// dead, worn out, or its key already holds `max_idle` idle connections.
    pub fn checkin(&self, pooled: Pooled<C>) {
        let now = Instant::now();
        if pooled.conn.is_closed() || pooled.worn_out(now) || pooled.policy.max_idle == 0 {
            return;
        }
        let mut map = self.inner.lock();
        let list = map.entry(pooled.key.clone()).or_default();
        if list.len() >= pooled.policy.max_idle {
            drop(map);
            drop(pooled);
            return;
        }
        pooled.idle_gauge.inc();
        list.push(Idle { pooled, since: now });
    }

    /// Closes idle connections that are dead, expired or worn out; drops empty keys.
    /// Returns how many were closed.
    pub fn evict(&self) -> usize {
        let now = Instant::now();
        let mut discard = Vec::new();
        {
            let mut map = self.inner.lock();
            map.retain(|_, list| {
                let mut i = 0;
                while i < list.len() {
                    if list[i].usable(now) {
                        i += 1;
                    } else {
                        let idle = list.remove(i);
                        idle.pooled.idle_gauge.dec();
                        discard.push(idle);
                    }
                }
                !list.is_empty()
            });
        }
        discard.len()
    }

    /// Closes the idle connections of one key (its server went down or away).
    pub fn clear_key(&self, key: &PoolKey) {
        let removed = self.inner.lock().remove(key);
        for idle in removed.iter().flatten() {
            idle.pooled.idle_gauge.dec();
        }
    }

    /// Idle connections for `key` right now.
    pub fn idle_len(&self, key: &PoolKey) -> usize {
        self.inner.lock().get(key).map_or(0, Vec::len)
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&self) {
        let all: Vec<_> = self.inner.lock().drain().collect();
        for (_, list) in &all {
            for idle in list {
                idle.pooled.idle_gauge.dec();
            }
        }
    }

    /// Idle connections right now, for all keys.
    pub fn idle_count(&self) -> usize {
        self.inner.lock().values().map(Vec::len).sum()
    }

    /// Keys that currently hold idle connections.
    pub fn key_count(&self) -> usize {
        self.inner.lock().len()
    }

    /// Runs [`Pool::evict`] every `every` until the pool is dropped.
    pub fn spawn_reaper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<_> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let evicted = Pool { inner }.evict();
                if evicted > 0 {
                    tracing::debug!(evicted, "closed idle upstream connections");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug, Default, Clone)]
    struct Fake(Arc<AtomicBool>);
    impl Connection for Fake {
        fn is_closed(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn policy() -> Policy {
        Policy {
            max_idle: 2,
            idle_timeout: Duration::from_secs(10),
            max_requests: 3,
            max_lifetime: Duration::from_secs(100),
        }
    }

    fn new(pool_key: &PoolKey, g: &Gauge) -> Pooled<Fake> {
        Pooled::new(Fake::default(), pool_key.clone(), policy(), g.clone())
    }

    #[tokio::test(start_paused = true)]
    async fn reuses_most_recent_first_and_counts_idle() {
        let (pool, k, g) = (Pool::new(), PoolKey::new("a".into()), Gauge::default());
        let (mut a, b) = (new(&k, &g), new(&k, &g));
        a.note_request();
        pool.checkin(a);
        pool.checkin(b);
        assert_eq!(g.get(), 2);
        let got = pool.checkout(&k).unwrap();
        assert_eq!(got.requests(), 0, "LIFO: b was returned last");
        assert_eq!(g.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn caps_idle_per_key_and_removes_empty_keys() {
        let (pool, k, g) = (Pool::new(), PoolKey::new("a".into()), Gauge::default());
        for _ in 0..5 {
            pool.checkin(new(&k, &g));
        }
        assert_eq!(pool.idle_count(), 2);
        assert!(pool.checkout(&k).is_some() && pool.checkout(&k).is_some());
        assert!(pool.checkout(&k).is_none());
        assert_eq!(pool.key_count(), 0);
        assert_eq!(g.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn skips_closed_and_evicts_expired() {
        let (pool, k, g) = (Pool::new(), PoolKey::new("a".into()), Gauge::default());
        let dead = new(&k, &g);
        let flag = dead.conn.0.clone();
        pool.checkin(new(&k, &g));
        pool.checkin(dead);
        flag.store(true, Ordering::Relaxed);
        assert!(
            !pool.checkout(&k).unwrap().conn.is_closed(),
            "the closed one is skipped"
        );
        pool.checkin(new(&k, &g));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(pool.evict(), 1);
        assert_eq!((pool.idle_count(), pool.key_count(), g.get()), (0, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn retires_after_max_requests_and_lifetime() {
        let (pool, k, g) = (Pool::new(), PoolKey::new("a".into()), Gauge::default());
        let mut worn = new(&k, &g);
        (0..3).for_each(|_| worn.note_request());
        pool.checkin(worn);
        assert_eq!(pool.idle_count(), 0);
        pool.checkin(new(&k, &g));
        tokio::time::advance(Duration::from_secs(9)).await;
        let c = pool.checkout(&k).unwrap();
        tokio::time::advance(Duration::from_secs(95)).await;
        pool.checkin(c);
        assert_eq!(
            pool.idle_count(),
            0,
            "past max_lifetime it is not pooled again"
        );
    }

    #[test]
    fn keys_compare_by_identity() {
        assert_eq!(PoolKey::new("x".into()), PoolKey::new("x".into()));
        assert_ne!(PoolKey::new("x".into()), PoolKey::new("y".into()));
    }
}
