//! Micro-benchmarks of the pool's per-request operations, with a trivial connection
//! type (no I/O): the HTTP/1.1 idle list, the slot limiter and the HTTP/2 shared pool.
//! See bench/micro/README.md. `cargo bench -p sluice-pool`.

// Setup failures in a bench are bugs to see at once, as in the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sluice_pool::{
    Connection, Group, Limiter, Limits, Member, Multiplexed, Policy, Pool, PoolKey, Pooled,
    QueueObserver, SharedPool, Tally,
};
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A connection that is never closed; the check is one atomic load, as hyper's is.
#[derive(Default)]
struct Conn(AtomicBool);

impl Connection for Conn {
    fn is_closed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Multiplexed for Conn {
    fn is_closed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn is_ready(&self) -> bool {
        true
    }
}

/// Stands for a gauge: one atomic add.
#[derive(Default)]
struct Count(AtomicI64);

impl Tally for Count {
    fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }
}

/// sluice's defaults, but no request limit: a bench makes millions on one connection.
fn policy() -> Policy {
    Policy {
        max_idle: 64,
        idle_timeout: Duration::from_secs(60),
        max_requests: 0,
        max_lifetime: Duration::from_secs(3600),
    }
}

fn tally() -> Arc<dyn Tally> {
    Arc::new(Count::default())
}

/// HTTP/1.1: a server holds its key's idle list; a request pops the most recent idle
/// connection and pushes it back after the exchange.
fn idle_list(c: &mut Criterion) {
    let mut g = c.benchmark_group("idle_list");
    let tally = tally();
    for idle in [1usize, 8] {
        let pool = Pool::<Conn>::new();
        let key = PoolKey::new(format!("127.0.0.1:{idle}|plain"));
        let list = pool.list(&key);
        for _ in 0..idle {
            list.checkin(Pooled::new(
                Conn::default(),
                key.clone(),
                policy(),
                tally.clone(),
            ));
        }
        g.bench_with_input(
            BenchmarkId::new("checkout_checkin", format!("{idle}_idle")),
            &list,
            |b, list| {
                b.iter(|| {
                    let mut p = list.checkout().expect("an idle connection");
                    p.note_request();
                    list.checkin(black_box(p));
                })
            },
        );
    }
    // A cold server: the list is empty, the request will open a connection.
    let pool = Pool::<Conn>::new();
    let list = pool.list(&PoolKey::new("127.0.0.1:9|plain".into()));
    g.bench_function("checkout_miss", |b| {
        b.iter(|| black_box(list.checkout()).is_none())
    });
    g.finish();
}

/// The same round trip through the pool's map (`Pool::checkout(key)`): a read lock and
/// a hash lookup more than the idle list a server holds, with 1 or 1,000 keys.
fn pool_by_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_by_key");
    let tally = tally();
    for keys in [1usize, 1000] {
        let pool = Pool::<Conn>::new();
        let all: Vec<PoolKey> = (0..keys)
            .map(|i| PoolKey::new(format!("127.0.0.1:{}|plain", 10_000 + i)))
            .collect();
        for k in &all {
            pool.checkin(Pooled::new(
                Conn::default(),
                k.clone(),
                policy(),
                tally.clone(),
            ));
        }
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("checkout_checkin", keys), |b| {
            b.iter(|| {
                i = (i + 1) % all.len();
                let p = pool.checkout(&all[i]).expect("an idle connection");
                pool.checkin(black_box(p));
            })
        });
    }
    g.finish();
}

#[derive(Default)]
struct Server {
    inflight: AtomicUsize,
}

impl Member for Server {
    fn inflight(&self) -> &AtomicUsize {
        &self.inflight
    }
    fn available(&self) -> bool {
        true
    }
}

struct NoObserver;

impl QueueObserver for NoObserver {
    fn depth(&self, _: usize) {}
    fn waited(&self, _: Duration) {}
}

struct Backend {
    servers: Arc<[Arc<Server>]>,
    limiter: Limiter<Backend>,
}

impl Group for Backend {
    type Member = Server;
    fn limiter(&self) -> &Limiter<Self> {
        &self.limiter
    }
    fn members(&self) -> Arc<[Arc<Server>]> {
        self.servers.clone()
    }
    /// Least requests in flight, first on ties (as the tests' group).
    fn pick(
        &self,
        members: &[Arc<Server>],
        usable: &dyn Fn(&Server) -> bool,
        _: Option<u64>,
    ) -> Option<Arc<Server>> {
        members
            .iter()
            .filter(|s| usable(s))
            .min_by_key(|s| s.inflight.load(Ordering::Relaxed))
            .cloned()
    }
}

fn backend(servers: usize, per_member: usize, total: usize) -> Arc<Backend> {
    Arc::new(Backend {
        servers: (0..servers).map(|_| Arc::new(Server::default())).collect(),
        limiter: Limiter::new(
            Limits {
                per_member,
                total,
                max_queue: 100,
                queue_timeout: Duration::from_secs(1),
            },
            Default::default(),
            Arc::new(NoObserver),
        ),
    })
}

/// Polls a future once: a slot that is free is given without waiting, so `acquire`
/// completes on its first poll (the bench never queues).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the slot was not free"),
    }
}

/// Taking a slot on a server (pick + in-flight count, and the queue lock when limits
/// are set) and freeing it.
fn limiter(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter");
    for (name, servers, per_member, total) in [
        ("unlimited/1_server", 1, 0, 0),
        ("unlimited/4_servers", 4, 0, 0),
        ("limited/4_servers", 4, 100, 1000),
    ] {
        let b = backend(servers, per_member, total);
        g.bench_function(BenchmarkId::new("acquire_release", name), |bench| {
            bench.iter(|| {
                let slot = ready(Limiter::acquire(&b, None, None)).expect("a slot");
                drop(black_box(slot));
            })
        });
    }
    g.finish();
}

/// HTTP/2: a stream on the least-loaded live connection of a key, released on drop.
fn shared_pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("shared_pool");
    let tally = tally();
    for conns in [1usize, 4] {
        let pool = SharedPool::<Conn>::default();
        let key = PoolKey::new(format!("127.0.0.1:{conns}|h2"));
        for _ in 0..conns {
            pool.insert(&key, Conn::default());
        }
        g.bench_function(
            BenchmarkId::new("checkout_release", format!("{conns}_conns")),
            |b| {
                b.iter(|| {
                    let (stream, active) = pool
                        .checkout(&key, &policy(), 100, &tally)
                        .expect("a stream");
                    black_box(active);
                    drop(stream);
                })
            },
        );
    }
    g.finish();
}

/// For scale: one read of the clock the pool uses (tokio's; a checkout and a checkin
/// read it once each). Benches are built with tokio's `test-util` (a dev-dependency),
/// whose clock first looks for a paused runtime clock; the proxy binary's does not.
fn clock(c: &mut Criterion) {
    c.bench_function("clock/tokio_instant_now", |b| {
        b.iter(tokio::time::Instant::now)
    });
}

criterion_group!(benches, clock, idle_list, pool_by_key, limiter, shared_pool);
criterion_main!(benches);
