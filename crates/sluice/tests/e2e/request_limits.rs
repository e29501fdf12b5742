//! The configurable request limits, through the binary: `listeners[].max_request_line`,
//! `max_request_head` and `max_request_headers` answer 414/431 one byte (or header)
//! past them and let through what is exactly at them; `routes[].max_request_body`
//! answers 413 for a declared length over it before anything reaches the origin (and
//! without a `100 Continue`), and for a chunked body that grows past it. HTTP/2
//! clients are held to `max_request_headers` too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{assert_sluice_answer, exchange, H2Client, Origin, RawConn, Sluice};
use std::time::Duration;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn config(origin: &Origin) -> String {
    format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners:
  - {{name: egress, bind: "127.0.0.1:0", http2: true, max_request_line: 100, max_request_head: 1024, max_request_headers: 5}}
routes:
  - {{host: "*", backend: app, path_prefix: /upload, max_request_body: 10}}
  - {{host: "*", backend: app}}
backends:
  - name: app
    servers: ["{}"]
"#,
        origin.server_spec()
    )
}

fn assert_refused(answer: &str, status: u16, cause: &str, field: &str) {
    assert_sluice_answer(answer, status, cause);
    assert!(answer.contains(field), "the answer names {field}: {answer}");
}

fn assert_ok(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
}

#[tokio::test]
async fn head_limits_from_the_config_hold_at_their_edges() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &config(&origin)).await;
    // "GET /" + n + " HTTP/1.1\r" is n + 15 bytes: n = 85 is exactly 100.
    let line = |n: usize| {
        format!(
            "GET /{} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
            "a".repeat(n)
        )
    };
    assert_ok(
        &exchange(sluice.listener_addr("egress"), line(85).as_bytes())
            .await
            .0,
    );
    let (answer, _) = exchange(sluice.listener_addr("egress"), line(86).as_bytes()).await;
    assert_refused(&answer, 414, "uri_too_long", "max_request_line");

    let head = |n: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(n)
        )
    };
    let overhead = head(0).len();
    assert_ok(
        &exchange(
            sluice.listener_addr("egress"),
            head(1024 - overhead).as_bytes(),
        )
        .await
        .0,
    );
    let (answer, _) = exchange(
        sluice.listener_addr("egress"),
        head(1024 - overhead + 1).as_bytes(),
    )
    .await;
    assert_refused(&answer, 431, "request_header_too_large", "max_request_head");

    let headers = |n: usize| {
        let mut r = String::from("GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n");
        for i in 2..n {
            r.push_str(&format!("X-{i}: v\r\n"));
        }
        r + "\r\n"
    };
    assert_ok(
        &exchange(sluice.listener_addr("egress"), headers(5).as_bytes())
            .await
            .0,
    );
    let (answer, _) = exchange(sluice.listener_addr("egress"), headers(6).as_bytes()).await;
    assert_refused(
        &answer,
        431,
        "request_header_too_large",
        "max_request_headers",
    );
    assert_eq!(origin.requests(), 3, "only the requests at the limits");
}

#[tokio::test]
async fn a_body_over_the_routes_limit_gets_413_and_one_at_it_goes_through() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &config(&origin)).await;
    let post = |len: usize| {
        format!(
            "POST /upload HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n{}",
            "b".repeat(len)
        )
    };
    let (answer, _) = exchange(sluice.listener_addr("egress"), post(10).as_bytes()).await;
    assert_ok(&answer);
    assert!(
        answer.contains("x-origin-body-bytes: 10\r\n"),
        "the whole body arrived: {answer}"
    );
    let (answer, _) = exchange(sluice.listener_addr("egress"), post(11).as_bytes()).await;
    assert_refused(&answer, 413, "request_body_too_large", "max_request_body");
    assert!(answer.contains("11-byte body"), "{answer}");
    assert_eq!(
        origin.requests(),
        1,
        "the declared 11 bytes never left sluice"
    );

    // With Expect: 100-continue the client learns before sending anything.
    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    conn.send(
        b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let (answer, _) = conn.read_to_end(Duration::from_secs(10)).await;
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert_refused(&answer, 413, "request_body_too_large", "max_request_body");

    // Other routes have no limit.
    let big = format!(
        "POST /other HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n{}",
        "c".repeat(5000)
    );
    assert_ok(
        &exchange(sluice.listener_addr("egress"), big.as_bytes())
            .await
            .0,
    );
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn a_chunked_body_that_grows_past_the_limit_is_cut_off_and_answered_413() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &config(&origin)).await;
    let fits = "POST /upload HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\
                Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    let (answer, _) = exchange(sluice.listener_addr("egress"), fits.as_bytes()).await;
    assert_ok(&answer);
    assert!(answer.contains("x-origin-body-bytes: 10\r\n"), "{answer}");

    let over = "POST /upload HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\
                Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n";
    let (answer, _) = exchange(sluice.listener_addr("egress"), over.as_bytes()).await;
    assert_refused(&answer, 413, "request_body_too_large", "max_request_body");
    assert!(!answer.contains("x-origin-body-bytes"), "{answer}");
    let metrics = sluice.metrics().await;
    assert!(
        metrics.contains(
            r#"sluice_client_errors_total{listener="egress",cause="request_body_too_large"} 1"#
        ),
        "counted once, as the client's: {metrics}"
    );
    let errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("sluice_upstream_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(errors, 0.0, "not held against the origin: {metrics}");
}

#[tokio::test]
async fn http2_requests_are_held_to_max_request_headers() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &config(&origin)).await;
    let client = H2Client::connect(sluice.listener_addr("egress"))
        .await
        .unwrap();
    let headers = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("x-{i}"), "v".to_string()))
            .collect()
    };
    let (status, _) = client.get_with("app.test", "/", &headers(5)).await.unwrap();
    assert_eq!(status, 200, "five headers are the limit");
    let (status, body) = client.get_with("app.test", "/", &headers(6)).await.unwrap();
    assert_eq!(status, 431, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("max_request_headers"),
        "{body:?}"
    );
    assert_eq!(origin.requests(), 1);
}
