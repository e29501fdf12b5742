//! The toolkit's own tests: the origin, the clients and the process runner, without sluice.

use crate::*;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Empty;
use std::time::Duration;

#[tokio::test]
async fn tls_origin_is_trusted_by_a_client_that_trusts_the_ca() {
    let certs = Certs::new(&["origin.example.test", "127.0.0.1"]);
    let origin = Origin::builder().tls(&certs).start().await;

    for name in ["127.0.0.1", "origin.example.test"] {
        let req = request(Method::GET, "origin.example.test", "/hi?x=1", Empty::new());
        let response = send_tls(origin.addr(), name, certs.client_config(), req)
            .await
            .expect("TLS request");
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text(), "hello from origin");
        assert_eq!(response.header("x-origin-path"), Some("/hi?x=1"));
        assert_eq!(
            response.header("x-origin-host"),
            Some("origin.example.test")
        );
    }
    assert_eq!(origin.accepted(), 2);
    assert_eq!(origin.requests(), 2);
    assert!(std::fs::read_to_string(certs.ca_file())
        .expect("read CA file")
        .starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_verification() {
    let certs = Certs::new(&["127.0.0.1"]);
    let impostor = certs.signed_by_another_ca();
    let origin = Origin::builder().tls(&impostor).start().await;

    let req = request(Method::GET, "x", "/", Empty::<Bytes>::new());
    let error = send_tls(origin.addr(), "127.0.0.1", certs.client_config(), req)
        .await
        .expect_err("an untrusted certificate must be rejected");
    assert!(
        error.to_string().contains("UnknownIssuer"),
        "unexpected error: {error}"
    );
    origin.wait_until(|s| s.handshake_failures == 1).await;
    assert_eq!(origin.requests(), 0);
}

#[tokio::test]
async fn origin_echoes_the_request_and_counts_connections() {
    let origin = Origin::start().await;
    let req = http::Request::post("/echo")
        .header("host", "app.test")
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-forwarded-proto", "https")
        .header("te", "trailers")
        .body(String::from("twelve bytes"))
        .expect("request");
    let response = send(origin.addr(), req).await.expect("send");

    assert_eq!(response.header("x-origin-method"), Some("POST"));
    assert_eq!(response.header("x-origin-host"), Some("app.test"));
    assert_eq!(response.header("x-origin-xff"), Some("10.1.2.3"));
    assert_eq!(response.header("x-origin-xfp"), Some("https"));
    assert_eq!(response.header("x-origin-body-bytes"), Some("12"));
    assert!(response.origin_saw("te"));
    assert!(!response.origin_saw("connection"));
    assert_eq!(response.origin_conn_id(), Some(1));
    assert_eq!(origin.peers().len(), 1);
    origin
        .wait_until(|s| s.closed == 1 && s.in_flight == 0)
        .await;
}

#[tokio::test]
async fn origin_streams_generated_bytes_and_sinks_uploads() {
    let origin = Origin::start().await;
    let addr = origin.addr();
    let len = 5 * 1024 * 1024 + 7;

    let sized = download(addr, "a", &format!("/bytes/{len}")).await;
    assert_eq!(
        (sized.status, sized.len, sized.intact),
        (StatusCode::OK, len, true)
    );
    assert_eq!(
        sized.headers.get("content-length").map(|v| v.as_bytes()),
        Some(len.to_string().as_bytes())
    );

    let chunked = download(addr, "a", &format!("/chunked/{len}")).await;
    assert_eq!((chunked.len, chunked.intact), (len, true));
    assert!(chunked.headers.get("content-length").is_none());

    let uploaded = upload(addr, "a", "/sink", len).await;
    assert_eq!(uploaded.text(), len.to_string());
    assert_eq!(uploaded.header("x-origin-body-intact"), Some("true"));

    let cut = download(addr, "a", "/truncate/100000").await;
    assert_eq!(cut.len, 100_000);
    assert!(cut.error.is_some(), "a truncated body must end in an error");
}

#[tokio::test]
async fn origin_drips_a_slow_body_and_spawn_download_reports_progress() {
    let origin = Origin::start().await;
    let started = tokio::time::Instant::now();
    let (task, mut progress) = spawn_download(origin.addr(), "x", "/drip/5?size=100&every=50");
    // The first chunk comes at once, the stream stays in flight until the last.
    progress.wait_for(|n| *n >= 100).await.expect("progress");
    assert_eq!(origin.in_flight(), 1);
    let download = task.await.expect("download task");
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(
        download
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some("500"),
        "sent with Content-Length"
    );
    assert_eq!(
        (download.len, download.intact, download.error),
        (500, true, None)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "four pauses of 50 ms: {:?}",
        started.elapsed()
    );
    assert_eq!(*progress.borrow(), 500);
}

#[tokio::test]
async fn origin_status_head_and_drop() {
    let origin = Origin::start().await;
    let addr = origin.addr();

    let no_content = get(addr, "a", "/status/204").await;
    assert_eq!(no_content.status, StatusCode::NO_CONTENT);
    assert!(no_content.body.is_empty());
    assert_eq!(get(addr, "a", "/status/503").await.status, 503);

    let head = send(
        addr,
        request(Method::HEAD, "a", "/bytes/1000", Empty::new()),
    )
    .await
    .expect("HEAD");
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());

    let dropped = send(addr, request(Method::GET, "a", "/drop", Empty::new())).await;
    assert!(dropped.is_err(), "/drop must not answer");

    let answer = raw(addr, b"GET /raw HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("hello from origin"), "{answer}");
}

#[tokio::test]
async fn keep_alive_reuses_and_close_after_each_response_does_not() {
    let origin = Origin::start().await;
    let mut conn = Conn::open(origin.addr()).await;
    let first = conn.get("a", "/").await;
    let second = conn.get("a", "/").await;
    assert_eq!(first.origin_conn_id(), second.origin_conn_id());
    assert_eq!(second.header("x-origin-conn-request"), Some("2"));
    assert_eq!(origin.accepted(), 1);

    let closing = Origin::builder().close_after_each_response().start().await;
    let mut conn = Conn::open(closing.addr()).await;
    let response = conn.get("a", "/").await;
    assert_eq!(response.header("connection"), Some("close"));
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    closing.wait_until(|s| s.closed == 1).await;
}

#[tokio::test]
async fn close_idle_after_closes_from_the_server_side() {
    let origin = Origin::builder()
        .close_idle_after(Duration::from_millis(200))
        .start()
        .await;
    let mut conn = Conn::open(origin.addr()).await;
    assert_eq!(conn.get("a", "/").await.status, 200);
    assert!(!conn.is_closed());
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    origin.wait_until(|s| s.closed == 1).await;
}

#[tokio::test]
async fn delayed_requests_are_counted_in_flight() {
    let origin = Origin::builder()
        .delay(Duration::from_millis(300))
        .start()
        .await;
    let addr = origin.addr();
    let a = tokio::spawn(async move { get(addr, "a", "/").await });
    let b = tokio::spawn(async move { get(addr, "a", "/").await });
    origin.wait_until(|s| s.in_flight == 2).await;
    assert_eq!(a.await.expect("a").status, 200);
    assert_eq!(b.await.expect("b").status, 200);
    assert_eq!(origin.max_in_flight(), 2);
    origin.wait_until(|s| s.in_flight == 0).await;
}

#[tokio::test]
async fn unix_origin() {
    let origin = Origin::builder().unix().start().await;
    assert!(origin.server_spec().starts_with("unix:/"));
    let response = get_unix(origin.unix_path(), "a", "/x").await;
    assert_eq!(response.text(), "hello from origin");
    assert_eq!(origin.accepted(), 1);
    assert!(origin.peers().is_empty());
}

/// A stand-in for the sluice binary: logs like it does, and exits 3 on SIGTERM.
const FAKE_SLUICE: &str = r#"#!/bin/sh
trap 'kill $! 2>/dev/null; echo "{\"fields\":{\"message\":\"draining\"}}" >&2; exit 3' TERM
echo "args: $*" >&2
echo '{"timestamp":"t","level":"INFO","fields":{"message":"listening","listener":"egress","addr":"127.0.0.1:4321"},"target":"sluice"}' >&2
echo '{"fields":{"message":"listening","listener":"local","addr":"unix:/tmp/local.sock"}}' >&2
echo '{"fields":{"message":"admin listening","addr":"127.0.0.1:9"}}' >&2
echo '{"fields":{"message":"sluice started"}}' >&2
echo '{"target":"access","status":200,"path":"/"}'
sleep 60 &
wait
"#;

const FAKE_CONFIG: &str = "
log: {format: json}
admin: {bind: '127.0.0.1:0'}
listeners:
  - {name: egress, bind: '127.0.0.1:0'}
  - {name: local, bind: 'unix:/tmp/local.sock'}
";

#[tokio::test]
async fn process_runner_reads_readiness_and_logs() {
    let dir = scratch_dir();
    let bin = dir.path().join("fake-sluice");
    std::fs::write(&bin, FAKE_SLUICE).expect("write fake binary");
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&bin)
        .status()
        .expect("chmod");
    assert!(chmod.success());

    let mut sluice = Sluice::start(&bin, FAKE_CONFIG).await;
    assert_eq!(sluice.listener_addr("egress").port(), 4321);
    assert_eq!(
        sluice.listener_path("local"),
        std::path::Path::new("/tmp/local.sock")
    );
    assert_eq!(sluice.admin_addr().port(), 9);
    assert!(sluice.stderr_contains(&format!(
        "args: run --config {}",
        sluice.config_path().display()
    )));
    assert_eq!(sluice.wait_for_access_log(1).await[0]["status"], 200);
    assert!(sluice.peak_rss_kib() > 0);

    sluice.terminate();
    let status = sluice.wait_exit().await;
    assert_eq!(status.code(), Some(3));
    assert!(sluice.stderr_contains("draining"));
    assert_eq!(sluice.log_events().len(), 5);
}

// ---- HTTP/2 origins ----

type H2Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// An HTTP/2 client connection over `io`; the second value ends when the connection does.
async fn h2_handshake<I>(io: I) -> (H2Sender, tokio::task::JoinHandle<()>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

/// h2c with prior knowledge.
async fn h2c(addr: std::net::SocketAddr) -> (H2Sender, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    h2_handshake(tcp).await
}

/// A TLS client config trusting `certs` that offers these ALPN protocols.
fn client_alpn(certs: &Certs, alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
    let mut config = (*certs.client_config()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// GET `path` over an HTTP/2 connection, body collected.
async fn h2_get(sender: &mut H2Sender, path: &str) -> Result<Response, BoxError> {
    use http_body_util::BodyExt;
    let req = http::Request::get(format!("http://origin.test{path}"))
        .body(Empty::new())
        .expect("request");
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

#[tokio::test]
async fn h2c_origin_serves_100_concurrent_streams_on_one_connection() {
    let origin = Origin::builder().http2().start().await;
    let (sender, _conn) = h2c(origin.addr()).await;

    let requests: Vec<_> = (0..100)
        .map(|_| {
            let mut sender = sender.clone();
            tokio::spawn(async move { h2_get(&mut sender, "/delay/2000").await })
        })
        .collect();
    origin.wait_until(|s| s.in_flight == 100).await;
    let mut nths = Vec::new();
    for request in requests {
        let response = request.await.expect("task").expect("h2 request");
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.version, http::Version::HTTP_2);
        assert_eq!(response.text(), "hello from origin");
        assert_eq!(response.header("x-origin-version"), Some("HTTP/2.0"));
        assert_eq!(response.header("x-origin-host"), Some("origin.test"));
        assert_eq!(response.header("x-origin-path"), Some("/delay/2000"));
        assert_eq!(
            response.header("x-origin-uri"),
            Some("http://origin.test/delay/2000")
        );
        assert_eq!(response.origin_conn_id(), Some(1));
        nths.push(
            response
                .header("x-origin-conn-request")
                .and_then(|n| n.parse::<u64>().ok())
                .expect("x-origin-conn-request"),
        );
    }
    nths.sort_unstable();
    assert_eq!(nths, (1..=100).collect::<Vec<_>>());
    assert_eq!(origin.accepted(), 1);
    assert_eq!(origin.requests(), 100);
    assert_eq!(origin.max_in_flight(), 100);
    origin.wait_until(|s| s.in_flight == 0).await;
    assert_eq!(origin.peers().len(), 1);

    // The other paths work over HTTP/2 too.
    let mut sender = sender.clone();
    let bytes = h2_get(&mut sender, "/bytes/100000").await.expect("/bytes");
    assert_eq!(bytes.body.len(), 100_000);
    assert_eq!(
        h2_get(&mut sender, "/status/204")
            .await
            .expect("204")
            .status,
        204
    );
    assert!(h2_get(&mut sender, "/drop").await.is_err(), "/drop resets");
    assert_eq!(
        h2_get(&mut sender, "/").await.expect("after reset").status,
        200
    );
}

#[tokio::test]
async fn tls_http2_origin_offers_only_h2() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = Origin::builder().tls(&certs).http2().start().await;

    let tls = tls_connect(origin.addr(), client_alpn(&certs, &[b"h2", b"http/1.1"]))
        .await
        .expect("TLS with h2");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut sender, _conn) = h2_handshake(tls).await;
    let response = h2_get(&mut sender, "/").await.expect("h2 over TLS");
    assert_eq!(response.header("x-origin-version"), Some("HTTP/2.0"));

    // A client that offers only http/1.1 finds no common protocol.
    let req = request(Method::GET, "a", "/", Empty::<Bytes>::new());
    let refused = send_tls(origin.addr(), "127.0.0.1", certs.client_config(), req).await;
    assert!(refused.is_err(), "an http/1.1-only client must fail");
    origin.wait_until(|s| s.handshake_failures == 1).await;
}

#[tokio::test]
async fn alpn_h2_and_h1_serves_what_each_connection_negotiated() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = Origin::builder().tls(&certs).alpn_h2_and_h1().start().await;

    let req = request(Method::GET, "a", "/", Empty::<Bytes>::new());
    let h1 = send_tls(origin.addr(), "127.0.0.1", certs.client_config(), req)
        .await
        .expect("http/1.1 over TLS");
    assert_eq!(h1.header("x-origin-version"), Some("HTTP/1.1"));

    let tls = tls_connect(origin.addr(), client_alpn(&certs, &[b"h2", b"http/1.1"]))
        .await
        .expect("TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut sender, _conn) = h2_handshake(tls).await;
    let h2 = h2_get(&mut sender, "/").await.expect("h2");
    assert_eq!(h2.header("x-origin-version"), Some("HTTP/2.0"));
    assert_eq!(h2.origin_conn_id(), Some(2));

    // Without TLS there is no ALPN: HTTP/1.1.
    let plain = Origin::builder().alpn_h2_and_h1().start().await;
    let response = get(plain.addr(), "a", "/").await;
    assert_eq!(response.header("x-origin-version"), Some("HTTP/1.1"));
}

#[tokio::test]
async fn max_concurrent_streams_caps_what_one_connection_carries() {
    let origin = Origin::builder()
        .http2()
        .max_concurrent_streams(2)
        .start()
        .await;
    let (mut sender, _conn) = h2c(origin.addr()).await;
    // The first response proves the server's SETTINGS arrived before the burst.
    h2_get(&mut sender, "/").await.expect("first");

    let burst: Vec<_> = (0..6)
        .map(|_| {
            let mut sender = sender.clone();
            tokio::spawn(async move { h2_get(&mut sender, "/delay/300").await })
        })
        .collect();
    origin.wait_until(|s| s.in_flight == 2).await;
    for request in burst {
        let response = request.await.expect("task").expect("queued stream");
        assert_eq!(response.status, StatusCode::OK);
    }
    assert_eq!(origin.requests(), 7);
    assert_eq!(origin.max_in_flight(), 2);
    assert_eq!(origin.accepted(), 1);
}

#[tokio::test]
async fn refuse_first_resets_with_refused_stream_then_serves() {
    let origin = Origin::builder().http2().refuse_first(1).start().await;
    let (mut sender, _conn) = h2c(origin.addr()).await;
    let refused = h2_get(&mut sender, "/")
        .await
        .expect_err("first stream is refused");
    let reason = std::error::Error::source(&*refused)
        .and_then(|e| e.downcast_ref::<h2::Error>())
        .and_then(h2::Error::reason);
    assert_eq!(reason, Some(h2::Reason::REFUSED_STREAM), "{refused:?}");
    let response = h2_get(&mut sender, "/").await.expect("second stream");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(origin.requests(), 2);
    assert_eq!(
        origin.accepted(),
        1,
        "the connection survives a refused stream"
    );
}

#[tokio::test]
async fn goaway_after_lets_in_flight_streams_finish_then_closes() {
    let origin = Origin::builder().http2().goaway_after(2).start().await;
    let (sender, conn) = h2c(origin.addr()).await;

    let both: Vec<_> = (0..2)
        .map(|_| {
            let mut sender = sender.clone();
            tokio::spawn(async move { h2_get(&mut sender, "/delay/300").await })
        })
        .collect();
    for request in both {
        let response = request.await.expect("task").expect("stream before GOAWAY");
        assert_eq!(response.status, StatusCode::OK);
    }
    // After GOAWAY the connection ends, on both sides.
    tokio::time::timeout(DEFAULT_WAIT, conn)
        .await
        .expect("client connection ends after GOAWAY")
        .expect("connection task");
    origin.wait_until(|s| s.closed == 1).await;
    let mut sender = sender;
    assert!(h2_get(&mut sender, "/").await.is_err());

    let (mut fresh, _conn) = h2c(origin.addr()).await;
    let response = h2_get(&mut fresh, "/").await.expect("new connection");
    assert_eq!(response.origin_conn_id(), Some(2));
    assert_eq!(origin.requests(), 3);

    // HTTP/1.1: the connection closes after the n-th response.
    let h1 = Origin::builder().goaway_after(2).start().await;
    let mut conn = Conn::open(h1.addr()).await;
    assert_eq!(conn.get("a", "/").await.status, 200);
    assert_eq!(conn.get("a", "/").await.status, 200);
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    h1.wait_until(|s| s.closed == 1).await;
}

// ---- health, stop/resume, bind IP ----

#[tokio::test]
async fn health_checks_are_counted_apart_and_follow_set_healthy() {
    let origin = Origin::start().await;
    let addr = origin.addr();

    let health = get(addr, "a", "/health").await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(health.header("x-origin-unhealthy"), None);
    assert_eq!(get(addr, "a", "/").await.status, 200);
    assert_eq!((origin.health_checks(), origin.requests()), (1, 1));

    origin.set_healthy(false);
    let health = get(addr, "a", "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.header("x-origin-unhealthy"), Some("true"));
    let other = get(addr, "a", "/bytes/10").await;
    assert_eq!(other.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(other.header("x-origin-unhealthy"), Some("true"));
    assert_eq!(
        origin.stats(),
        OriginStats {
            accepted: 4,
            closed: origin.closed(),
            requests: 2,
            health_checks: 2,
            max_in_flight: 1,
            ..OriginStats::default()
        }
    );

    origin.set_healthy(true);
    assert_eq!(get(addr, "a", "/health").await.status, 200);
    assert_eq!(get(addr, "a", "/").await.text(), "hello from origin");
    assert_eq!((origin.health_checks(), origin.requests()), (3, 3));
}

#[tokio::test]
async fn stop_accepting_refuses_and_drops_then_resume_serves_on_the_same_address() {
    let origin = Origin::start().await;
    let addr = origin.addr();
    let mut held = Conn::open(addr).await;
    assert_eq!(held.get("a", "/").await.status, 200);

    origin.stop_accepting().await;
    let refused = tokio::net::TcpStream::connect(addr)
        .await
        .expect_err("a stopped origin must refuse connections");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(held.closed_within(Duration::from_secs(5)).await);
    assert_eq!((origin.accepted(), origin.closed()), (1, 1));
    origin.stop_accepting().await; // idempotent

    origin.resume().await.expect("resume on the same port");
    origin.resume().await.expect("resume again is a no-op");
    assert_eq!(origin.addr(), addr);
    let response = get(addr, "a", "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.origin_conn_id(), Some(2));
    assert_eq!(origin.requests(), 2);

    // An HTTP/2 connection with a stream in flight is dropped too.
    let h2 = Origin::builder().http2().start().await;
    let (mut sender, conn) = h2c(h2.addr()).await;
    let slow = tokio::spawn(async move { h2_get(&mut sender, "/delay/60000").await });
    h2.wait_until(|s| s.in_flight == 1).await;
    h2.stop_accepting().await;
    assert!(slow.await.expect("task").is_err());
    tokio::time::timeout(DEFAULT_WAIT, conn)
        .await
        .expect("client sees the connection end")
        .expect("connection task");
    h2.wait_until(|s| s.in_flight == 0).await;
}

#[tokio::test]
async fn unix_origin_stops_and_resumes() {
    let origin = Origin::builder().unix().start().await;
    origin.stop_accepting().await;
    assert!(tokio::net::UnixStream::connect(origin.unix_path())
        .await
        .is_err());
    origin.resume().await.expect("resume unix");
    assert_eq!(get_unix(origin.unix_path(), "a", "/").await.status, 200);
}

#[tokio::test]
async fn bind_ip_listens_there_and_peers_report_the_source_ip() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ip3: std::net::IpAddr = "127.0.0.3".parse().expect("ip");
    let origin = Origin::builder().bind_ip(ip3).start().await;
    assert_eq!(origin.addr().ip(), ip3);
    assert_ne!(origin.addr().port(), 0);

    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut stream = socket.connect(origin.addr()).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    let from_default = get(origin.addr(), "a", "/").await;
    assert_eq!(from_default.status, 200);
    let peers: Vec<_> = origin.peers().iter().map(|p| p.ip().to_string()).collect();
    assert_eq!(peers, ["127.0.0.2", "127.0.0.1"]);
}

// ---- the test DNS server ----

fn resolver_for(
    dns: &TestDns,
    protocols: &[hickory_resolver::proto::xfer::Protocol],
) -> hickory_resolver::TokioResolver {
    use hickory_resolver::config::{
        LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolverConfig,
    };
    let servers: Vec<_> = protocols
        .iter()
        .map(|p| NameServerConfig::new(dns.addr(), *p))
        .collect();
    let config = ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::from(servers));
    let mut builder = hickory_resolver::TokioResolver::builder_with_config(
        config,
        hickory_resolver::name_server::TokioConnectionProvider::default(),
    );
    let opts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.attempts = 0;
    opts.timeout = Duration::from_secs(5);
    builder.build()
}

async fn lookup(
    resolver: &hickory_resolver::TokioResolver,
    name: &str,
) -> Result<Vec<std::net::IpAddr>, hickory_resolver::ResolveError> {
    let found = resolver.lookup_ip(name).await?;
    let mut ips: Vec<_> = found.iter().collect();
    ips.sort_unstable();
    Ok(ips)
}

fn ips(list: &[&str]) -> Vec<std::net::IpAddr> {
    list.iter().map(|ip| ip.parse().expect("ip")).collect()
}

#[tokio::test]
async fn test_dns_answers_changes_fails_and_counts() {
    use hickory_resolver::proto::xfer::Protocol;
    let dns = TestDns::start().await;
    let resolver = resolver_for(&dns, &[Protocol::Udp]);

    dns.set("App.Test.", &ips(&["127.0.0.3", "127.0.0.2"]), 1);
    assert_eq!(
        lookup(&resolver, "app.test").await.expect("first answer"),
        ips(&["127.0.0.2", "127.0.0.3"])
    );
    let found = resolver.lookup_ip("app.test.").await.expect("lookup");
    assert!(found.as_lookup().records().iter().all(|r| r.ttl() == 1));

    dns.set("app.test", &ips(&["127.0.0.4"]), 1);
    assert_eq!(
        lookup(&resolver, "app.test").await.expect("new answer"),
        ips(&["127.0.0.4"])
    );

    // Unknown: NXDOMAIN. Known without A records: falls back to AAAA.
    let missing = lookup(&resolver, "nope.test").await.expect_err("unknown");
    assert!(missing.is_nx_domain(), "{missing}");
    dns.set("v6.test", &ips(&["::1"]), 5);
    assert_eq!(
        lookup(&resolver, "v6.test").await.expect("AAAA"),
        ips(&["::1"])
    );
    dns.set("empty.test", &[], 5);
    let empty = lookup(&resolver, "empty.test")
        .await
        .expect_err("no addresses");
    assert!(
        !empty.is_nx_domain() && empty.is_no_records_found(),
        "{empty}"
    );

    let before = dns.queries();
    dns.set_failing(true);
    let failed = lookup(&resolver, "app.test").await.expect_err("SERVFAIL");
    assert!(!failed.is_nx_domain(), "{failed}");
    assert!(dns.queries() > before);
    dns.set_failing(false);
    assert_eq!(
        lookup(&resolver, "app.test").await.expect("recovered"),
        ips(&["127.0.0.4"])
    );

    dns.remove("app.test");
    assert!(lookup(&resolver, "app.test")
        .await
        .expect_err("removed")
        .is_nx_domain());

    // The same port answers over TCP.
    let tcp = resolver_for(&dns, &[Protocol::Tcp]);
    dns.set("tcp.test", &ips(&["127.0.0.5"]), 0);
    assert_eq!(
        lookup(&tcp, "tcp.test").await.expect("over TCP"),
        ips(&["127.0.0.5"])
    );
    let seen = dns.queries();
    dns.wait_for_queries(seen).await;
}
