//! Limits and queueing: `limits.maxconn_per_server` caps what the origin sees whatever
//! the client concurrency, requests over it wait in a FIFO queue, and a full queue or
//! an expired wait gets a 503 that says which. `limits.max_client_connections` pauses
//! accepting instead of dropping clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, get, Conn, Origin, Sluice};
use std::{net::SocketAddr, time::Duration};
use tokio::time::Instant;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// An origin, and sluice with one backend `app` for every host pointing at it, with
/// extra backend lines (already indented by four spaces) and extra top-level YAML;
/// and sluice's `egress` listener.
async fn start(backend_extra: &str, top: &str) -> (Origin, Sluice, SocketAddr) {
    let origin = Origin::start().await;
    let yaml = format!(
        "{top}\n{}",
        app_config(&[origin.server_spec()], backend_extra)
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    (origin, sluice, egress)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_origin_never_sees_more_than_maxconn_under_50_concurrent_clients() {
    let (origin, sluice, egress) = start(
        "    limits: {maxconn_per_server: 4}\n    timeouts: {queue: 30s}",
        "",
    )
    .await;
    let clients: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..4 {
                    statuses.push(get(egress, "api.test", "/delay/20").await.status);
                }
                statuses
            })
        })
        .collect();
    for c in clients {
        let statuses = c.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    assert_eq!(origin.requests(), 200);
    assert_eq!(
        origin.max_in_flight(),
        4,
        "50 clients, maxconn_per_server 4: the origin saw {} at once",
        origin.max_in_flight()
    );
    assert!(
        origin.accepted() <= 4,
        "one connection per slot at most, got {}",
        origin.accepted()
    );
    let queued = sluice
        .metric(r#"sluice_backend_queue_duration_seconds_count{backend="app"}"#)
        .await
        .unwrap();
    assert!(queued > 0.0, "requests must have waited in the queue");
    sluice
        .wait_for_metric(r#"sluice_backend_queue_depth{backend="app"}"#, |v| v == 0.0)
        .await;
}

#[tokio::test]
async fn a_request_that_waits_longer_than_timeout_queue_gets_503_queue_timeout() {
    let (origin, sluice, egress) = start(
        "    limits: {maxconn_per_server: 1}\n    timeouts: {queue: 200ms}",
        "",
    )
    .await;
    let slow = tokio::spawn(async move { get(egress, "api.test", "/delay/3000").await });
    origin.wait_until(|s| s.in_flight == 1).await;

    let started = Instant::now();
    let r = get(egress, "api.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("sluice-error"), Some("queue_timeout"));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(r.text().contains("200ms"), "{}", r.text());

    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(
        origin.requests(),
        1,
        "the expired request never reached the origin"
    );
    let errors = sluice
        .metric(r#"sluice_upstream_errors_total{backend="app",cause="queue_timeout"}"#)
        .await;
    assert_eq!(errors, Some(1.0));
}

#[tokio::test]
async fn a_request_predicted_to_wait_past_timeout_queue_is_refused_without_waiting() {
    let (origin, sluice, egress) = start(
        "    limits: {maxconn_per_server: 1}\n    timeouts: {queue: 300ms}",
        "",
    )
    .await;
    // Teaches sluice that a request holds its slot for about a second.
    assert_eq!(get(egress, "api.test", "/delay/1000").await.status, 200);
    let slow = tokio::spawn(async move { get(egress, "api.test", "/delay/2000").await });
    origin.wait_until(|s| s.in_flight == 1).await;

    let r = get(egress, "api.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("sluice-error"), Some("queue_timeout"));
    assert!(r.text().contains("answered at once"), "{}", r.text());
    assert!(!slow.is_finished(), "refused while the slot was still held");
    let queued = sluice
        .metric(r#"sluice_backend_queue_duration_seconds_count{backend="app"}"#)
        .await;
    assert_eq!(queued, Some(0.0), "it never joined the queue");
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn a_full_queue_answers_503_queue_full_at_once_and_the_queued_request_still_succeeds() {
    let (origin, sluice, egress) = start(
        "    limits: {maxconn_per_server: 1, max_queue: 1}\n    timeouts: {queue: 30s}",
        "",
    )
    .await;
    let first = tokio::spawn(async move { get(egress, "api.test", "/delay/1500").await });
    origin.wait_until(|s| s.in_flight == 1).await;
    let second = tokio::spawn(async move { get(egress, "api.test", "/").await });
    sluice
        .wait_for_metric(r#"sluice_backend_queue_depth{backend="app"}"#, |v| v == 1.0)
        .await;

    let third = get(egress, "api.test", "/").await;
    assert_eq!(third.status, 503);
    assert_eq!(third.header("sluice-error"), Some("queue_full"));

    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(
        second.await.unwrap().status,
        200,
        "FIFO: the waiter got the slot"
    );
    assert_eq!(origin.requests(), 2);
    assert_eq!(origin.max_in_flight(), 1);
}

#[tokio::test]
async fn at_max_client_connections_sluice_stops_accepting_until_a_client_leaves() {
    let (origin, sluice, egress) =
        start("", "limits: {max_client_connections: 2, when_full: wait}").await;

    let mut a = Conn::open(egress).await;
    assert_eq!(a.get("api.test", "/").await.status, 200);
    let mut b = Conn::open(egress).await;
    assert_eq!(b.get("api.test", "/").await.status, 200);

    // The third client connects (the kernel's backlog holds it) but is not served...
    let third = tokio::spawn(async move { get(egress, "api.test", "/").await });
    sluice
        .wait_for_metric("sluice_client_accept_paused_total", |v| v >= 1.0)
        .await;
    assert!(!third.is_finished());
    assert_eq!(origin.requests(), 2);

    // ...until one leaves.
    drop(a);
    assert_eq!(third.await.unwrap().status, 200);
    assert_eq!(origin.requests(), 3);
    assert_eq!(b.get("api.test", "/").await.status, 200);
}

/// The default at the limit: a client over it gets a fast 503 `overloaded` (and the
/// metric counts it) instead of waiting; once a client leaves, the next is served.
#[tokio::test]
async fn at_max_client_connections_new_clients_get_a_fast_503_overloaded() {
    let (origin, sluice, egress) = start("", "limits: {max_client_connections: 2}").await;
    let mut a = Conn::open(egress).await;
    assert_eq!(a.get("api.test", "/").await.status, 200);
    let mut b = Conn::open(egress).await;
    assert_eq!(b.get("api.test", "/").await.status, 200);

    for _ in 0..3 {
        let r = get(egress, "api.test", "/").await;
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("sluice-error"), Some("overloaded"));
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert_eq!(origin.requests(), 2, "shed clients never reach the origin");
    sluice
        .wait_for_metric("sluice_client_connections_shed_total", |v| v == 3.0)
        .await;
    assert_eq!(
        b.get("api.test", "/").await.status,
        200,
        "the admitted ones go on"
    );
    drop(a);
    let start = tokio::time::Instant::now();
    loop {
        let r = get(egress, "api.test", "/").await;
        if r.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a freed slot is used"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `limits.unready_after`: shedding every second for that long turns `/readyz` to
/// 503 while `/healthz` stays 200; once shedding stops, ready again.
#[tokio::test]
async fn sustained_shedding_turns_readyz_not_ready_and_healthz_stays_ok() {
    let (_origin, sluice, egress) =
        start("", "limits: {max_client_connections: 1, unready_after: 2s}").await;
    let mut held = Conn::open(egress).await;
    assert_eq!(held.get("api.test", "/").await.status, 200);
    let ready = |s: &Sluice| {
        let admin = s.admin_addr();
        async move { get(admin, "admin", "/readyz").await.status.as_u16() }
    };
    assert_eq!(ready(&sluice).await, 200);
    let start = Instant::now();
    loop {
        let r = get(egress, "api.test", "/").await;
        assert_eq!(r.header("sluice-error"), Some("overloaded"));
        if ready(&sluice).await == 503 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "readyz never turned 503"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "not before unready_after"
    );
    let health = get(sluice.admin_addr(), "admin", "/healthz").await;
    assert_eq!(health.status, 200, "liveness never follows load");
    // No more shedding: ready again within a few seconds.
    let quiet = Instant::now();
    while ready(&sluice).await != 200 {
        assert!(
            quiet.elapsed() < Duration::from_secs(10),
            "readyz stayed 503"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held.get("api.test", "/").await.status, 200);
}

/// Running out of local ports shows as EADDRNOTAVAIL: in the `sluice-error` cause and
/// in the errno metric. Reproduced without exhausting anything: binding to a source
/// address the host does not have fails with the same errno, locally, before any
/// packet is sent.
#[tokio::test]
async fn eaddrnotavail_is_visible_in_the_answer_and_the_errno_metric() {
    let (origin, sluice, egress) = start(
        "    source_addresses: [192.0.2.1]\n    retries: {attempts: 0}",
        "",
    )
    .await;
    let r = get(egress, "api.test", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("sluice-error"), Some("connect_addr_not_available"));
    assert!(r.text().contains("from 192.0.2.1"), "{}", r.text());
    let errno = sluice
        .metric(r#"sluice_upstream_connect_errors_total{backend="app",errno="EADDRNOTAVAIL"}"#)
        .await;
    assert_eq!(errno, Some(1.0));
    assert_eq!(origin.accepted(), 0);
}
