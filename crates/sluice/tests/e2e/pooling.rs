//! The pool: many short client connections become a few long upstream ones, stale
//! pooled connections never surface as client errors, and every eviction rule
//! (`idle_timeout`, `max_requests_per_connection`, `max_idle_per_server`) and the
//! sharing rule (same server + same TLS settings = same pool) hold end to end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{get, Certs, Origin, Sluice};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A sluice config with an admin listener, one `egress` listener and the given backends
/// (YAML list items, already indented by four spaces) routed by host.
fn config(routes: &str, backends: &str) -> String {
    format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes:
{routes}
backends:
{backends}
"#
    )
}

/// One backend called `app` for every host, pointing at `origin`, with an extra
/// `pool:` setting (or none) and plain HTTP.
fn plain_app(origin: &Origin, pool: &str) -> String {
    config(
        r#"  - {host: "*", backend: app}"#,
        &format!(
            "  - name: app\n    servers: [\"{}\"]\n    pool: {{{pool}}}\n",
            origin.server_spec()
        ),
    )
}

/// The value of one series on `/metrics`, e.g.
/// `sluice_upstream_idle_connections{backend="app"}`; panics if it is not there.
async fn metric(sluice: &Sluice, series: &str) -> f64 {
    match sluice.metric(series).await {
        Some(v) => v,
        None => panic!(
            "no series {series} on /metrics:\n{}",
            sluice.metrics().await
        ),
    }
}

/// The headline promise: a thousand clients that each open a new connection for every
/// request (PHP-FPM style) reach a TLS origin over no more connections than there are
/// concurrent requests, so there is no TLS handshake per call and no port exhaustion.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_fresh_client_connections_share_four_upstream_tls_connections() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = Origin::builder().tls(&certs).start().await;
    let yaml = config(
        r#"  - {host: "*", backend: app}"#,
        &format!(
            "  - name: app\n    servers: [\"{}\"]\n    tls: {{ca_file: \"{}\"}}\n",
            origin.server_spec(),
            certs.ca_file().display()
        ),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    let clients: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                let mut statuses = Vec::with_capacity(250);
                for _ in 0..250 {
                    // `get` opens a brand-new TCP connection for every call.
                    statuses.push(get(egress, "api.test", "/").await.status);
                }
                statuses
            })
        })
        .collect();
    let mut ok = 0;
    for client in clients {
        let statuses = client.await.expect("client task");
        assert!(
            statuses.iter().all(|s| *s == 200),
            "a request failed: {statuses:?}"
        );
        ok += statuses.len();
    }
    assert_eq!(ok, 1000);
    assert_eq!(origin.requests(), 1000);
    assert!(
        origin.accepted() <= 4,
        "1000 requests with at most 4 in flight needed {} upstream connections",
        origin.accepted()
    );

    let opened = metric(
        &sluice,
        r#"sluice_upstream_connections_opened_total{backend="app"}"#,
    )
    .await;
    let reused = metric(
        &sluice,
        r#"sluice_upstream_connections_reused_total{backend="app"}"#,
    )
    .await;
    assert!(opened <= 4.0, "opened {opened} upstream connections");
    assert!(
        reused >= 996.0,
        "only {reused} requests reused a connection"
    );
    assert_eq!(
        opened + reused,
        1000.0,
        "every request is either new or reused"
    );
}

/// An origin that closes every connection right after its response (the testkit origin
/// announces it with `Connection: close`): sluice never pools or reuses such a
/// connection, so no client ever sees an error. (The unannounced close, where sluice
/// does reuse the dead connection, is the next test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_closing_after_every_response_never_causes_a_client_error() {
    let origin = Origin::builder().close_after_each_response().start().await;
    let sluice = Sluice::start(SLUICE, &plain_app(&origin, "")).await;
    let egress = sluice.listener_addr("egress");

    for i in 0..300 {
        let response = get(egress, "api.test", "/").await;
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        assert_eq!(response.text(), "hello from origin");
    }
    assert_eq!(
        origin.requests(),
        300,
        "every request reached the origin exactly once"
    );
}

/// A bare-bones keep-alive origin that loses the idle-timeout race every time: it
/// answers the first request on each connection (keep-alive, nothing announced), and
/// when the next request arrives on that connection it closes it without answering,
/// as an origin does whose idle timer fired just as the request came in. Returns its
/// address and a counter of accepted connections.
async fn origin_closing_each_connection_on_its_second_request() -> (SocketAddr, Arc<AtomicU64>) {
    async fn read_head(stream: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(n @ 1..) => head.extend_from_slice(&buf[..n]),
                _ => return false,
            }
        }
        true
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if !read_head(&mut stream).await {
                    return;
                }
                let response = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nhello from origin";
                if stream.write_all(response).await.is_err() {
                    return;
                }
                // The second request: read it, then close without a response.
                read_head(&mut stream).await;
            });
        }
    });
    (addr, accepted)
}

/// The idle-timeout race, lost on purpose: every reused connection is closed by the
/// origin after sluice has sent a GET on it. Sluice re-sends each such request on a
/// fresh connection (counted as a retry), so the client never sees the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_sent_on_a_connection_the_origin_just_closed_is_retried_transparently() {
    let (origin, accepted) = origin_closing_each_connection_on_its_second_request().await;
    let yaml = config(
        r#"  - {host: "*", backend: app}"#,
        &format!("  - name: app\n    servers: [\"{origin}\"]\n"),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    for i in 0..100 {
        let response = get(egress, "api.test", "/").await;
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        assert_eq!(response.text(), "hello from origin");
    }
    // Request 1 opened a connection; each later one first tried the pooled connection
    // (which the origin closed) and was then retried on a new one.
    assert_eq!(accepted.load(Ordering::SeqCst), 100);
    let retries = metric(&sluice, r#"sluice_upstream_retries_total{backend="app"}"#).await;
    assert_eq!(retries, 99.0, "every reused connection needed a retry");
}

/// The same race with a request that is not safe to repeat: a POST with a body that
/// the origin received before closing. Sluice must not send it twice (the origin may
/// have acted on it), so the client gets a 502 naming the cause, and no second
/// connection is opened to replay it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_cut_by_the_origin_closing_is_not_replayed() {
    let (origin, accepted) = origin_closing_each_connection_on_its_second_request().await;
    let yaml = config(
        r#"  - {host: "*", backend: app}"#,
        &format!("  - name: app\n    servers: [\"{origin}\"]\n"),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    assert_eq!(
        get(egress, "api.test", "/").await.status,
        200,
        "warms the pool"
    );
    let post = sluice_testkit::request(
        sluice_testkit::http::Method::POST,
        "api.test",
        "/orders",
        sluice_testkit::http_body_util::Full::new(sluice_testkit::bytes::Bytes::from_static(
            b"order=1",
        )),
    );
    let response = sluice_testkit::send(egress, post).await.unwrap();
    assert_eq!(response.status, 502, "{}", response.text());
    assert_eq!(response.header("sluice-error"), Some("upstream_closed"));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the POST was not replayed on a new connection"
    );
    let retries = metric(&sluice, r#"sluice_upstream_retries_total{backend="app"}"#).await;
    assert_eq!(retries, 0.0);
}

/// The idle-timeout race: the origin closes a connection sluice holds in its pool. The
/// next request, sent only once the origin has closed it, must still succeed (sluice
/// skips or retries the dead connection, it never reports it to the client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_closing_idle_pooled_connections_never_causes_a_client_error() {
    let origin = Origin::builder()
        .close_idle_after(Duration::from_millis(100))
        .start()
        .await;
    let sluice = Sluice::start(SLUICE, &plain_app(&origin, "")).await;
    let egress = sluice.listener_addr("egress");

    for i in 0..10u64 {
        let response = get(egress, "api.test", "/").await;
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        assert_eq!(response.header("x-origin-conn-request"), Some("1"));
        // The connection that served it now sits in sluice's pool; wait until the
        // origin has closed it behind sluice's back.
        origin.wait_until(|s| s.closed == i + 1).await;
    }
    assert_eq!(origin.requests(), 10);
    assert_eq!(origin.accepted(), 10);
}

/// `idle_timeout`: an unused pooled connection is closed (the origin sees it go and the
/// idle gauge drops to 0), and the next request opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_idle_timeout() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &plain_app(&origin, "idle_timeout: 300ms")).await;
    let egress = sluice.listener_addr("egress");
    let idle = r#"sluice_upstream_idle_connections{backend="app"}"#;

    assert_eq!(get(egress, "api.test", "/").await.status, 200);
    assert_eq!(origin.accepted(), 1);
    sluice.wait_for_metric(idle, |v| v == 1.0).await;

    sluice.wait_for_metric(idle, |v| v == 0.0).await;
    origin.wait_until(|s| s.closed == 1).await;

    let response = get(egress, "api.test", "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        origin.accepted(),
        2,
        "the evicted connection was not reused"
    );
    assert_eq!(response.origin_conn_id(), Some(2));
}

/// `max_requests_per_connection: 3`: each upstream connection carries exactly three
/// requests and is then retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_retire_after_max_requests_per_connection() {
    let origin = Origin::start().await;
    let yaml = plain_app(&origin, "max_requests_per_connection: 3");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    let mut served_by = Vec::new();
    for _ in 0..9 {
        let response = get(egress, "api.test", "/").await;
        assert_eq!(response.status, 200);
        served_by.push((
            response.origin_conn_id().unwrap(),
            response.header("x-origin-conn-request").unwrap().to_owned(),
        ));
    }
    assert_eq!(origin.accepted(), 3, "served by {served_by:?}");
    let expected: Vec<(u64, String)> = (1..=3)
        .flat_map(|conn| (1..=3).map(move |nth| (conn, nth.to_string())))
        .collect();
    assert_eq!(served_by, expected);
    // Each retired connection is closed, not left open.
    origin.wait_until(|s| s.closed == 3).await;
}

/// `max_idle_per_server: 2`: after a burst of ten concurrent requests, only two
/// connections stay pooled and the other eight are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_more_than_max_idle_per_server_connections_stay_idle() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &plain_app(&origin, "max_idle_per_server: 2")).await;
    let egress = sluice.listener_addr("egress");

    let burst: Vec<_> = (0..10)
        .map(|_| tokio::spawn(async move { get(egress, "api.test", "/delay/200").await.status }))
        .collect();
    for request in burst {
        assert_eq!(request.await.expect("client task"), 200);
    }
    let opened = origin.accepted();
    assert!(
        opened > 2,
        "the burst should have needed more than 2 connections (max in flight: {})",
        origin.max_in_flight()
    );

    origin.wait_until(|s| s.closed == opened - 2).await;
    assert_eq!(
        metric(
            &sluice,
            r#"sluice_upstream_idle_connections{backend="app"}"#
        )
        .await,
        2.0
    );
    assert_eq!(origin.closed(), opened - 2, "two connections stay pooled");
    assert_eq!(opened, 10, "ten concurrent requests, ten connections");
}

/// One process-wide pool keyed by server + TLS settings: two backends that point at the
/// same server with identical TLS settings use the same connections, while a backend
/// with different TLS settings (`verify: false`) gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_share_connections_only_when_server_and_tls_settings_match() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = Origin::builder().tls(&certs).start().await;
    let server = origin.server_spec();
    let ca = certs.ca_file().display().to_string();
    let yaml = config(
        "  - {host: a.test, backend: a}\n  - {host: b.test, backend: b}\n  - {host: c.test, backend: c}",
        &format!(
            "  - name: a\n    servers: [\"{server}\"]\n    tls: {{ca_file: \"{ca}\"}}\n\
             \x20 - name: b\n    servers: [\"{server}\"]\n    tls: {{ca_file: \"{ca}\"}}\n\
             \x20 - name: c\n    servers: [\"{server}\"]\n    tls: {{ca_file: \"{ca}\", verify: false}}\n"
        ),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    let via_a = get(egress, "a.test", "/").await;
    let via_b = get(egress, "b.test", "/").await;
    assert_eq!(via_a.status, 200);
    assert_eq!(via_b.status, 200);
    assert_eq!(origin.accepted(), 1, "a and b share one connection");
    assert_eq!(via_a.origin_conn_id(), Some(1));
    assert_eq!(via_b.origin_conn_id(), Some(1));
    assert_eq!(via_b.header("x-origin-conn-request"), Some("2"));

    let via_c = get(egress, "c.test", "/").await;
    assert_eq!(via_c.status, 200);
    assert_eq!(
        origin.accepted(),
        2,
        "c's TLS settings differ: its own connection"
    );
    assert_eq!(via_c.origin_conn_id(), Some(2));

    // And a and b still find their shared connection.
    assert_eq!(get(egress, "b.test", "/").await.origin_conn_id(), Some(1));
    assert_eq!(get(egress, "a.test", "/").await.origin_conn_id(), Some(1));
    assert_eq!(origin.accepted(), 2);
}

/// `max_lifetime` retires a connection once it is older than that, but never cuts it
/// mid-request: a request outliving the lifetime completes, then its connection is
/// closed instead of pooled, and the next request opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lifetime_retires_connections_after_their_request_not_during_it() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &plain_app(&origin, "max_lifetime: 300ms")).await;
    let egress = sluice.listener_addr("egress");

    let slow = get(egress, "api.test", "/delay/600").await;
    assert_eq!(slow.status, 200, "{}", slow.text());
    assert_eq!(slow.text(), "hello from origin");
    origin.wait_until(|s| s.closed == 1).await;

    let next = get(egress, "api.test", "/").await;
    assert_eq!(next.status, 200);
    assert_eq!(next.origin_conn_id(), Some(2));
    assert_eq!(origin.accepted(), 2);
}

/// `max_idle_per_server: 0` turns pooling off: every request gets its own upstream
/// connection, closed after the response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_idle_per_server_zero_disables_pooling() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &plain_app(&origin, "max_idle_per_server: 0")).await;
    let egress = sluice.listener_addr("egress");

    for i in 1..=3u64 {
        let response = get(egress, "api.test", "/").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.origin_conn_id(), Some(i));
        origin.wait_until(|s| s.closed == i).await;
    }
    assert_eq!(
        metric(
            &sluice,
            r#"sluice_upstream_idle_connections{backend="app"}"#
        )
        .await,
        0.0
    );
}

/// Idle connections are reused last-in, first-out: the connection returned most
/// recently serves the next request, so under light load the same few stay warm and
/// the rest can time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_recently_returned_connection_is_reused_first() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &plain_app(&origin, "")).await;
    let egress = sluice.listener_addr("egress");

    let quick = tokio::spawn(async move { get(egress, "api.test", "/delay/50").await });
    let slow = tokio::spawn(async move { get(egress, "api.test", "/delay/400").await });
    let (quick, slow) = (quick.await.unwrap(), slow.await.unwrap());
    assert_eq!(
        origin.accepted(),
        2,
        "two concurrent requests, two connections"
    );
    assert_ne!(quick.origin_conn_id(), slow.origin_conn_id());

    for _ in 0..3 {
        let next = get(egress, "api.test", "/").await;
        assert_eq!(
            next.origin_conn_id(),
            slow.origin_conn_id(),
            "the connection returned last is reused"
        );
    }
    assert_eq!(origin.accepted(), 2);
}
