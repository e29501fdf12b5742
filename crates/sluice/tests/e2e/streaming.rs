//! Bodies stream through sluice in both directions without being buffered whole, the
//! bodiless responses (HEAD, 204, 304) and chunked ones are framed correctly and leave
//! their upstream connection reusable, and the HTTP/1 corner cases (`Expect:
//! 100-continue`, HTTP/1.0 clients) work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{
    download, get,
    http::{header, Method},
    http_body_util::Empty,
    request, send, upload, Origin, Sluice,
};
use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// How long a hand-made exchange on a raw socket may take.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// Sluice with one listener forwarding every host to `origin` over plain HTTP.
async fn sluice_for(origin: &Origin) -> Sluice {
    let yaml = format!(
        r#"
log: {{format: json}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes: [{{host: "*", backend: app}}]
backends:
  - name: app
    servers: ["{}"]
"#,
        origin.server_spec()
    );
    Sluice::start(SLUICE, &yaml).await
}

/// Reads from `stream` into `received` until it contains `needle` (bounded in time).
async fn read_until(stream: &mut TcpStream, received: &mut Vec<u8>, needle: &str) {
    let found = |r: &[u8]| String::from_utf8_lossy(r).contains(needle);
    let reading = async {
        let mut buf = [0u8; 4096];
        while !found(received) {
            let n = stream.read(&mut buf).await.expect("read from sluice");
            assert!(
                n > 0,
                "connection closed before {needle:?} arrived; got {:?}",
                String::from_utf8_lossy(received)
            );
            received.extend_from_slice(&buf[..n]);
        }
    };
    if tokio::time::timeout(RAW_TIMEOUT, reading).await.is_err() {
        panic!(
            "no {needle:?} within {RAW_TIMEOUT:?}; got {:?}",
            String::from_utf8_lossy(received)
        );
    }
}

/// Reads from `stream` until the peer closes it (panics if it stays open).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(RAW_TIMEOUT, stream.read_to_end(&mut received))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "sluice kept the connection open; got {:?}",
                String::from_utf8_lossy(&received)
            )
        })
        .expect("read until close");
    String::from_utf8_lossy(&received).into_owned()
}

/// The value of header `name` (any case) in the head of a raw HTTP/1 response.
fn header_value<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A 256 MiB download and a 256 MiB upload pass through intact while sluice's peak
/// memory stays far below the body size: bodies are streamed, never buffered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_without_buffering() {
    const SIZE: u64 = 256 * 1024 * 1024;
    const MEMORY_LIMIT_KIB: u64 = 64 * 1024;
    let origin = Origin::start().await;
    let sluice = sluice_for(&origin).await;
    let egress = sluice.listener_addr("egress");

    let down = download(egress, "bulk.test", &format!("/bytes/{SIZE}")).await;
    assert_eq!(down.status, 200);
    assert_eq!(down.error, None);
    assert_eq!(down.len, SIZE);
    assert!(down.intact, "the downloaded bytes were altered");
    assert_eq!(
        down.headers.get(header::CONTENT_LENGTH).unwrap(),
        &SIZE.to_string()
    );

    let up = upload(egress, "bulk.test", "/sink", SIZE).await;
    assert_eq!(up.status, 200);
    assert_eq!(
        up.text(),
        SIZE.to_string(),
        "the origin received every byte"
    );
    assert_eq!(up.header("x-origin-body-intact"), Some("true"));

    let peak = sluice.peak_rss_kib();
    assert!(
        peak < MEMORY_LIMIT_KIB,
        "sluice peaked at {peak} KiB RSS moving {} MiB each way (limit {MEMORY_LIMIT_KIB} KiB)",
        SIZE >> 20
    );
}

/// Chunked responses arrive whole, HEAD gets the headers without a body, 204, 304 and
/// empty (`Content-Length: 0` or zero-chunk) responses have no body, and none of them
/// costs a new upstream connection: a response that is already at its end still
/// returns its connection to the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_bodiless_responses_are_framed_right_and_keep_the_connection() {
    let origin = Origin::start().await;
    let sluice = sluice_for(&origin).await;
    let egress = sluice.listener_addr("egress");

    let chunked = download(egress, "app.test", "/chunked/1000000").await;
    assert_eq!(chunked.status, 200);
    assert_eq!(chunked.error, None);
    assert_eq!(chunked.len, 1_000_000);
    assert!(chunked.intact);
    assert_eq!(chunked.headers.get(header::CONTENT_LENGTH), None);
    assert_eq!(origin.accepted(), 1);

    let head = send(
        egress,
        request(Method::HEAD, "app.test", "/bytes/1234", Empty::new()),
    )
    .await
    .expect("HEAD through sluice");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1234"));
    assert!(head.body.is_empty(), "HEAD response with a body");
    assert_eq!(
        origin.accepted(),
        1,
        "after HEAD: upstream connection reused"
    );

    for code in [204, 304] {
        let response = get(egress, "app.test", &format!("/status/{code}")).await;
        assert_eq!(response.status, code);
        assert!(response.body.is_empty(), "{code} with a body");
        assert_eq!(
            origin.accepted(),
            1,
            "after {code}: upstream connection reused"
        );
    }

    for empty in ["/bytes/0", "/chunked/0"] {
        let response = get(egress, "app.test", empty).await;
        assert_eq!(response.status, 200);
        assert!(response.body.is_empty(), "{empty} with a body");
        assert_eq!(
            origin.accepted(),
            1,
            "after {empty}: upstream connection reused"
        );
    }

    let last = get(egress, "app.test", "/").await;
    assert_eq!(last.status, 200);
    assert_eq!(last.origin_conn_id(), Some(1));
    assert_eq!(last.header("x-origin-conn-request"), Some("7"));
    assert_eq!(origin.accepted(), 1);
}

/// `Expect: 100-continue`: sluice answers `100 Continue` itself, the client then sends
/// the body, and the origin receives it (without the `Expect` header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let origin = Origin::start().await;
    let sluice = sluice_for(&origin).await;
    let mut stream = TcpStream::connect(sluice.listener_addr("egress"))
        .await
        .unwrap();

    stream
        .write_all(
            b"POST /sink HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\n\
              Content-Length: 5\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    read_until(&mut stream, &mut received, "\r\n\r\n").await;
    let interim = String::from_utf8_lossy(&received).into_owned();
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "expected 100 Continue before sending the body, got {interim:?}"
    );

    stream.write_all(b"hello").await.unwrap();
    let rest = read_to_close(&mut stream).await;
    let final_response = rest.as_str();
    assert!(
        final_response.starts_with("HTTP/1.1 200 OK\r\n"),
        "final response: {final_response:?}"
    );
    assert!(final_response.ends_with("\r\n\r\n5"), "{final_response:?}");
    let seen = header_value(final_response, "x-origin-headers").unwrap();
    assert!(
        !seen.split(',').any(|h| h == "expect"),
        "Expect was forwarded: {seen}"
    );
    assert_eq!(origin.requests(), 1);
}

/// An HTTP/1.0 client without keep-alive gets a complete response and its connection
/// closed, while the upstream connection (always HTTP/1.1 keep-alive) goes back to the
/// pool for the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_clients_get_a_complete_response_and_the_upstream_connection_is_kept() {
    let origin = Origin::start().await;
    let sluice = sluice_for(&origin).await;
    let egress: SocketAddr = sluice.listener_addr("egress");

    let mut stream = TcpStream::connect(egress).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let response = read_to_close(&mut stream).await;
    let status_line = response.lines().next().unwrap_or_default();
    assert!(
        status_line.starts_with("HTTP/1.") && status_line.contains(" 200 "),
        "{response:?}"
    );
    assert!(
        response.ends_with("\r\n\r\nhello from origin"),
        "incomplete body: {response:?}"
    );
    assert_eq!(header_value(&response, "content-length"), Some("17"));
    assert_eq!(header_value(&response, "x-origin-conn-request"), Some("1"));

    let next = get(egress, "app.test", "/").await;
    assert_eq!(next.status, 200);
    assert_eq!(next.origin_conn_id(), Some(1));
    assert_eq!(next.header("x-origin-conn-request"), Some("2"));
    assert_eq!(origin.accepted(), 1, "the upstream connection was reused");
}
