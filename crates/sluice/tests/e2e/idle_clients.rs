//! Keep-alive client connections between requests: once a response is done and the
//! client has sent nothing more, the connection is parked (its read buffer and the
//! connection's task are dropped; a small task holds the socket) and taken up again
//! when the client sends. Parking must be invisible to clients: pipelined bytes, a
//! head split across reads, timeouts and shutdown behave as on a connection that
//! never parked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, Ending, Origin, RawConn, Sluice};
use std::time::Duration;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const PARKED: &str = r#"sluice_client_connections_parked{listener="egress"}"#;
const PARKS: &str = r#"sluice_client_parks_total{listener="egress"}"#;

/// Everything received once the `n`-th response on `conn` (from 1) has arrived.
async fn read_responses(conn: &mut RawConn, n: usize) -> String {
    conn.read_until_count("hello from origin", n).await
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_parked_and_serves_its_next_request() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    for i in 1..=3 {
        conn.send(format!("GET /n{i} HTTP/1.1\r\nHost: app.test\r\n\r\n").as_bytes())
            .await;
        read_responses(&mut conn, i).await;
        // Parked once the response is out and the client is quiet.
        sluice.wait_for_metric(PARKED, |v| v == 1.0).await;
    }
    assert!(
        conn.text().contains("x-origin-path: /n3\r\n"),
        "{}",
        conn.text()
    );
    assert_eq!(origin.accepted(), 1, "one pooled upstream connection");
    drop(conn);
    sluice.wait_for_metric(PARKED, |v| v == 0.0).await;
}

/// The client pipelines a second request and only half of its head: those bytes
/// were read with the first request, so they must be kept (a connection with half a
/// head is not idle and does not park) and the rest of the head completes the
/// request. Once both are answered, the connection parks and still serves a third.
#[tokio::test]
async fn bytes_read_ahead_are_not_lost_and_the_connection_parks_after() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    conn.send(b"GET /a HTTP/1.1\r\nHost: app.test\r\n\r\nGET /b HTTP/1.1\r\nHo")
        .await;
    read_responses(&mut conn, 1).await;
    conn.send(b"st: app.test\r\n\r\n").await;
    let text = read_responses(&mut conn, 2).await;
    assert!(text.contains("x-origin-path: /a\r\n"), "{text}");
    assert!(text.contains("x-origin-path: /b\r\n"), "{text}");
    assert!(!text.contains(" 400 "), "{text}");
    sluice.wait_for_metric(PARKS, |v| v == 1.0).await;
    conn.send(b"GET /c HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    let text = read_responses(&mut conn, 3).await;
    assert!(text.contains("x-origin-path: /c\r\n"), "{text}");
}

/// A parked connection still closes silently at `keepalive_timeout`, and on shutdown
/// it closes at once, like an idle unparked one.
#[tokio::test]
async fn a_parked_connection_closes_at_keepalive_timeout_and_on_shutdown() {
    let origin = Origin::start().await;
    let yaml = app_config(&[origin.server_spec()], "").replace(
        r#"bind: "127.0.0.1:0"}]"#,
        r#"bind: "127.0.0.1:0", keepalive_timeout: 300ms}]"#,
    );
    let mut sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("egress");

    let mut timed_out = RawConn::connect(addr).await;
    timed_out
        .send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    read_responses(&mut timed_out, 1).await;
    let answered = tokio::time::Instant::now();
    sluice.wait_for_metric(PARKED, |v| v == 1.0).await;
    let (rest, ending) = timed_out.read_to_end(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Eof);
    assert!(!rest.contains(" 408 "), "{rest}");
    // Closed by the listener's park lot at the keep-alive timeout, not before.
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(280),
        "closed after {idle:?} idle"
    );
    sluice.wait_for_metric(PARKED, |v| v == 0.0).await;

    let yaml = app_config(&[origin.server_spec()], "");
    drop(sluice);
    sluice = Sluice::start(SLUICE, &yaml).await;
    let mut parked = RawConn::connect(sluice.listener_addr("egress")).await;
    parked
        .send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    read_responses(&mut parked, 1).await;
    sluice.wait_for_metric(PARKED, |v| v == 1.0).await;
    sluice.terminate();
    let (_, ending) = parked.read_to_end(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Eof, "closed at once on shutdown");
    let status = sluice.wait_exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}");
}

/// Parking must not shorten the header timeout: a head that starts right after the
/// accept (before the connection would park) and stalls is answered 408 at
/// `request_header_timeout`, counted from the accept, not when the park timer fires.
#[tokio::test]
async fn a_stalled_first_head_gets_its_408_at_the_header_timeout_not_earlier() {
    let origin = Origin::start().await;
    let yaml = app_config(&[origin.server_spec()], "").replace(
        r#"bind: "127.0.0.1:0"}]"#,
        r#"bind: "127.0.0.1:0", request_header_timeout: 600ms}]"#,
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let started = tokio::time::Instant::now();
    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: app.te").await;
    // Timed to the answer's arrival: the close comes after a linger.
    let answer = conn.read_until("\r\n\r\n").await;
    let after = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(after >= Duration::from_millis(550), "408 after {after:?}");
    let (_, ending) = conn.read_to_end(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Eof);
}
