use super::*;
use std::sync::atomic::AtomicI64;

#[derive(Default)]
struct Fake {
    closed: Arc<AtomicBool>,
}
impl Multiplexed for Fake {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
    fn is_ready(&self) -> bool {
        true
    }
}

#[derive(Default)]
struct Count(AtomicI64);
impl Tally for Count {
    fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }
}

fn policy(max_requests: u64) -> Policy {
    Policy {
        max_idle: 8,
        idle_timeout: Duration::from_secs(10),
        max_requests,
        max_lifetime: Duration::from_secs(100),
    }
}

#[tokio::test(start_paused = true)]
async fn streams_go_to_the_least_loaded_connection_up_to_the_limit() {
    let (pool, key) = (SharedPool::<Fake>::default(), PoolKey::new("k".into()));
    let count = Arc::new(Count::default());
    let tally: Arc<dyn Tally> = count.clone();
    pool.insert(&key, Fake::default());
    pool.insert(&key, Fake::default());
    let (a, n) = pool.checkout(&key, &policy(0), 2, &tally).unwrap();
    assert_eq!(n, 1);
    let (b, n) = pool.checkout(&key, &policy(0), 2, &tally).unwrap();
    assert_eq!(n, 1, "the other connection was less loaded");
    assert!(!Arc::ptr_eq(&a.conn, &b.conn));
    let _c = pool.checkout(&key, &policy(0), 2, &tally).unwrap();
    let _d = pool.checkout(&key, &policy(0), 2, &tally).unwrap();
    assert!(
        pool.checkout(&key, &policy(0), 2, &tally).is_none(),
        "all full: the caller opens another"
    );
    assert_eq!(
        (pool.streams(&key), count.0.load(Ordering::Relaxed)),
        (4, 4)
    );
    drop(a);
    assert_eq!(
        (pool.streams(&key), count.0.load(Ordering::Relaxed)),
        (3, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn worn_out_and_idle_connections_leave() {
    let (pool, key) = (SharedPool::<Fake>::default(), PoolKey::new("k".into()));
    let tally: Arc<dyn Tally> = Arc::new(Count::default());
    pool.insert(&key, Fake::default());
    let (s, _) = pool.checkout(&key, &policy(1), 10, &tally).unwrap();
    assert_eq!(
        pool.count(&key),
        0,
        "retired after its last allowed request"
    );
    drop(s);
    pool.insert(&key, Fake::default());
    let closed = Fake::default();
    let flag = closed.closed.clone();
    pool.insert(&key, closed);
    flag.store(true, Ordering::Relaxed);
    pool.evict(|_| Some(Duration::from_secs(10)));
    assert_eq!(pool.count(&key), 1, "the closed one is gone");
    tokio::time::advance(Duration::from_secs(11)).await;
    pool.evict(|_| None);
    assert_eq!(pool.count(&key), 1, "no idle timeout known: kept");
    pool.evict(|_| Some(Duration::from_secs(10)));
    assert_eq!(pool.count(&key), 0, "idle past its timeout");
}
