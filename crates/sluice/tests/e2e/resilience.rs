//! Pool control and resilience: source addresses, redispatch of connect failures to
//! another server, the retry budget, passive ejection and active health checks, the
//! warm pool, and the balancing rules (`hash`, `least_request`, `round_robin`).
//!
//! Dead servers are ports held by a bound socket that never listens, so a connect to
//! them is refused at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::{HeaderName, Method};
use sluice_testkit::{app_config, get, request, send, Origin, Response, Sluice};
use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpSocket,
    time::Instant,
};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// How long a polled condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// The `servers` entries of these origins.
fn specs(origins: &[&Origin]) -> Vec<String> {
    origins.iter().map(|o| o.server_spec()).collect()
}

/// An address nothing listens on, so connects to it are refused: a socket bound on
/// port 0 that never listens. It holds the port for as long as it lives (it has no
/// `SO_REUSEADDR`), so no other test's origin and no outgoing connection can take the
/// port meanwhile, as they could with a listener that was bound and closed again.
struct DeadServer {
    _socket: TcpSocket,
    spec: String,
}

impl DeadServer {
    fn new() -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind a port to hold");
        let spec = socket.local_addr().expect("local addr").to_string();
        Self {
            _socket: socket,
            spec,
        }
    }

    /// The address as a backend `servers` entry (and `server` metric label).
    fn spec(&self) -> String {
        self.spec.clone()
    }
}

/// Polls `condition` until it holds; panics with `what` after [`DEADLINE`].
async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One series from `/metrics` (`None` if absent); panics if `/metrics` does not answer
/// within [`DEADLINE`] (rather than after the client's own, much longer, timeout).
async fn scrape(sluice: &Sluice, series: &str) -> Option<f64> {
    tokio::time::timeout(DEADLINE, sluice.metric(series))
        .await
        .unwrap_or_else(|_| panic!("/metrics did not answer within {DEADLINE:?}"))
}

/// The value of a counter or gauge, 0 when the series is not on `/metrics` yet.
async fn metric(sluice: &Sluice, series: &str) -> f64 {
    scrape(sluice, series).await.unwrap_or(0.0)
}

fn retries() -> &'static str {
    r#"sluice_upstream_retries_total{backend="app"}"#
}

fn refused() -> &'static str {
    r#"sluice_upstream_connect_errors_total{backend="app",errno="ECONNREFUSED"}"#
}

fn healthy(server: &str) -> String {
    format!(r#"sluice_server_healthy{{backend="app",server="{server}"}}"#)
}

fn ejections(server: &str) -> String {
    format!(r#"sluice_server_ejections_total{{backend="app",server="{server}"}}"#)
}

fn checks(server: &str, result: &str) -> String {
    format!(r#"sluice_health_checks_total{{backend="app",server="{server}",result="{result}"}}"#)
}

/// `GET /` with `name: value` over a fresh connection.
async fn get_with(addr: SocketAddr, name: &str, value: &str) -> Response {
    let mut req = request(Method::GET, "api.test", "/", http_body_util::Empty::new());
    req.headers_mut()
        .insert(name.parse::<HeaderName>().unwrap(), value.parse().unwrap());
    send(addr, req)
        .await
        .unwrap_or_else(|e| panic!("GET / ({name}: {value}) via {addr}: {e}"))
}

/// `GET /` from a client socket bound to `source` (any 127.x address is local on
/// Linux); returns the status code.
async fn get_from(source: IpAddr, addr: SocketAddr) -> u16 {
    let exchange = async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.unwrap();
        let text = String::from_utf8_lossy(&received).into_owned();
        text.split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET / from {source} via {addr}: no answer"))
}

/// Runs `send` (one request) and returns the index of the only origin whose request
/// count grew, panicking if not exactly one did.
async fn landed_on<F: std::future::Future<Output = u16>>(origins: &[&Origin], send: F) -> usize {
    let before: Vec<u64> = origins.iter().map(|o| o.requests()).collect();
    assert_eq!(send.await, 200);
    let grew: Vec<usize> = origins
        .iter()
        .zip(&before)
        .enumerate()
        .filter(|(_, (o, b))| o.requests() > **b)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(grew.len(), 1, "one request reached origins {grew:?}");
    grew[0]
}

#[tokio::test]
async fn upstream_connections_are_bound_to_each_source_address_in_turn() {
    let origin = Origin::start().await;
    let yaml = app_config(
        &specs(&[&origin]),
        "    source_addresses: [127.0.0.2, 127.0.0.3]\n    pool: {max_idle_per_server: 0}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    for _ in 0..10 {
        assert_eq!(get(egress, "api.test", "/").await.status, 200);
    }
    assert_eq!(
        origin.accepted(),
        10,
        "max_idle_per_server: 0 opens a connection per request"
    );
    let peers = origin.peers();
    let sources: BTreeSet<IpAddr> = peers.iter().map(SocketAddr::ip).collect();
    let expected: BTreeSet<IpAddr> = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)]
        .into_iter()
        .map(IpAddr::V4)
        .collect();
    assert_eq!(sources, expected, "peers seen by the origin: {peers:?}");
    let from_2 = peers
        .iter()
        .filter(|p| p.ip() == IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .count();
    assert_eq!(
        from_2, 5,
        "in turn: half of the connections from each source"
    );

    let metrics = tokio::time::timeout(DEADLINE, sluice.metrics())
        .await
        .expect("/metrics answers");
    for source in ["127.0.0.2", "127.0.0.3"] {
        let series =
            format!(r#"sluice_upstream_source_connections{{backend="app",source="{source}"}}"#);
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("{series} "))),
            "{series} missing from /metrics:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_refused_connect_is_redispatched_to_the_live_server() {
    let origin = Origin::start().await;
    let dead = DeadServer::new();
    let yaml = app_config(
        &[dead.spec(), origin.server_spec()],
        "    balance: round_robin",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    for i in 0..20 {
        let r = get(egress, "api.test", "/").await;
        assert_eq!(
            r.status,
            200,
            "request {i}: {:?} {}",
            r.header("sluice-error"),
            r.text()
        );
    }
    assert_eq!(origin.requests(), 20);
    let retried = metric(&sluice, retries()).await;
    assert!(retried >= 1.0, "retries_total is {retried}");
    let errors = metric(&sluice, refused()).await;
    assert!(errors >= 1.0, "ECONNREFUSED connect errors: {errors}");
    assert_eq!(
        retried, errors,
        "each refused connect was retried on the live server"
    );
}

#[tokio::test]
async fn the_retry_budget_stops_a_retry_storm_against_dead_servers() {
    let (dead_a, dead_b) = (DeadServer::new(), DeadServer::new());
    let yaml = app_config(
        &[dead_a.spec(), dead_b.spec()],
        "    retries: {attempts: 1, budget: {ratio: 0.1, min_per_second: 0}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    for i in 0..100 {
        let r = get(egress, "api.test", "/").await;
        assert_eq!(
            (r.status.as_u16(), r.header("sluice-error")),
            (502, Some("connect_refused")),
            "request {i}: {}",
            r.text()
        );
    }
    let retried = metric(&sluice, retries()).await;
    let exhausted = metric(
        &sluice,
        r#"sluice_retry_budget_exhausted_total{backend="app"}"#,
    )
    .await;
    let errors = metric(&sluice, refused()).await;
    assert!(
        (1.0..=10.0).contains(&retried),
        "ratio 0.1 of 100 requests allows at most 10 retries, got {retried}"
    );
    assert!(exhausted >= 90.0, "budget_exhausted_total is {exhausted}");
    assert_eq!(
        retried + exhausted,
        100.0,
        "each request asks for one retry: granted or refused"
    );
    assert!(
        errors <= 110.0,
        "{errors} connects for 100 requests: retries amplified the load"
    );
    assert_eq!(errors, 100.0 + retried, "one connect per request and retry");
}

#[tokio::test]
async fn consecutive_connect_failures_eject_a_server_until_its_ejection_time_runs_out() {
    let origin = Origin::start().await;
    let dead_server = DeadServer::new();
    let dead = dead_server.spec();
    let yaml = app_config(
        &[dead.clone(), origin.server_spec()],
        "    balance: round_robin\n    retries: {attempts: 1}\n    \
         health: {passive: {consecutive_failures: 2, ejection_time: 1s}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    // Round robin sends every other request to the dead server first; the retry saves
    // them, and the second failure in a row ejects it.
    let mut sent = 0;
    while metric(&sluice, &ejections(&dead)).await < 1.0 {
        assert!(sent < 20, "not ejected after {sent} requests");
        assert_eq!(get(egress, "api.test", "/").await.status, 200);
        sent += 1;
    }
    assert_eq!(metric(&sluice, &ejections(&dead)).await, 1.0);
    assert_eq!(scrape(&sluice, &healthy(&dead)).await, Some(0.0));

    // While ejected (1 s), the dead server is skipped: no connect is even tried.
    let errors = metric(&sluice, refused()).await;
    let requests = origin.requests();
    for _ in 0..20 {
        assert_eq!(get(egress, "api.test", "/").await.status, 200);
    }
    assert_eq!(origin.requests(), requests + 20);
    assert_eq!(
        metric(&sluice, refused()).await,
        errors,
        "a connect was tried on the ejected server"
    );

    // The ejection runs out: the server is available again...
    sluice.wait_for_metric(&healthy(&dead), |v| v == 1.0).await;

    // ...gets tried, fails twice more, and is ejected again for twice as long.
    let mut sent = 0;
    while metric(&sluice, &ejections(&dead)).await < 2.0 {
        assert!(sent < 20, "not ejected again after {sent} requests");
        assert_eq!(get(egress, "api.test", "/").await.status, 200);
        sent += 1;
    }
    assert!(metric(&sluice, refused()).await >= errors + 2.0);
    assert_eq!(scrape(&sluice, &healthy(&dead)).await, Some(0.0));
    let line = sluice
        .wait_for_stderr(|l| l.contains("server ejected") && l.contains(r#""ejected_for":"2s""#))
        .await;
    assert!(line.contains(&dead), "{line}");
}

#[tokio::test]
async fn when_active_checks_fail_on_every_server_sluice_answers_503_no_healthy_server() {
    let origin = Origin::start().await;
    let server = origin.server_spec();
    let yaml = app_config(
        &specs(&[&origin]),
        "    health: {check: {path: /status/503, interval: 100ms, fall: 1}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    sluice
        .wait_for_metric(&healthy(&server), |v| v == 0.0)
        .await;
    assert!(metric(&sluice, &checks(&server, "fail")).await >= 1.0);
    assert_eq!(metric(&sluice, &checks(&server, "pass")).await, 0.0);

    let checks_seen = origin.requests();
    let r = get(egress, "api.test", "/").await;
    assert_eq!(
        (r.status.as_u16(), r.header("sluice-error")),
        (503, Some("no_healthy_server")),
        "{}",
        r.text()
    );
    assert!(
        r.header("x-origin-headers").is_none(),
        "sluice answered, not the origin"
    );
    assert!(
        origin.requests() <= checks_seen + 1,
        "only health checks may reach a down server"
    );
}

#[tokio::test]
async fn a_server_that_passes_its_active_checks_stays_healthy_and_serves() {
    let origin = Origin::start().await;
    let server = origin.server_spec();
    let yaml = app_config(
        &specs(&[&origin]),
        "    health: {check: {path: /status/200, interval: 100ms, fall: 1}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    sluice
        .wait_for_metric(&checks(&server, "pass"), |v| v >= 2.0)
        .await;
    assert_eq!(metric(&sluice, &checks(&server, "fail")).await, 0.0);
    assert_eq!(scrape(&sluice, &healthy(&server)).await, Some(1.0));
    let r = get(egress, "api.test", "/").await;
    assert_eq!(r.status, 200, "{:?} {}", r.header("sluice-error"), r.text());
    assert_eq!(r.header("x-origin-path"), Some("/"));
}

#[tokio::test]
async fn min_idle_per_server_opens_warm_connections_before_any_request() {
    let origin = Origin::start().await;
    let yaml = app_config(&specs(&[&origin]), "    pool: {min_idle_per_server: 3}");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    origin.wait_until(|s| s.accepted >= 3).await;
    sluice
        .wait_for_metric(r#"sluice_upstream_idle_connections{backend="app"}"#, |v| {
            v == 3.0
        })
        .await;
    assert_eq!(origin.requests(), 0, "warm connections carry no request");
    let opened = r#"sluice_upstream_connections_opened_total{backend="app"}"#;
    assert_eq!(metric(&sluice, opened).await, 3.0);

    let r = get(egress, "api.test", "/").await;
    assert_eq!(r.status, 200);
    assert!(
        r.origin_conn_id().is_some_and(|id| id <= 3),
        "served on connection {:?}, not a warm one",
        r.origin_conn_id()
    );
    assert_eq!(r.header("x-origin-conn-request"), Some("1"));
    assert_eq!(metric(&sluice, opened).await, 3.0, "no new connection");
    assert_eq!(
        metric(
            &sluice,
            r#"sluice_upstream_connections_reused_total{backend="app"}"#
        )
        .await,
        1.0
    );
    assert_eq!(origin.accepted(), 3);
}

#[tokio::test]
async fn balance_hash_on_a_header_keeps_each_key_on_one_server() {
    let (a, b, c) = (
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    );
    let origins = [&a, &b, &c];
    let yaml = app_config(
        &specs(&origins),
        "    balance: hash\n    hash_on: \"header:X-User\"",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    let before: Vec<u64> = origins.iter().map(|o| o.requests()).collect();
    for _ in 0..30 {
        assert_eq!(get_with(egress, "X-User", "alice").await.status, 200);
    }
    let grew: Vec<u64> = origins
        .iter()
        .zip(&before)
        .map(|(o, b)| o.requests() - b)
        .collect();
    assert!(
        grew.contains(&30) && grew.iter().filter(|n| **n == 0).count() == 2,
        "30 requests of one user spread as {grew:?}"
    );

    let mut used = BTreeSet::new();
    for user in 0..30 {
        let user = format!("user-{user}");
        let first = landed_on(&origins, async {
            get_with(egress, "X-User", &user).await.status.as_u16()
        })
        .await;
        let again = landed_on(&origins, async {
            get_with(egress, "x-user", &user).await.status.as_u16()
        })
        .await;
        assert_eq!(first, again, "{user} moved from origin {first} to {again}");
        used.insert(first);
    }
    assert!(used.len() >= 2, "30 users all hashed to origins {used:?}");
}

#[tokio::test]
async fn balance_hash_on_client_ip_keeps_each_client_on_one_server() {
    let (a, b, c) = (
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    );
    let origins = [&a, &b, &c];
    let yaml = app_config(
        &specs(&origins),
        "    balance: hash\n    hash_on: client_ip",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    for _ in 0..30 {
        assert_eq!(get(egress, "api.test", "/").await.status, 200);
    }
    let counts: Vec<u64> = origins.iter().map(|o| o.requests()).collect();
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [0, 0, 30],
        "30 requests from 127.0.0.1 spread as {counts:?}"
    );

    // Other client addresses hash elsewhere, each to its own fixed server.
    let mut used = BTreeSet::new();
    for last in 2..22 {
        let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
        let first = landed_on(&origins, get_from(client, egress)).await;
        let again = landed_on(&origins, get_from(client, egress)).await;
        assert_eq!(
            first, again,
            "client {client} moved from {first} to {again}"
        );
        used.insert(first);
    }
    assert!(
        used.len() >= 2,
        "20 client IPs all hashed to origins {used:?}"
    );
}

#[tokio::test]
async fn balance_least_request_avoids_the_server_busy_with_a_slow_request() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    let origins = [&a, &b];
    let yaml = app_config(&specs(&origins), "    balance: least_request");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    let slow = tokio::spawn(async move { get(egress, "api.test", "/delay/1000").await });
    wait_for("the slow request to reach an origin", || {
        a.in_flight() + b.in_flight() == 1
    })
    .await;
    let (busy, idle) = if a.in_flight() == 1 {
        (&a, &b)
    } else {
        (&b, &a)
    };

    for i in 0..10 {
        let r = get(egress, "api.test", "/").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            (busy.requests(), idle.requests()),
            (1, i + 1),
            "request {i} went to the busy server"
        );
    }
    assert_eq!(
        busy.in_flight(),
        1,
        "the slow request outlasted the fast ones"
    );
    assert_eq!(slow.await.unwrap().status, 200);
}

#[tokio::test]
async fn balance_round_robin_alternates_between_servers() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    let yaml = app_config(&specs(&[&a, &b]), "    balance: round_robin");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    let mut order = Vec::new();
    for _ in 0..10 {
        order.push(
            landed_on(&[&a, &b], async {
                get(egress, "api.test", "/").await.status.as_u16()
            })
            .await,
        );
    }
    assert_eq!((a.requests(), b.requests()), (5, 5), "order: {order:?}");
    assert!(
        order.windows(2).all(|w| w[0] != w[1]),
        "round robin alternates: {order:?}"
    );
}
