use crate::PoolKey;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// What the pool needs to know about a connection.
pub trait Connection: Send + 'static {
    /// True once the peer or the transport has closed it; it must not be handed out.
    fn is_closed(&self) -> bool;

    /// Checks, without waiting, that an idle connection is still usable. For a
    /// connection nothing watches while it is idle, so one its peer closed is found
    /// (and closed) by the reaper instead of waiting for its idle timeout. It runs
    /// under the idle list's lock, so it must not block.
    fn probe(&mut self) -> bool {
        !self.is_closed()
    }
}

/// Counts connections while they sit idle. The pool calls it; the caller decides what
/// it feeds (a metric, a test counter), so no metrics type appears in this API.
pub trait Tally: Send + Sync + 'static {
    fn add(&self, delta: i64);
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
pub struct Pooled<C> {
    pub conn: C,
    key: PoolKey,
    policy: Policy,
    created: Instant,
    requests: u64,
    idle_tally: Arc<dyn Tally>,
}

impl<C> Pooled<C> {
    /// Wraps a newly opened connection. `idle_tally` counts it while it sits idle.
    pub fn new(conn: C, key: PoolKey, policy: Policy, idle_tally: Arc<dyn Tally>) -> Self {
        Self {
            conn,
            key,
            policy,
            created: Instant::now(),
            requests: 0,
            idle_tally,
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

    /// Sets what counts this connection while idle (the last user's).
    pub fn set_idle_tally(&mut self, t: &Arc<dyn Tally>) {
        if !Arc::ptr_eq(&self.idle_tally, t) {
            self.idle_tally = t.clone();
        }
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

    /// Leaves the idle list: no longer counted as idle.
    fn leave(self) -> Pooled<C> {
        self.pooled.idle_tally.add(-1);
        self.pooled
    }
}

/// The idle connections of one key, under a lock of their own: requests to different
/// servers never wait for each other. A server holds its list, so a checkout does no
/// map lookup at all. The lock is held only for a push or pop, never across an
/// `.await`, and nothing is dropped under it.
pub struct IdleList<C> {
    idle: Mutex<Vec<Idle<C>>>,
}

impl<C: Connection> IdleList<C> {
    fn new() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Takes the most recently used live idle connection, if any. Dead or expired
    /// ones met on the way are closed (outside the lock).
    pub fn checkout(&self) -> Option<Pooled<C>> {
        let now = Instant::now();
        let mut discard = Vec::new();
        let found = {
            let mut list = self.idle.lock();
            let mut found = None;
            while let Some(idle) = list.pop() {
                let usable = idle.usable(now);
                let pooled = idle.leave();
                if usable {
                    found = Some(pooled);
                    break;
                }
                discard.push(pooled);
            }
            found
        };
        drop(discard);
        found
    }

    /// Returns a connection after a complete exchange. It is closed instead if it is
    /// dead, worn out, or the list already holds `max_idle` idle connections.
    pub fn checkin(&self, pooled: Pooled<C>) {
        let now = Instant::now();
        if pooled.conn.is_closed() || pooled.worn_out(now) || pooled.policy.max_idle == 0 {
            return;
        }
        let mut list = self.idle.lock();
        if list.len() >= pooled.policy.max_idle {
            drop(list);
            drop(pooled);
            return;
        }
        pooled.idle_tally.add(1);
        list.push(Idle { pooled, since: now });
    }

    /// Closes idle connections that are dead, expired or worn out; returns how many.
    pub fn evict(&self) -> usize {
        let now = Instant::now();
        let gone: Vec<Pooled<C>> = {
            let mut list = self.idle.lock();
            let mut gone = Vec::new();
            let mut i = 0;
            while i < list.len() {
                if list[i].usable(now) && list[i].pooled.conn.probe() {
                    i += 1;
                } else {
                    gone.push(list.remove(i).leave());
                }
            }
            gone
        };
        gone.len()
    }

    /// Closes every idle connection of this list.
    pub fn clear(&self) {
        let all: Vec<Pooled<C>> = std::mem::take(&mut *self.idle.lock())
            .into_iter()
            .map(Idle::leave)
            .collect();
        drop(all);
    }

    pub fn len(&self) -> usize {
        self.idle.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shared pool: one idle list per key. Cheap to clone. The map's lock is taken
/// only to find or create a list (when a server is created) and by the reaper.
pub struct Pool<C> {
    lists: Arc<RwLock<HashMap<PoolKey, Arc<IdleList<C>>>>>,
}

impl<C> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self {
            lists: self.lists.clone(),
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
            lists: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    /// The idle list of `key`, created if needed. Everyone with the same key gets the
    /// same list, so connections are shared by every backend that can use them.
    pub fn list(&self, key: &PoolKey) -> Arc<IdleList<C>> {
        if let Some(l) = self.lists.read().get(key) {
            return l.clone();
        }
        self.lists
            .write()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(IdleList::new()))
            .clone()
    }

    /// The list of `key` if it exists (does not create one).
    pub fn find(&self, key: &PoolKey) -> Option<Arc<IdleList<C>>> {
        self.lists.read().get(key).cloned()
    }

    pub fn checkout(&self, key: &PoolKey) -> Option<Pooled<C>> {
        self.find(key)?.checkout()
    }

    pub fn checkin(&self, pooled: Pooled<C>) {
        self.list(&pooled.key.clone()).checkin(pooled);
    }

    /// Closes idle connections that are dead, expired or worn out, and forgets lists
    /// that are empty and held by no server. Returns how many connections were closed.
    pub fn evict(&self) -> usize {
        let lists: Vec<Arc<IdleList<C>>> = self.lists.read().values().cloned().collect();
        let evicted = lists.iter().map(|l| l.evict()).sum();
        drop(lists);
        // Only the map holds it (strong count 1) and it is empty: nobody can use it.
        self.lists
            .write()
            .retain(|_, l| Arc::strong_count(l) > 1 || !l.is_empty());
        evicted
    }

    /// Closes the idle connections of one key (its server went down or away).
    pub fn clear_key(&self, key: &PoolKey) {
        if let Some(l) = self.find(key) {
            l.clear();
        }
    }

    pub fn idle_len(&self, key: &PoolKey) -> usize {
        self.find(key).map_or(0, |l| l.len())
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&self) {
        let lists: Vec<Arc<IdleList<C>>> = self.lists.read().values().cloned().collect();
        lists.iter().for_each(|l| l.clear());
    }

    /// Idle connections right now, for all keys.
    pub fn idle_count(&self) -> usize {
        self.lists.read().values().map(|l| l.len()).sum()
    }

    /// Keys the pool has a list for.
    pub fn key_count(&self) -> usize {
        self.lists.read().len()
    }

    /// Runs [`Pool::evict`] every `every` until the pool is dropped.
    pub fn spawn_reaper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<_> = Arc::downgrade(&self.lists);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(lists) = weak.upgrade() else { return };
                let evicted = Pool { lists }.evict();
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
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    /// Counts idle connections like a gauge would.
    #[derive(Default)]
    struct Count(AtomicI64);
    impl Tally for Count {
        fn add(&self, delta: i64) {
            self.0.fetch_add(delta, Ordering::Relaxed);
        }
    }
    impl Count {
        fn get(&self) -> i64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[derive(Debug, Default, Clone)]
    struct Fake(Arc<AtomicBool>);
    impl Connection for Fake {
        fn is_closed(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    /// Looks open, but its probe finds it closed (a peer that left while it idled).
    struct Left;
    impl Connection for Left {
        fn is_closed(&self) -> bool {
            false
        }
        fn probe(&mut self) -> bool {
            false
        }
    }

    #[test]
    fn the_reaper_closes_idle_connections_whose_probe_fails() {
        let pool: Pool<Left> = Pool::new();
        let k = PoolKey::new("a".into());
        pool.checkin(Pooled::new(
            Left,
            k.clone(),
            policy(),
            Arc::new(Count::default()),
        ));
        assert_eq!(pool.idle_len(&k), 1);
        assert_eq!(pool.evict(), 1);
        assert_eq!(pool.idle_len(&k), 0);
    }

    fn policy() -> Policy {
        Policy {
            max_idle: 2,
            idle_timeout: Duration::from_secs(10),
            max_requests: 3,
            max_lifetime: Duration::from_secs(100),
        }
    }

    fn new(pool_key: &PoolKey, g: &Arc<Count>) -> Pooled<Fake> {
        Pooled::new(Fake::default(), pool_key.clone(), policy(), g.clone())
    }

    #[tokio::test(start_paused = true)]
    async fn reuses_most_recent_first_and_counts_idle() {
        let (pool, k, g) = (
            Pool::new(),
            PoolKey::new("a".into()),
            Arc::new(Count::default()),
        );
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
        let (pool, k, g) = (
            Pool::new(),
            PoolKey::new("a".into()),
            Arc::new(Count::default()),
        );
        for _ in 0..5 {
            pool.checkin(new(&k, &g));
        }
        assert_eq!(pool.idle_count(), 2);
        assert!(pool.checkout(&k).is_some() && pool.checkout(&k).is_some());
        assert!(pool.checkout(&k).is_none());
        pool.evict();
        assert_eq!(
            pool.key_count(),
            0,
            "an empty list nobody holds is forgotten"
        );
        assert_eq!(g.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn skips_closed_and_evicts_expired() {
        let (pool, k, g) = (
            Pool::new(),
            PoolKey::new("a".into()),
            Arc::new(Count::default()),
        );
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
        let (pool, k, g) = (
            Pool::new(),
            PoolKey::new("a".into()),
            Arc::new(Count::default()),
        );
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

    #[tokio::test(start_paused = true)]
    async fn a_list_held_by_a_server_is_shared_and_survives_eviction() {
        let (pool, g) = (Pool::new(), Arc::new(Count::default()));
        let (a, b) = (PoolKey::new("a".into()), PoolKey::new("a".into()));
        let held = pool.list(&a);
        assert!(Arc::ptr_eq(&held, &pool.list(&b)), "same key, same list");
        held.checkin(new(&a, &g));
        assert_eq!(pool.checkout(&b).map(|p| p.requests()), Some(0));
        pool.evict();
        assert_eq!(pool.key_count(), 1, "still held");
        drop(held);
        pool.evict();
        assert_eq!(pool.key_count(), 0);
        assert_eq!(g.get(), 0);
    }

    #[test]
    fn keys_compare_by_identity() {
        assert_eq!(PoolKey::new("x".into()), PoolKey::new("x".into()));
        assert_ne!(PoolKey::new("x".into()), PoolKey::new("y".into()));
    }
}
