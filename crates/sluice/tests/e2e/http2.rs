//! HTTP/2 upstream: HTTP/1.1 clients, multiplexed onto one h2 connection per server;
//! a second connection only past `max_concurrent_streams`; GOAWAY handled without a
//! client error; `protocol: auto` follows ALPN.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, get, Certs, Origin, Sluice};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn config(origin: &Origin, certs: Option<&Certs>, backend_extra: &str) -> String {
    let tls = certs
        .map(|c| format!("    tls: {{ca_file: \"{}\"}}\n", c.ca_file().display()))
        .unwrap_or_default();
    app_config(&[origin.server_spec()], &format!("{tls}{backend_extra}"))
}

/// 100 concurrent client requests, each on its own client connection. The origin
/// holds every one until all 100 are in flight together (`/gate/100`), so how many
/// upstream streams are open at once does not depend on how fast they arrive.
async fn hundred_concurrent(sluice: &Sluice) -> Vec<sluice_testkit::client::Response> {
    let egress = sluice.listener_addr("egress");
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(async move { get(egress, "api.test", "/gate/100").await }))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_requests_share_one_tls_h2_connection() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = Origin::builder().tls(&certs).http2().start().await;
    let yaml = config(&origin, Some(&certs), "    protocol: http2");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let responses = hundred_concurrent(&sluice).await;
    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-origin-version"), Some("HTTP/2.0"));
    }
    assert_eq!(origin.requests(), 100);
    assert_eq!(origin.accepted(), 1, "one h2 connection carries all 100");
    assert_eq!(
        origin.max_in_flight(),
        100,
        "they were multiplexed, not serialised"
    );
    let opened = sluice
        .metric(r#"sluice_upstream_connections_opened_total{backend="app"}"#)
        .await;
    assert_eq!(opened, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2c_past_max_concurrent_streams_opens_a_second_connection_only() {
    let origin = Origin::builder().http2().start().await;
    let yaml = config(
        &origin,
        None,
        "    protocol: http2\n    pool: {max_concurrent_streams: 50}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let responses = hundred_concurrent(&sluice).await;
    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(origin.requests(), 100);
    assert_eq!(origin.max_in_flight(), 100);
    assert_eq!(
        origin.accepted(),
        2,
        "100 concurrent at 50 streams per connection"
    );
}

#[tokio::test]
async fn goaway_is_not_a_client_error() {
    let certs = Certs::new(&["127.0.0.1"]);
    // The origin sends GOAWAY after every 3 requests on a connection.
    let origin = Origin::builder()
        .tls(&certs)
        .http2()
        .goaway_after(3)
        .start()
        .await;
    let yaml = config(&origin, Some(&certs), "    protocol: http2");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    for i in 0..20 {
        let r = get(egress, "api.test", "/").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    assert_eq!(origin.requests(), 20);
    assert!(
        origin.accepted() >= 7,
        "a connection that said GOAWAY is replaced: {} connections",
        origin.accepted()
    );
}

#[tokio::test]
async fn auto_uses_h2_when_the_server_offers_it_and_http1_when_not() {
    let certs = Certs::new(&["127.0.0.1"]);
    let h2 = Origin::builder().tls(&certs).alpn_h2_and_h1().start().await;
    let h1 = Origin::builder().tls(&certs).start().await;
    for (origin, version) in [(&h2, "HTTP/2.0"), (&h1, "HTTP/1.1")] {
        let yaml = config(origin, Some(&certs), "    protocol: auto");
        let sluice = Sluice::start(SLUICE, &yaml).await;
        let egress = sluice.listener_addr("egress");
        for _ in 0..5 {
            let r = get(egress, "api.test", "/").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-origin-version"), Some(version));
        }
        assert_eq!(origin.accepted(), 1, "{version}: one pooled connection");
    }
}

/// A server that says GOAWAY while twenty streams are in flight: every client gets
/// its answer and the pool moves to a new connection each round. Whether a stream
/// crosses the GOAWAY on the wire (and is re-sent) is a race, so this test does not
/// count retries; `refused_streams_are_re_sent_and_no_client_sees_them` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn goaway_under_concurrency_loses_no_request() {
    let origin = Origin::builder().http2().goaway_after(5).start().await;
    let yaml = config(&origin, None, "    protocol: http2");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    for round in 0..5 {
        let tasks: Vec<_> = (0..20)
            .map(|_| tokio::spawn(async move { get(egress, "api.test", "/delay/20").await }))
            .collect();
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, 200, "round {round}: {}", r.text());
        }
    }
    assert!(
        origin.accepted() >= 5,
        "each round's connection said GOAWAY: {} connections",
        origin.accepted()
    );
}

/// Streams the server refused (RST_STREAM REFUSED_STREAM: not processed) are
/// re-sent, and counted as retries; the clients see only 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_streams_are_re_sent_and_no_client_sees_them() {
    let origin = Origin::builder().http2().refuse_first(3).start().await;
    // Two requests can each open a connection; a stream refused on the first may then
    // be re-sent among the second's first three and be refused again, so a second
    // attempt must be allowed for the test not to depend on that timing.
    let yaml = config(
        &origin,
        None,
        "    protocol: http2\n    retries: {attempts: 3, budget: {ratio: 1.0}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    let tasks: Vec<_> = (0..10)
        .map(|_| tokio::spawn(async move { get(egress, "api.test", "/delay/20").await }))
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let refused = 3.0 * origin.accepted() as f64;
    let retries = sluice
        .metric(r#"sluice_upstream_retries_total{backend="app"}"#)
        .await
        .unwrap_or(0.0);
    assert_eq!(retries, refused, "each refused stream was re-sent once");
    assert_eq!(origin.requests() as f64, 10.0 + refused);
}
