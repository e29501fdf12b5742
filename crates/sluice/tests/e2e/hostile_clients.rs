//! Clients that misbehave, on purpose or not: a malformed or stalled request body, a
//! slow request head, duplicate or stripped `Host`, credentials in the target, methods
//! and targets sluice does not forward, and clients that leave mid-request. Each one
//! gets a clear 4xx (or nothing, when it left), is counted per listener in
//! `sluice_client_errors_total`, and never counts against a server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{
    app_config, assert_sluice_answer, exchange, get, Ending, Fault, FaultOrigin, Origin, RawConn,
    Sluice,
};
use std::time::Duration;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn client_errors(cause: &str) -> String {
    format!(r#"sluice_client_errors_total{{listener="egress",cause="{cause}"}}"#)
}

/// `yaml` (from `app_config`) with `settings` added to the `egress` listener.
fn with_listener(yaml: String, settings: &str) -> String {
    yaml.replace(
        r#"bind: "127.0.0.1:0"}]"#,
        &format!(r#"bind: "127.0.0.1:0", {settings}}}]"#),
    )
}

/// `n` failures with `cause` were counted against the client, and none against a
/// backend or server.
async fn assert_blamed_on_the_client(sluice: &Sluice, cause: &str, n: u32) {
    let metrics = sluice.metrics().await;
    assert!(
        metrics.contains(&format!("{} {n}\n", client_errors(cause))),
        "{metrics}"
    );
    assert!(
        !metrics.contains("sluice_upstream_errors_total{"),
        "a client's fault is no upstream error:\n{metrics}"
    );
    assert!(
        !metrics.contains("sluice_server_ejections_total{"),
        "{metrics}"
    );
}

/// Item 1: a request whose own body is malformed (chunk size `zz`) is the client's
/// fault: 400 `bad_request_body`, never 502, never an upstream error, never a health
/// failure, so any number of them cannot eject a healthy server.
#[tokio::test]
async fn a_malformed_request_body_is_400_and_never_ejects_the_server() {
    let origin = Origin::start().await;
    let yaml = app_config(
        &[origin.server_spec()],
        "    health: {passive: {consecutive_failures: 2, ejection_time: 60s}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let bad = b"POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    for _ in 0..6 {
        let (answer, _) = exchange(sluice.listener_addr("egress"), bad).await;
        assert_sluice_answer(&answer, 400, "bad_request_body");
    }
    let ok = get(sluice.listener_addr("egress"), "app.test", "/after").await;
    assert_eq!(ok.status, 200, "the server must still take requests");
    assert_blamed_on_the_client(&sluice, "bad_request_body", 6).await;
}

/// Item 4: two `Host` lines are a 400 (RFC 9112 §3.2) and nothing reaches the origin.
#[tokio::test]
async fn a_duplicate_host_header_is_400() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let (answer, _) = exchange(
        sluice.listener_addr("egress"),
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_sluice_answer(&answer, 400, "duplicate_host");
    assert_eq!(origin.requests(), 0);
}

/// Item 5: `Connection: host` must not strip `Host` after routing (the origin would get
/// an HTTP/1.1 request without one), nor the framing or forwarding headers.
#[tokio::test]
async fn connection_cannot_strip_host_or_forwarding_headers() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let (answer, _) = exchange(
        sluice.listener_addr("egress"),
        b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close, host, x-forwarded-for, x-custom\r\nx-custom: 1\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("x-origin-host: app.test\r\n"), "{answer}");
    assert!(lower.contains("x-origin-xff: 127.0.0.1\r\n"), "{answer}");
    let seen = lower
        .split("x-origin-headers: ")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .unwrap_or_default()
        .to_owned();
    assert!(!seen.split(',').any(|h| h == "x-custom"), "{seen}");
}

/// Item 6: credentials in an absolute-form target are a 400 that echoes them nowhere:
/// not to the origin (even with a catch-all route), not in the body, not in the logs.
#[tokio::test]
async fn credentials_in_the_target_are_400_and_never_echoed_or_logged() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let (answer, _) = exchange(
        sluice.listener_addr("egress"),
        b"GET http://user:hunter2@app.test/private HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_sluice_answer(&answer, 400, "credentials_in_uri");
    assert!(!answer.contains("hunter2"), "{answer}");
    let (answer, _) = exchange(
        sluice.listener_addr("egress"),
        b"GET / HTTP/1.1\r\nHost: user:hunter2@app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(!answer.contains("hunter2"), "{answer}");
    assert_eq!(origin.requests(), 0);
    sluice.wait_for_access_log(2).await;
    let logs = format!("{:?}{:?}", sluice.stdout_lines(), sluice.stderr_lines());
    assert!(
        !logs.contains("hunter2"),
        "credentials leaked into the logs"
    );
}

/// Item 8: `CONNECT` and `OPTIONS *` are not forwarded as something else: 501
/// `method_not_supported`. `https://` and `ftp://` targets are 400 `unsupported_scheme`
/// instead of being fetched over plain HTTP.
#[tokio::test]
async fn connect_options_star_and_other_schemes_are_refused_clearly() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let cases: [(&[u8], u16, &str); 4] = [
        (
            // Not a forward listener: refused, never forwarded as `CONNECT /`.
            b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n",
            405,
            "connect_not_allowed",
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
            501,
            "method_not_supported",
        ),
        (
            b"GET https://app.test/ HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
            400,
            "unsupported_scheme",
        ),
        (
            b"GET ftp://app.test/f HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
            400,
            "unsupported_scheme",
        ),
    ];
    for (request, status, cause) in cases {
        let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
        conn.send(request).await;
        let answer = conn.read_until("\r\n\r\n").await;
        assert_sluice_answer(&answer, status, cause);
    }
    assert_eq!(origin.requests(), 0);
}

/// Item 11: a request head that does not complete within `request_header_timeout` gets
/// 408 `request_header_timeout` (not a silent close); a connection that sent nothing is
/// closed silently, and so is an idle keep-alive connection after `keepalive_timeout`.
#[tokio::test]
async fn a_slow_request_head_gets_408_and_idle_connections_close_silently() {
    let origin = Origin::start().await;
    let yaml = with_listener(
        app_config(&[origin.server_spec()], ""),
        "request_header_timeout: 300ms, keepalive_timeout: 400ms",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("egress");

    let mut slow = RawConn::connect(addr).await;
    slow.send(b"GET / HTTP/1.1\r\nHost: app.te").await;
    let (answer, ending) = slow.read_to_end(Duration::from_secs(5)).await;
    assert_sluice_answer(&answer, 408, "request_header_timeout");
    assert_eq!(ending, Ending::Eof);

    let mut silent = RawConn::connect(addr).await;
    let (answer, ending) = silent.read_to_end(Duration::from_secs(5)).await;
    assert_eq!((answer.as_str(), ending), ("", Ending::Eof));

    // One complete request, then idle: closed without a response after keepalive_timeout.
    let mut idle = RawConn::connect(addr).await;
    idle.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").await;
    idle.read_until("hello from origin").await;
    let (answer, ending) = idle.read_to_end(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Eof);
    assert!(!answer.contains("408"), "{answer}");

    // A later request on a kept-alive connection gets the header timeout from its first byte.
    let mut later = RawConn::connect(addr).await;
    later
        .send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    later.read_until("hello from origin").await;
    later.send(b"GET /second HTTP/1.1\r\n").await;
    let (answer, _) = later.read_to_end(Duration::from_secs(5)).await;
    assert!(
        answer.ends_with("\n") && answer.contains("HTTP/1.1 408"),
        "{answer:?}"
    );

    sluice
        .wait_for_metric(&client_errors("request_header_timeout"), |v| v == 2.0)
        .await;
}

/// A request body that stops arriving for `request_body_idle_timeout` gets 408
/// `request_body_timeout`; it is the client's fault, not the server's.
#[tokio::test]
async fn a_stalled_request_body_gets_408_and_is_not_held_against_the_server() {
    let origin = Origin::start().await;
    let yaml = with_listener(
        app_config(
            &[origin.server_spec()],
            "    health: {passive: {consecutive_failures: 1}}",
        ),
        "request_body_idle_timeout: 300ms",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    conn.send(b"POST /sink HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await;
    let (answer, _) = conn.read_to_end(Duration::from_secs(5)).await;
    assert_sluice_answer(&answer, 408, "request_body_timeout");
    let ok = get(sluice.listener_addr("egress"), "app.test", "/").await;
    assert_eq!(ok.status, 200, "not ejected");
    assert_blamed_on_the_client(&sluice, "request_body_timeout", 1).await;
}

/// A client that leaves while its request waits for a stalled origin releases
/// everything at once: the upstream exchange is cancelled and its only slot
/// (`maxconn_per_server: 1`) goes to the queued request straight away, not when some
/// timeout (all 60 s here) runs out.
#[tokio::test]
async fn a_client_that_leaves_frees_its_slot_for_the_next_request_at_once() {
    let origin = FaultOrigin::start(Fault::NoResponse).await;
    let yaml = app_config(
        &[origin.server_spec()],
        "    limits: {maxconn_per_server: 1}\n    timeouts: {queue: 60s, response: 60s}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("egress");

    let mut first = RawConn::connect(addr).await;
    first
        .send(b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    origin.wait_until(|s| s.heads == 1).await;
    let mut second = RawConn::connect(addr).await;
    second
        .send(b"GET /second HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    sluice
        .wait_for_metric(r#"sluice_backend_queue_depth{backend="app"}"#, |v| v == 1.0)
        .await;

    drop(first);
    origin.wait_until(|s| s.heads == 2 && s.closed == 1).await;
    assert!(origin.heads()[1].starts_with("GET /second "));
    let entry = &sluice.wait_for_access_log(1).await[0]["fields"];
    assert_eq!(entry["path"], "/first");
    assert_eq!(entry["status"], 499);
    assert_eq!(entry["cause"], "client_closed");
    drop(second);
}

/// A client that stops reading its response cannot hold the upstream connection and
/// its slot: once a write has waited `send_timeout`, the client connection is reset,
/// the upstream exchange abandoned, and `send_timeout` counted for the client.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_send_timeout() {
    let origin = Origin::start().await;
    let yaml = with_listener(
        app_config(
            &[origin.server_spec()],
            "    limits: {maxconn_per_server: 1}",
        ),
        "send_timeout: 300ms",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let mut stalled = RawConn::connect(sluice.listener_addr("egress")).await;
    // 1 GiB: far more than the socket buffers between origin, sluice and the client.
    stalled
        .send(b"GET /bytes/1073741824 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    sluice
        .wait_for_metric(&client_errors("send_timeout"), |v| v == 1.0)
        .await;
    origin
        .wait_until(|s| s.closed == 1 && s.in_flight == 0)
        .await;
    let entry = &sluice.wait_for_access_log(1).await[0]["fields"];
    assert_eq!(entry["cause"], "send_timeout");
    assert_eq!(entry["complete"], false);
    // The only slot is free for the next client.
    let next = get(sluice.listener_addr("egress"), "app.test", "/next").await;
    assert_eq!(next.status, 200);
    drop(stalled);
}

/// The same client faults through an HTTP/2 upstream, whose hyper client reports a
/// failed request body only as a reset stream: still 400, still not the server's fault.
#[tokio::test]
async fn a_malformed_request_body_is_the_clients_fault_over_http2_too() {
    let origin = Origin::builder().http2().start().await;
    let yaml = app_config(
        &[origin.server_spec()],
        "    protocol: http2\n    health: {passive: {consecutive_failures: 1, ejection_time: 60s}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let bad = b"POST /sink HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";
    for _ in 0..3 {
        let (answer, _) = exchange(sluice.listener_addr("egress"), bad).await;
        assert_sluice_answer(&answer, 400, "bad_request_body");
    }
    let ok = get(sluice.listener_addr("egress"), "app.test", "/after").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_blamed_on_the_client(&sluice, "bad_request_body", 3).await;
}

/// A client that uploads slowly (but never pauses for `request_body_idle_timeout`) for
/// longer than `timeouts.response` is not taken for a slow server: the response timeout
/// counts from the request's last byte.
#[tokio::test]
async fn a_slow_upload_is_not_a_response_timeout() {
    let origin = Origin::start().await;
    let yaml = app_config(
        &[origin.server_spec()],
        "    timeouts: {response: 400ms}\n    health: {passive: {consecutive_failures: 1}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    conn.send(b"POST /sink HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\n")
        .await;
    // The workload is a slow client: ten bytes, 150 ms apart (1.5 s in all).
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        conn.send(b"x").await;
    }
    let answer = conn.read_until("\r\n\r\n10").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(!sluice
        .metrics()
        .await
        .contains("sluice_upstream_errors_total{"));
}

/// A request that outlasts `request_header_timeout` (the timer fires while it is in
/// flight) still leaves its connection to `keepalive_timeout` afterwards: closed
/// silently once idle, neither kept open for ever nor answered 408.
#[tokio::test]
async fn after_a_long_request_an_idle_connection_still_closes_at_keepalive_timeout() {
    let origin = Origin::start().await;
    let yaml = with_listener(
        app_config(&[origin.server_spec()], ""),
        "request_header_timeout: 200ms, keepalive_timeout: 300ms",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    conn.send(b"GET /delay/700 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    conn.read_until("hello from origin").await;
    let (rest, ending) = conn.read_to_end(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Eof, "still open: {rest:?}");
    assert!(!rest.contains(" 408 "), "{rest}");
}
