//! Micro-benchmarks of what a request goes through before any I/O, on a `Runtime`
//! compiled from a real config: route lookup, the backend's balancing policy, taking
//! and freeing a slot, the HTTP/1.1 idle-list checkout and checkin, and all of them in
//! sequence. The pooled connections are over Unix socket pairs, and no byte is sent. See bench/micro/README.md. `cargo bench -p sluice-proxy`.

// Setup failures in a bench are bugs to see at once, as in the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sluice_net::{PlainStream, UpstreamStream};
use sluice_pool::{Limiter, Pooled};
use sluice_proxy::{compile, Metrics, Registry, Runtime, H1};
use std::future::Future;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use tokio::net::UnixStream;

const LISTENER: &str = "listeners: [{name: e, bind: '127.0.0.1:0'}]\n";
/// A connection retires after 10,000 requests by default; a bench makes millions on one.
const POOL: &str = "pool: {max_requests_per_connection: 0}";

/// Compiles `yaml` (parsed by sluice-config's own loader) as the proxy does at start.
fn runtime(yaml: &str) -> Runtime {
    let config = sluice_config::parse("bench", yaml).expect("the bench config parses");
    let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
    compile(&config, &Registry::new(metrics), None, "bench").expect("the bench config compiles")
}

/// One route: `api.test` → backend `api`, one server.
fn one_route() -> Runtime {
    runtime(&format!(
        "{LISTENER}backends: [{{name: api, {POOL}, servers: ['127.0.0.1:10000']}}]\n\
         routes: [{{host: api.test, backend: api}}]"
    ))
}

/// `n` host-keyed routes `h{i}.test` → backend `b{i}` (one server each, its own pool
/// key), plus a wildcard, a catch-all and path prefixes on `p.test`.
fn many_routes(n: usize) -> Runtime {
    let mut yaml = format!("{LISTENER}backends:\n");
    for i in 0..n {
        yaml += &format!(
            "  - {{name: b{i}, {POOL}, servers: ['127.0.0.1:{}']}}\n",
            10_000 + i
        );
    }
    yaml += "routes:\n";
    for i in 0..n {
        yaml += &format!("  - {{host: h{i}.test, backend: b{i}}}\n");
    }
    for prefix in ["/", "/api", "/api/v1", "/api/v2"] {
        yaml += &format!("  - {{host: p.test, path_prefix: '{prefix}', backend: b0}}\n");
    }
    yaml += "  - {host: '*.wild.test', backend: b0}\n  - {host: '*', backend: b0}\n";
    runtime(&yaml)
}

/// One backend of four servers, balanced by `balance`.
fn four_servers(balance: &str, extra: &str) -> Runtime {
    runtime(&format!(
        "{LISTENER}backends: [{{name: api, {POOL}, balance: {balance}, {extra} servers: \
         ['127.0.0.1:20001', '127.0.0.1:20002', '127.0.0.1:20003', '127.0.0.1:20004']}}]\n\
         routes: [{{host: api.test, backend: api}}]"
    ))
}

/// Polls a future once. A free slot is given without waiting, so `Limiter::acquire`
/// completes on its first poll, as it does in the proxy when nothing is queued.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the slot was not free"),
    }
}

/// Keeps the pooled connections alive: the runtime their sockets are registered with
/// (never driven: nothing is sent) and the far ends of their socket pairs.
struct Conns {
    _rt: tokio::runtime::Runtime,
    _ends: Vec<UnixStream>,
}

/// Puts one idle HTTP/1.1 connection into each server's idle list, as
/// `upstream::open::new_h1` makes them, but over a Unix socket pair.
fn fill_idle(runtime: &Runtime) -> Conns {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a tokio runtime");
    let mut ends = Vec::new();
    for backend in &runtime.backends {
        for server in backend.servers().iter() {
            let (near, far) = rt.block_on(async { UnixStream::pair().expect("a socket pair") });
            let h1 = H1::unmetered(UpstreamStream::Plain(PlainStream::Unix(near)));
            server.idle.checkin(Pooled::new(
                h1,
                server.key.clone(),
                backend.settings.policy,
                backend.metrics.idle_tally.clone(),
            ));
            ends.push(far);
        }
    }
    Conns {
        _rt: rt,
        _ends: ends,
    }
}

/// `Router::find` for a Host (already normalised) and a path.
fn route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    let one = one_route();
    // A request's headers exist already: building them is not the lookup's cost.
    let no_headers = http::HeaderMap::new();
    g.bench_function("exact/1_route", |b| {
        b.iter(|| {
            black_box(
                one.router
                    .find(black_box("api.test"), black_box("/v1/items"), &no_headers),
            )
            .is_some()
        })
    });
    let many = many_routes(1000);
    let cases: [(&str, Vec<String>, &str); 4] = [
        (
            "exact/1000_routes",
            (0..1000).map(|i| format!("h{i}.test")).collect(),
            "/v1/items",
        ),
        (
            "wildcard/1000_routes",
            (0..1000).map(|i| format!("x{i}.wild.test")).collect(),
            "/",
        ),
        (
            "catch_all/1000_routes",
            (0..1000).map(|i| format!("u{i}.example.org")).collect(),
            "/",
        ),
        (
            "longest_prefix/4_prefixes",
            vec!["p.test".to_string()],
            "/api/v2/items",
        ),
    ];
    for (name, hosts, path) in cases {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % hosts.len();
                black_box(many.router.find(&hosts[i], black_box(path), &no_headers)).is_some()
            })
        });
    }
    g.finish();
}

/// `Backend::pick` over four servers, by each balancing rule.
fn policy(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy");
    for (balance, extra, hash) in [
        ("round_robin", "", None),
        ("least_request", "", None),
        ("p2c", "", None),
        ("hash", "hash_on: 'header:x-user',", Some(0x5eed_u64)),
    ] {
        let rt = four_servers(balance, extra);
        let backend = rt.backends[0].clone();
        let servers = backend.servers();
        let mut key = hash;
        g.bench_function(BenchmarkId::new("pick/4_servers", balance), |b| {
            b.iter(|| {
                key = key.map(|k| k.wrapping_add(1));
                black_box(backend.pick(&servers, |s| s.available(), key)).is_some()
            })
        });
    }
    g.finish();
}

/// `Limiter::acquire` (pick + in-flight count; the queue lock with limits) and the
/// slot's release, as `limit::acquire` does when a slot is free.
fn slot(c: &mut Criterion) {
    let mut g = c.benchmark_group("slot");
    for (name, extra) in [
        ("unlimited", ""),
        (
            "limited",
            "limits: {maxconn_per_server: 100, maxconn: 1000},",
        ),
    ] {
        let rt = four_servers("least_request", extra);
        let backend = rt.backends[0].clone();
        g.bench_function(BenchmarkId::new("acquire_release/4_servers", name), |b| {
            b.iter(|| {
                let slot = ready(Limiter::acquire(&backend, None, None)).expect("a slot");
                drop(black_box(slot));
            })
        });
    }
    g.finish();
}

/// A server's HTTP/1.1 idle list with one hyper connection: `upstream::acquire`'s
/// checkout (pop, the still-open probe, idle tally) and `Upstream::release`'s checkin.
fn idle(c: &mut Criterion) {
    let mut g = c.benchmark_group("h1_idle");
    let rt = one_route();
    let _conns = fill_idle(&rt);
    let backend = rt.backends[0].clone();
    let server = backend.servers()[0].clone();
    g.bench_function("checkout_checkin", |b| {
        b.iter(|| {
            let mut pooled = server.idle.checkout().expect("an idle connection");
            assert!(pooled.conn.still_open());
            pooled.set_idle_tally(&backend.metrics.idle_tally);
            if server.available() {
                server.idle.checkin(black_box(pooled));
            }
        })
    });
    g.finish();
}

/// What `Proxy::handle` and `Proxy::forward` do for one request to a server with an
/// idle HTTP/1.1 connection, without the I/O: route, retry-budget count, hash key,
/// slot, checkout (still-open probe, tally, reuse counters), then checkin and slot release.
/// Not included: Host parsing, head rewriting, request ids, access-log and request
/// metrics (see bench/micro/README.md).
fn request(rt: &Runtime, host: &str, path: &str, headers: &http::HeaderMap) {
    let route = rt
        .router
        .find(host, path, &http::HeaderMap::new())
        .expect("a route");
    let backend = &route.backend;
    backend.budget.request();
    let hash = backend.hash_key(headers, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let slot = ready(Limiter::acquire(backend, hash, None)).expect("a slot");
    let server = slot.member().clone();
    let mut pooled = server.idle.checkout().expect("an idle connection");
    assert!(pooled.conn.still_open());
    pooled.set_idle_tally(&backend.metrics.idle_tally);
    backend.metrics.reused.inc();
    server.reused.fetch_add(1, Ordering::Relaxed);
    pooled.note_request();
    // ... the exchange (I/O) would be here ...
    if server.available() {
        server.idle.checkin(black_box(pooled));
    }
    drop(slot);
}

fn path(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_path");
    let headers = http::HeaderMap::new();
    let one = one_route();
    let one_conns = fill_idle(&one);
    g.bench_function("1_route", |b| {
        b.iter(|| request(&one, black_box("api.test"), "/v1/items", &headers))
    });
    drop(one_conns);
    let many = many_routes(1000);
    let _many_conns = fill_idle(&many);
    g.bench_function("1000_routes/same_host", |b| {
        b.iter(|| request(&many, black_box("h500.test"), "/v1/items", &headers))
    });
    let hosts: Vec<String> = (0..1000).map(|i| format!("h{i}.test")).collect();
    let mut i = 0usize;
    g.bench_function("1000_routes/all_hosts", |b| {
        b.iter(|| {
            i = (i + 1) % hosts.len();
            request(&many, &hosts[i], "/v1/items", &headers)
        })
    });
    g.finish();
}

criterion_group!(benches, route, policy, slot, idle, path);
criterion_main!(benches);
