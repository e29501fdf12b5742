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
echo '{"status":200,"path":"/"}'
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
    assert_eq!(sluice.log_events().len(), 4);
}
