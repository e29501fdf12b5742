//! sluice's HTTP/1.1 server side, through the binary: a request an origin could frame
//! differently from sluice is refused before routing with the reason (and what it
//! tried to smuggle never reaches the origin); oversized heads get 414/431; pipelined
//! requests with bodies are answered in order on one connection; a body the answer
//! did not need ends the connection cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, assert_sluice_answer, exchange, Ending, Origin, RawConn, Sluice};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn assert_answer(answer: &str, status: u16, cause: &str) {
    assert_sluice_answer(answer, status, cause);
    assert!(answer.contains("connection: close\r\n"), "{answer}");
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";

#[tokio::test]
async fn requests_framed_two_ways_are_refused_and_nothing_reaches_the_origin() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let post = "POST / HTTP/1.1\r\nHost: app.test\r\n";
    let cases = [
        // CL.TE and TE.CL: whichever the origin believed, the rest is a request.
        (
            format!("{post}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            "bad_request",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            "bad_request",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            format!("{post}Content-Length: 5\r\nContent-Length: 44\r\n\r\nhello{SMUGGLED}"),
            400,
            "bad_request",
            "conflicting Content-Length values",
        ),
        (
            format!("{post}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            "bad_request",
            "does not end in chunked",
        ),
        (
            format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            "bad_request",
            "does not end in chunked",
        ),
        (
            format!("{post}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            501,
            "not_implemented",
            "only chunked",
        ),
        (
            format!("{post}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            "bad_request",
            "invalid request head",
        ),
        (
            format!("{post}X-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            "bad_request",
            "invalid request head",
        ),
        (
            format!("POST / HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            "bad_request",
            "HTTP/1.0",
        ),
    ];
    for (request, status, cause, reason) in &cases {
        let (answer, ending) = exchange(sluice.listener_addr("egress"), request.as_bytes()).await;
        assert_answer(&answer, *status, cause);
        assert!(answer.contains(reason), "{request:?}: {answer}");
        assert_eq!(
            ending,
            Ending::Eof,
            "{request:?}: closed cleanly after the answer"
        );
    }
    assert_eq!(origin.requests(), 0, "nothing was forwarded");
    let metrics = sluice.metrics().await;
    assert!(
        metrics.contains(r#"sluice_client_errors_total{listener="egress",cause="bad_request"} 8"#),
        "{metrics}"
    );
    let log = sluice.logs();
    assert!(log.contains("malformed request"), "{log}");
}

#[tokio::test]
async fn oversized_request_lines_and_heads_get_414_and_431() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let (answer, _) = exchange(sluice.listener_addr("egress"), long_target.as_bytes()).await;
    assert_answer(&answer, 414, "uri_too_long");
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {}\r\n\r\n",
        "b".repeat(65 * 1024)
    );
    let (answer, _) = exchange(sluice.listener_addr("egress"), big_head.as_bytes()).await;
    assert_answer(&answer, 431, "request_header_too_large");
    let mut many = String::from("GET / HTTP/1.1\r\nHost: app.test\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (answer, _) = exchange(sluice.listener_addr("egress"), many.as_bytes()).await;
    assert_answer(&answer, 431, "request_header_too_large");
    // Just under the limits, the same requests go through.
    let fits = format!(
        "GET /{} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    let (answer, _) = exchange(sluice.listener_addr("egress"), fits.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 "),
        "{}",
        &answer[..80.min(answer.len())]
    );
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn pipelined_requests_with_bodies_are_answered_in_order_on_one_connection() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    conn.send(
        b"POST /one HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello\
          GET /two HTTP/1.1\r\nHost: app.test\r\n\r\n\
          POST /three HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /four HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await;
    let text = conn.read_until_count("hello from origin", 4).await;
    let at = |p: &str| {
        text.find(&format!("x-origin-path: {p}\r\n"))
            .unwrap_or_else(|| panic!("no answer for {p}: {text}"))
    };
    assert!(at("/one") < at("/two") && at("/two") < at("/three") && at("/three") < at("/four"));
    assert_eq!(text.matches("HTTP/1.1 200 ").count(), 4, "{text}");
    assert_eq!(origin.requests(), 4);
}

#[tokio::test]
async fn a_body_the_answer_did_not_need_ends_the_connection_after_the_answer() {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let (answer, ending) = exchange(
        sluice.listener_addr("egress"),
        b"POST / HTTP/1.1\r\nHost: app.test\r\nHost: b.test\r\nContent-Length: 5\r\n\r\n\
          helloGET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await;
    assert_answer(&answer, 400, "duplicate_host");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert_eq!(ending, Ending::Eof, "a clean close, not a reset");
    assert_eq!(origin.requests(), 0);
}
