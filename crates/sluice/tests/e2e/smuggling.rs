//! The request-smuggling and parsing corpus (issue 14): each request is sent raw
//! through sluice to a [`RecordingOrigin`], which keeps every byte it receives and
//! reads them with its own strict parser. A request that could be framed two ways is
//! refused with its documented status and reason and nothing of it reaches the
//! origin; one that is accepted reaches the origin as exactly one unambiguous message.
//! Cases adapted from HAProxy's `reg-tests/http-messaging` (`http_transfer_encoding`,
//! `h1_request_target_validation`, `h1_to_h1`) are marked (haproxy).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, exchange, Ending, Message, RawConn, RecordingOrigin, Sluice};
use std::time::Duration;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";
const POST: &str = "POST /p HTTP/1.1\r\nHost: app.test\r\n";

async fn start() -> (RecordingOrigin, Sluice) {
    let origin = RecordingOrigin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    (origin, sluice)
}

fn status(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {answer:?}"))
}

/// (what, request, status, `sluice-error`, a phrase of the reason)
type Refused = (&'static str, String, u16, &'static str, &'static str);

fn refused_cases() -> Vec<Refused> {
    let te = |v: &str| format!("{POST}Transfer-Encoding: {v}\r\n\r\n0\r\n\r\n{SMUGGLED}");
    let cl = |v: &str| format!("{POST}Content-Length: {v}\r\n\r\nhello{SMUGGLED}");
    let both = "both Content-Length and Transfer-Encoding";
    let head = "invalid request head";
    let mut many = String::from("GET / HTTP/1.1\r\nHost: app.test\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    vec![
        ("CL.TE", format!("{POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", both),
        ("TE.CL", format!("{POST}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", both),
        ("TE.CL (haproxy)", format!("{POST}Transfer-Encoding: chunked\r\nContent-Length: 31\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", both),
        ("two Content-Lengths", format!("{POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello{SMUGGLED}"), 400, "bad_request", "conflicting Content-Length"),
        ("a Content-Length list", cl("5, 6"), 400, "bad_request", "conflicting Content-Length"),
        ("a signed Content-Length", cl("+5"), 400, "bad_request", "invalid Content-Length"),
        ("a negative Content-Length", cl("-1"), 400, "bad_request", "invalid Content-Length"),
        ("a hex Content-Length", cl("0x5"), 400, "bad_request", "invalid Content-Length"),
        ("an empty Content-Length", cl(""), 400, "bad_request", "invalid Content-Length"),
        ("an overflowing Content-Length", cl("99999999999999999999999"), 400, "bad_request", "invalid Content-Length"),
        ("Transfer-Encoding: xchunked", te("xchunked"), 400, "bad_request", "does not end in chunked"),
        ("Transfer-Encoding: chunked, identity", te("chunked, identity"), 400, "bad_request", "does not end in chunked"),
        ("Transfer-Encoding: identity", te("identity"), 400, "bad_request", "does not end in chunked"),
        ("Transfer-Encoding: \"chunked\"", te("\"chunked\""), 400, "bad_request", "does not end in chunked"),
        ("Transfer-Encoding: chunked, (haproxy)", te("chunked, gzip"), 400, "bad_request", "does not end in chunked"),
        ("Transfer-Encoding: chunked, chunked (haproxy)", te("chunked, chunked"), 400, "bad_request", "more than once"),
        ("Transfer-Encoding: chunked, gzip, chunked (haproxy)", te("chunked, gzip, chunked"), 400, "bad_request", "more than once"),
        ("two Transfer-Encoding: chunked lines", format!("{POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", "more than once"),
        ("Transfer-Encoding: gzip, chunked (haproxy)", te("gzip, chunked"), 501, "not_implemented", "only chunked"),
        ("a space before the colon", format!("{POST}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", head),
        ("a tab before the colon", format!("{POST}Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", head),
        ("obs-fold", format!("{POST}X-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", head),
        ("obs-fold of the value", format!("{POST}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", head),
        ("a vertical tab in the value", te("\x0bchunked"), 400, "bad_request", head),
        ("NUL in a value", "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\0b\r\n\r\n".into(), 400, "bad_request", head),
        ("CR in a value", "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\rb\r\n\r\n".into(), 400, "bad_request", head),
        ("a bare CR line end", "GET / HTTP/1.1\rHost: app.test\r\n\r\n".into(), 400, "bad_request", head),
        ("a space in a header name", "GET / HTTP/1.1\r\nHost: app.test\r\nX A: 1\r\n\r\n".into(), 400, "bad_request", head),
        ("an empty header name", "GET / HTTP/1.1\r\nHost: app.test\r\n: 1\r\n\r\n".into(), 400, "bad_request", head),
        ("Transfer-Encoding on HTTP/1.0", format!("POST / HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"), 400, "bad_request", "HTTP/1.0"),
        ("two Host headers", "GET / HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\n\r\n".into(), 400, "duplicate_host", "Host"),
        ("two Host headers, other case", "GET / HTTP/1.1\r\nHost: app.test\r\nhost: app.test\r\n\r\n".into(), 400, "duplicate_host", "Host"),
        ("no Host", "GET / HTTP/1.1\r\n\r\n".into(), 400, "missing_host", "Host"),
        ("two spaces in the request line", "GET  / HTTP/1.1\r\nHost: app.test\r\n\r\n".into(), 400, "bad_request", head),
        ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: app.test\r\n\r\n".into(), 400, "bad_request", head),
        ("a target without a slash (haproxy)", "GET admin HTTP/1.1\r\nHost: app.test\r\n\r\n".into(), 400, "bad_request", "target"),
        ("authority-form without CONNECT (haproxy)", "GET app.test:80 HTTP/1.1\r\nHost: app.test\r\n\r\n".into(), 400, "bad_request", "target"),
        ("an over-long request line", format!("GET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n", "a".repeat(16 * 1024)), 414, "uri_too_long", "max_request_line"),
        ("101 headers", format!("{many}X-last: v\r\n\r\n"), 431, "request_header_too_large", "max_request_headers"),
        ("an over-large head", format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {}\r\n\r\n", "b".repeat(64 * 1024)), 431, "request_header_too_large", "max_request_head"),
    ]
}

#[tokio::test]
async fn requests_an_origin_could_frame_another_way_are_refused_and_never_reach_it() {
    let (origin, sluice) = start().await;
    let mut failures = Vec::new();
    let mut follow_ups = 0;
    for (what, request, want, cause, reason) in refused_cases() {
        let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
        conn.send(request.as_bytes()).await;
        // The reason is in the body, so it has all arrived once the reason has.
        let answer = conn.read_until(reason).await;
        let ok = answer.starts_with("HTTP/1.1 ")
            && status(&answer) == want
            && answer.contains(&format!("sluice-error: {cause}\r\n"));
        if !ok {
            failures.push(format!(
                "{what}: wanted {want} {cause} ({reason}):\n{answer}"
            ));
            continue;
        }
        // A request that could not be framed ends its connection; a well-framed one
        // refused for its Host leaves it clean for the next request.
        if matches!(cause, "duplicate_host" | "missing_host") {
            conn.send(b"GET /next HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
                .await;
            let (rest, _) = conn.read_to_end(Duration::from_secs(10)).await;
            if !rest.contains("x-recorded: ") {
                failures.push(format!("{what}: the next request failed:\n{rest}"));
            }
            follow_ups += 1;
        } else {
            let (rest, ending) = conn.read_to_end(Duration::from_secs(10)).await;
            if !answer.contains("connection: close\r\n") || ending != Ending::Eof {
                failures.push(format!("{what}: not closed ({ending:?}):\n{rest}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let messages = origin.messages().unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = messages.iter().map(|m| m.line.as_str()).collect();
    assert_eq!(
        lines,
        vec!["GET /next HTTP/1.1"; follow_ups],
        "only the follow-up requests reached the origin"
    );
}

/// (what, request, check of the messages the origin got for it)
type Accepted = (&'static str, String, fn(&[Message]) -> Result<(), String>);

fn one(ms: &[Message]) -> Result<&Message, String> {
    match ms {
        [m] => Ok(m),
        _ => Err(format!("wanted one message, got {ms:?}")),
    }
}

fn body_is(ms: &[Message], want: &[u8]) -> Result<(), String> {
    let m = one(ms)?;
    if m.body != want {
        return Err(format!("body {:?}", String::from_utf8_lossy(&m.body)));
    }
    Ok(())
}

fn accepted_cases() -> Vec<Accepted> {
    let chunked =
        |body: &str| format!("{POST}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}");
    vec![
        ("two equal Content-Lengths", format!("{POST}Content-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"), |ms| {
            body_is(ms, b"hello")?;
            match one(ms)?.values("content-length")[..] {
                ["5"] => Ok(()),
                ref v => Err(format!("Content-Length {v:?}")),
            }
        }),
        ("a Content-Length list of one value", format!("{POST}Content-Length: 5, 5\r\nConnection: close\r\n\r\nhello"), |ms| body_is(ms, b"hello")),
        ("leading zeros", format!("{POST}Content-Length: 005\r\nConnection: close\r\n\r\nhello"), |ms| body_is(ms, b"hello")),
        ("chunked in capitals, after a tab", format!("{POST}Transfer-Encoding:\tCHUNKED\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), |ms| body_is(ms, b"hello")),
        ("chunk extensions", chunked("5;name=value\r\nhello\r\n3;x\r\n!!!\r\n0\r\n\r\n"), |ms| body_is(ms, b"hello!!!")),
        ("upper-case hex chunk sizes", chunked("A\r\n0123456789\r\n0\r\n\r\n"), |ms| body_is(ms, b"0123456789")),
        ("trailers", chunked("5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"), |ms| body_is(ms, b"hello")),
        ("Connection naming Transfer-Encoding", format!("{POST}Transfer-Encoding: chunked\r\nConnection: close, Transfer-Encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), |ms| body_is(ms, b"hello")),
        ("Connection naming Content-Length", format!("{POST}Content-Length: 5\r\nConnection: close, Content-Length\r\n\r\nhello"), |ms| body_is(ms, b"hello")),
        ("bare LF line ends", "GET /lf HTTP/1.1\nHost: app.test\nConnection: close\n\n".into(), |ms| {
            let m = one(ms)?;
            if m.line != "GET /lf HTTP/1.1" {
                return Err(m.line.clone());
            }
            Ok(())
        }),
        ("absolute-form naming another host than Host", "GET http://app.test/abs HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n".into(), |ms| {
            match one(ms)?.values("host")[..] {
                ["app.test"] => Ok(()),
                ref v => Err(format!("Host {v:?}")),
            }
        }),
        ("Upgrade: h2c", "GET /h2c HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n".into(), |ms| {
            let m = one(ms)?;
            if !m.values("upgrade").is_empty() || !m.values("http2-settings").is_empty() {
                return Err(format!("passed on: {:?}", m.headers));
            }
            Ok(())
        }),
        ("a request pipelined after a bodied one", format!("{POST}Content-Length: 5\r\n\r\nhelloGET /second HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"), |ms| {
            match ms {
                [a, b] if a.body == b"hello" && b.line == "GET /second HTTP/1.1" && b.body.is_empty() => Ok(()),
                _ => Err(format!("{ms:?}")),
            }
        }),
        ("a request pipelined after a chunked one", format!("{POST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"), |ms| {
            match ms {
                [a, b] if a.body == b"hello" && b.line == "GET /second HTTP/1.1" => Ok(()),
                _ => Err(format!("{ms:?}")),
            }
        }),
        ("Expect: 100-continue", format!("{POST}Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nhello"), |ms| body_is(ms, b"hello")),
    ]
}

#[tokio::test]
async fn accepted_requests_reach_the_origin_as_one_unambiguous_message() {
    let (origin, sluice) = start().await;
    let mut seen = 0;
    let mut failures = Vec::new();
    for (what, request, check) in accepted_cases() {
        let (answer, _) = exchange(sluice.listener_addr("egress"), request.as_bytes()).await;
        if !answer.starts_with("HTTP/1.1 200 ") {
            failures.push(format!("{what}: not forwarded:\n{answer}"));
            continue;
        }
        match origin.messages() {
            Ok(all) => {
                if let Err(e) = check(&all[seen..]) {
                    failures.push(format!("{what}: {e}"));
                }
                seen = all.len();
            }
            Err(e) => {
                failures.push(format!(
                    "{what}: the origin could not read it strictly: {e}"
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn broken_chunked_bodies_are_400_and_no_request_completes_at_the_origin() {
    let (origin, sluice) = start().await;
    let cases = [
        ("a negative size", "-1\r\nhello\r\n0\r\n\r\n"),
        ("a 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
        (
            "an overflowing size",
            "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        ("an empty size line", "\r\nhello\r\n0\r\n\r\n"),
        ("not hex", "g\r\nhello\r\n0\r\n\r\n"),
        ("more data than the size", "5\r\nhello!\r\n0\r\n\r\n"),
        ("a bare LF after the size", "5\nhello\r\n0\r\n\r\n"),
        ("a bare LF after the data", "5\r\nhello\n0\r\n\r\n"),
        ("a space inside the size", "5 5\r\nhello\r\n0\r\n\r\n"),
    ];
    let mut failures = Vec::new();
    for (what, body) in cases {
        let request = format!("{POST}Transfer-Encoding: chunked\r\n\r\n{body}{SMUGGLED}");
        let (answer, _) = exchange(sluice.listener_addr("egress"), request.as_bytes()).await;
        if !(answer.starts_with("HTTP/1.1 400 ")
            && answer.contains("sluice-error: bad_request_body\r\n"))
        {
            failures.push(format!("{what}: {answer}"));
        }
    }
    // A good request after them: on a pooled connection, what a broken one left
    // behind would make it unreadable.
    let (answer, _) = exchange(
        sluice.listener_addr("egress"),
        b"GET /after HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let messages = origin.messages().unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = messages.iter().map(|m| m.line.as_str()).collect();
    assert_eq!(
        lines,
        ["GET /after HTTP/1.1"],
        "no broken request completed, none was smuggled"
    );
}
