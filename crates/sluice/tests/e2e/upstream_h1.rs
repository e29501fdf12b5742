//! sluice's own HTTP/1.1 upstream client against origins scripted byte by byte: an
//! answer before the upload ends, close-delimited and chunked bodies (extensions,
//! trailers), informational responses, oversized and contradictory heads, how uploads
//! are framed, and bytes an origin sends after its answer. Whether a connection was
//! reused is read off the origin's side (the next request on the same socket, or a new
//! accept) and off sluice's connection counters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{
    app_config, body::generated_bytes, get, http::Method, http_body_util::Full, request, send,
    Response, Sluice,
};
use std::{future::Future, net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// The bound on every wait of this file.
const WAIT: Duration = Duration::from_secs(10);

const TOO_LARGE: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large";
const FRESH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh";

async fn within<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, work)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

/// An origin that hands each connection it accepts to the test, which plays the server
/// by hand: a test knows exactly which socket each request came on.
struct ScriptedOrigin {
    accepted: mpsc::UnboundedReceiver<TcpStream>,
}

impl ScriptedOrigin {
    /// The next connection sluice opens.
    async fn next(&mut self) -> Peer {
        let stream = within("new upstream connection", self.accepted.recv()).await;
        let stream = stream.expect("the accept loop ended");
        Peer { stream, rx: vec![] }
    }

    fn assert_no_new_connection(&mut self) {
        let extra = self.accepted.try_recv();
        assert!(extra.is_err(), "sluice opened another upstream connection");
    }
}

/// A scripted origin, and a sluice whose only backend is it over plain HTTP, with
/// `top` before the usual config.
async fn start(top: &str) -> (ScriptedOrigin, Sluice) {
    start_with(top, "").await
}

/// [`start`], with `backend` added to the backend's settings.
async fn start_with(top: &str, backend: &str) -> (ScriptedOrigin, Sluice) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, accepted) = mpsc::unbounded_channel();
    // Ends with the test's runtime.
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if tx.send(stream).is_err() {
                return;
            }
        }
    });
    let yaml = format!("{top}\n{}", app_config(&[addr.to_string()], backend));
    let sluice = Sluice::start(SLUICE, &yaml).await;
    (ScriptedOrigin { accepted }, sluice)
}

/// The origin's end of one upstream connection; `rx` holds what was read and not
/// consumed yet.
struct Peer {
    stream: TcpStream,
    rx: Vec<u8>,
}

impl Peer {
    async fn fill(&mut self) {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = within("bytes from sluice", self.stream.read(&mut chunk)).await;
        let n = n.expect("origin read");
        assert!(n > 0, "sluice closed the connection; got {:?}", self.text());
        self.rx.extend_from_slice(&chunk[..n]);
    }

    /// What comes before the next `delim` (which is consumed too).
    async fn until(&mut self, delim: &[u8]) -> Vec<u8> {
        loop {
            if let Some(at) = self.rx.windows(delim.len()).position(|w| w == delim) {
                let mut got: Vec<u8> = self.rx.drain(..at + delim.len()).collect();
                got.truncate(at);
                return got;
            }
            self.fill().await;
        }
    }

    /// A request head with its blank line, lowercased for matching.
    async fn head(&mut self) -> String {
        let head = self.until(b"\r\n\r\n").await;
        String::from_utf8_lossy(&head).to_ascii_lowercase() + "\r\n\r\n"
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.rx.len() < n {
            self.fill().await;
        }
        self.rx.drain(..n).collect()
    }

    async fn line(&mut self) -> String {
        String::from_utf8(self.until(b"\r\n").await).unwrap()
    }

    /// A chunked body: its data, and the trailer lines after the last chunk.
    async fn chunked_body(&mut self) -> (Vec<u8>, Vec<String>) {
        let mut data = Vec::new();
        loop {
            let line = self.line().await;
            let digits = line.split(';').next().unwrap().trim();
            let size = usize::from_str_radix(digits, 16).expect("chunk size");
            if size == 0 {
                break;
            }
            data.extend(self.take(size).await);
            assert_eq!(self.take(2).await, b"\r\n", "chunk data not ended by CRLF");
        }
        let mut trailers = Vec::new();
        loop {
            match self.line().await {
                end if end.is_empty() => return (data, trailers),
                trailer => trailers.push(trailer),
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let written = within("write to sluice", self.stream.write_all(bytes)).await;
        written.expect("origin write");
    }

    /// Reads until sluice closes the connection (FIN or reset); returns the bytes read.
    async fn closed_by_sluice(&mut self) -> usize {
        let reading = async {
            let (mut total, mut chunk) = (0, vec![0u8; 64 * 1024]);
            while let Ok(n @ 1..) = self.stream.read(&mut chunk).await {
                total += n;
            }
            total
        };
        within("close of the upstream connection by sluice", reading).await
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.rx).into_owned()
    }

    /// Waits until what this origin wrote has reached sluice's kernel (acknowledged)
    /// and, if `read`, sluice itself. No readiness event reports a peer's queues, so
    /// this polls them in `/proc/net/tcp`.
    async fn wait_taken_by_sluice(&self, read: bool) {
        let origin = self.stream.local_addr().unwrap();
        let sluice = self.stream.peer_addr().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let unacked = queues(origin, sluice).map(|q| q.0);
            let unread = queues(sluice, origin).map(|q| q.1);
            if unacked == Some(0) && (!read || unread == Some(0)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not taken by sluice: {unacked:?} bytes unacked, {unread:?} unread"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// `(tx_queue, rx_queue)` of the IPv4 socket `local` → `remote` in `/proc/net/tcp`.
fn queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let (local, remote) = (proc_addr(local), proc_addr(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1..3)? != [local.as_str(), remote.as_str()] {
            return None;
        }
        let (tx, rx) = f.get(4)?.split_once(':')?;
        let hex = |n| u64::from_str_radix(n, 16).ok();
        Some((hex(tx)?, hex(rx)?))
    })
}

/// An address as `/proc/net/tcp` prints it: the in-memory (network-order) u32, in hex.
fn proc_addr(addr: SocketAddr) -> String {
    let SocketAddr::V4(a) = addr else {
        unreachable!("loopback IPv4 only")
    };
    let ip = u32::from_ne_bytes(a.ip().octets());
    format!("{ip:08X}:{:04X}", a.port())
}

/// `(upstream connections opened, requests sent on a reused one)` so far.
async fn connection_counts(sluice: &Sluice) -> (f64, f64) {
    let series = |what| format!(r#"sluice_upstream_connections_{what}_total{{backend="app"}}"#);
    let opened = sluice.metric(&series("opened")).await.unwrap_or(0.0);
    (
        opened,
        sluice.metric(&series("reused")).await.unwrap_or(0.0),
    )
}

async fn fetch(sluice: &Sluice, path: &str) -> Response {
    get(sluice.listener_addr("egress"), "app.test", path).await
}

/// The next request goes on a connection sluice opens for it, and gets that
/// connection's answer.
async fn next_is_fresh(sluice: &Sluice, origin: &mut ScriptedOrigin) {
    let (response, ()) = tokio::join!(fetch(sluice, "/next"), async {
        let mut up = origin.next().await;
        let head = up.head().await;
        assert!(head.starts_with("get /next http/1.1\r\n"), "{head}");
        up.send(FRESH).await;
    });
    let got = (response.status.as_u16(), response.text());
    assert_eq!(got, (200, "fresh".to_owned()));
}

fn assert_protocol_error(response: &Response, what: &str) {
    let got = (response.status.as_u16(), response.header("sluice-error"));
    assert_eq!(got, (502, Some("upstream_protocol_error")), "{what}");
}

async fn client(sluice: &Sluice) -> TcpStream {
    let connecting = TcpStream::connect(sluice.listener_addr("egress"));
    within("connection to sluice", connecting).await.unwrap()
}

async fn write(to: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) {
    within("write to sluice", to.write_all(bytes))
        .await
        .unwrap();
}

/// Reads from a client socket until `needle` has arrived; returns all of it.
async fn read_until(from: &mut (impl AsyncRead + Unpin), needle: &str) -> String {
    let mut got = Vec::new();
    let reading = async {
        let mut chunk = vec![0u8; 16 * 1024];
        while !String::from_utf8_lossy(&got).contains(needle) {
            match from.read(&mut chunk).await {
                Ok(n @ 1..) => got.extend_from_slice(&chunk[..n]),
                end => panic!(
                    "{end:?} before {needle:?}: {}",
                    String::from_utf8_lossy(&got)
                ),
            }
        }
    };
    within(&format!("{needle:?} at the client"), reading).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// The client has sent a head announcing 1 MB and only 1000 bytes of it when the origin
/// answers 413 (without `Connection: close`). The client gets the 413, and the
/// connection, which still expects the rest of an upload, is closed, not pooled.
#[tokio::test]
async fn an_answer_before_the_upload_is_sent_reaches_the_client_and_retires_the_connection() {
    let (mut origin, sluice) = start("").await;
    let mut client = client(&sluice).await;
    let head = "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000000\r\n\r\n";
    write(&mut client, head.as_bytes()).await;
    write(&mut client, &[b'x'; 1000]).await;
    let mut up = origin.next().await;
    let head = up.head().await;
    assert!(head.contains("\r\ncontent-length: 1000000\r\n"), "{head}");
    up.send(TOO_LARGE).await;
    let answer = read_until(&mut client, "too large").await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    let drained = up.closed_by_sluice().await;
    assert!(up.rx.len() + drained <= 1000, "more than was sent");
    next_is_fresh(&sluice, &mut origin).await;
    assert_eq!(connection_counts(&sluice).await, (2.0, 0.0));
}

/// A 64 MiB upload the origin never reads: it answers 413 after the head, then keeps
/// reading until sluice lets go (a lingering close, as NGINX does) or resets at once
/// (the 413 is still readable on sluice's socket after the reset: Linux keeps received
/// data). Either way the client gets the 413, the rest of the upload is not sent, and
/// the next request opens a new connection.
async fn answer_during_a_blocked_upload(reset_after_answer: bool) {
    const LEN: usize = 64 << 20;
    // One worker: readiness then changes only in reactor turns between sluice's polls,
    // so an answer and a reset that come while it is busy writing are seen as they
    // would be by a loaded proxy.
    let (mut origin, sluice) = start("runtime: {workers: 1}").await;
    let (mut from_sluice, mut to_sluice) = client(&sluice).await.into_split();
    // Ends when sluice stops taking the body; aborted below in case it never does.
    let uploader = tokio::spawn(async move {
        let head = format!("POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: {LEN}\r\n\r\n");
        to_sluice.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..LEN / chunk.len() {
            to_sluice.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(to_sluice)
    });
    let mut up = origin.next().await;
    up.head().await;
    up.send(TOO_LARGE).await;
    let answer = if reset_after_answer {
        up.stream.set_zero_linger().unwrap();
        drop(up);
        read_until(&mut from_sluice, "too large").await
    } else {
        let closing = up.closed_by_sluice();
        let (answer, drained) = tokio::join!(read_until(&mut from_sluice, "too large"), closing);
        assert!(drained < LEN, "sluice sent the whole upload after the 413");
        answer
    };
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    uploader.abort();
    next_is_fresh(&sluice, &mut origin).await;
    assert_eq!(connection_counts(&sluice).await.0, 2.0);
}

#[tokio::test]
async fn an_answer_while_the_upload_is_blocked_reaches_the_client() {
    answer_during_a_blocked_upload(false).await;
}

#[tokio::test]
async fn an_answer_then_a_reset_while_the_upload_is_blocked_reaches_the_client() {
    answer_during_a_blocked_upload(true).await;
}

/// A body delimited by the origin closing (no Content-Length, no Transfer-Encoding;
/// HTTP/1.1 and HTTP/1.0) reaches the client whole and counts as complete; sluice
/// closes its side too, and the next request needs a new connection.
#[tokio::test]
async fn a_close_delimited_body_arrives_whole_and_ends_the_connection() {
    let (mut origin, sluice) = start("").await;
    let body = generated_bytes(300_000);
    for (i, status_line) in ["HTTP/1.1 200 OK", "HTTP/1.0 200 OK"].iter().enumerate() {
        let (response, ()) = tokio::join!(fetch(&sluice, "/eof"), async {
            let mut up = origin.next().await;
            up.head().await;
            up.send(format!("{status_line}\r\nContent-Type: x/y\r\n\r\n").as_bytes())
                .await;
            up.send(&body).await;
            up.stream.shutdown().await.unwrap();
            up.closed_by_sluice().await;
        });
        assert_eq!(response.status, 200, "{status_line}");
        assert_eq!(response.body.len(), body.len(), "{status_line}");
        assert!(response.body == body, "{status_line}: the body was altered");
        let entry = &sluice.wait_for_access_log(i + 1).await[i]["fields"];
        assert_eq!(entry["complete"], true, "{entry}");
    }
    origin.assert_no_new_connection();
    assert_eq!(connection_counts(&sluice).await, (2.0, 0.0));
}

/// `100 Continue` and `103 Early Hints` before the final response are skipped: the
/// client sees only the 200 and its body, and the connection serves the next request.
#[tokio::test]
async fn informational_responses_are_skipped_and_the_connection_is_kept() {
    let (mut origin, sluice) = start("").await;
    let mut client = client(&sluice).await;
    let ask = b"GET /hints HTTP/1.1\r\nHost: app.test\r\n\r\n";
    write(&mut client, ask).await;
    let mut up = origin.next().await;
    up.head().await;
    up.send(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    up.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        .await;
    up.send(b"HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let answer = read_until(&mut client, "hello").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert!(answer.contains("x-final: yes"), "{answer:?}");
    assert_eq!(answer.matches("HTTP/1.").count(), 1, "{answer:?}");

    write(&mut client, ask).await;
    assert!(up.head().await.starts_with("get /hints "));
    up.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain")
        .await;
    read_until(&mut client, "again").await;
    origin.assert_no_new_connection();
    assert_eq!(connection_counts(&sluice).await, (1.0, 1.0));
}

/// A response head over 64 KiB is refused with 502 `upstream_protocol_error` and its
/// connection closed: in one piece, or with its last KiB arriving once sluice has read
/// all but 100 bytes of the limit (a read then has room for at least 2 KiB, so the one
/// that crosses the limit is the one that completes the head).
async fn oversized_head(total: usize, first_piece: Option<usize>) {
    let (mut origin, sluice) = start("").await;
    let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ".to_vec();
    head.resize(total - 4, b'a');
    head.extend_from_slice(b"\r\n\r\nok");
    let (response, mut up) = tokio::join!(fetch(&sluice, "/big"), async {
        let mut up = origin.next().await;
        up.head().await;
        if let Some(first) = first_piece {
            up.send(&head[..first]).await;
            up.wait_taken_by_sluice(true).await;
            up.send(&head[first..]).await;
        } else {
            up.send(&head).await;
        }
        up
    });
    let big = response.header("x-big").map(str::len);
    assert_protocol_error(&response, &format!("{total} byte head, x-big {big:?}"));
    up.closed_by_sluice().await;
}

#[tokio::test]
async fn a_response_head_over_64_kib_is_502_upstream_protocol_error() {
    oversized_head(100 << 10, None).await;
}

#[tokio::test]
async fn a_response_head_over_64_kib_is_refused_even_when_its_last_read_crosses_the_limit() {
    oversized_head(65 << 10, Some((64 << 10) - 100)).await;
}

/// Chunk extensions (bare, with values, quoted with a `;` inside), hex sizes in either
/// case, a chunk larger than a read, and trailers: the client gets exactly the data,
/// and the connection, at a clean end of body, serves the next request.
#[tokio::test]
async fn a_chunked_body_with_extensions_and_trailers_arrives_whole_and_the_connection_is_kept() {
    let (mut origin, sluice) = start("").await;
    let big = generated_bytes(100_000);
    let mut want = b"hello, world0123456789".to_vec();
    want.extend_from_slice(&big);
    let (first, mut up) = tokio::join!(fetch(&sluice, "/chunked"), async {
        let mut up = origin.next().await;
        up.head().await;
        up.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n")
            .await;
        up.send(b"5;bare\r\nhello\r\n7;q=\"a;b\";n=v\r\n, world\r\nA\r\n0123456789\r\n")
            .await;
        up.send(format!("{:X};big\r\n", big.len()).as_bytes()).await;
        up.send(&big).await;
        up.send(b"\r\n0;last=1\r\nX-Sum: 1234\r\nX-Other: x\r\n\r\n")
            .await;
        up
    });
    assert_eq!(first.status, 200);
    assert_eq!(first.body.len(), want.len());
    assert!(first.body == want, "the chunked body was altered");

    let (second, ()) = tokio::join!(fetch(&sluice, "/second"), async {
        assert!(up.head().await.starts_with("get /second "));
        up.send(FRESH).await;
    });
    assert_eq!(second.text(), "fresh");
    origin.assert_no_new_connection();
    assert_eq!(connection_counts(&sluice).await, (1.0, 1.0));
}

/// Two `Content-Length` values that disagree (two lines, or one list) make the framing
/// unknowable: 502 `upstream_protocol_error`, none of the body reaches the client, and
/// the connection is closed.
#[tokio::test]
async fn conflicting_content_lengths_are_502_upstream_protocol_error() {
    let (mut origin, sluice) = start("").await;
    for lengths in [
        "Content-Length: 3\r\nContent-Length: 4",
        "content-length: 3,4",
    ] {
        let (response, mut up) = tokio::join!(fetch(&sluice, "/cl"), async {
            let mut up = origin.next().await;
            up.head().await;
            up.send(format!("HTTP/1.1 200 OK\r\n{lengths}\r\n\r\nabcd").as_bytes())
                .await;
            up
        });
        assert_protocol_error(&response, lengths);
        let text = response.text();
        assert!(!text.contains("abc"), "{lengths:?}: {text}");
        up.closed_by_sluice().await;
    }
}

/// A chunked upload (trailers included) goes upstream chunked, its data whole, without
/// Content-Length; a sized one with its Content-Length and exactly that many bytes.
/// Both on one connection: the second head starting right where the first body ended
/// shows the chunked framing left no stray byte.
#[tokio::test]
async fn uploads_reach_the_origin_whole_and_framed_as_they_came() {
    let (mut origin, sluice) = start("").await;
    let body = generated_bytes(100_000);
    let mut chunked = Vec::new();
    for piece in body.chunks(40_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\nX-Client-Trailer: t\r\n\r\n");
    let created = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";

    let mut client = client(&sluice).await;
    let ((), mut up) = tokio::join!(
        async {
            let head =
                "POST /chunked HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n";
            write(&mut client, head.as_bytes()).await;
            write(&mut client, &chunked).await;
            read_until(&mut client, " 201 ").await;
        },
        async {
            let mut up = origin.next().await;
            let head = up.head().await;
            assert!(head.starts_with("post /chunked http/1.1\r\n"), "{head}");
            assert!(
                head.contains("\r\ntransfer-encoding: chunked\r\n"),
                "{head}"
            );
            assert!(!head.contains("content-length"), "{head}");
            let (data, trailers) = up.chunked_body().await;
            assert_eq!(data.len(), body.len());
            assert!(data == body, "the chunked upload was altered");
            assert!(trailers.is_empty(), "trailers sent: {trailers:?}");
            up.send(created).await;
            up
        }
    );

    let full = Full::new(body.clone().into());
    let sized = request(Method::POST, "a.test", "/sized", full);
    let (response, ()) = tokio::join!(send(sluice.listener_addr("egress"), sized), async {
        let head = up.head().await;
        assert!(head.starts_with("post /sized http/1.1\r\n"), "{head}");
        let length = format!("\r\ncontent-length: {}\r\n", body.len());
        assert!(head.contains(&length), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        let got = up.take(body.len()).await;
        assert!(got == body, "the sized upload was altered");
        up.send(created).await;
    });
    assert_eq!(response.unwrap().status, 201);
    assert!(up.rx.is_empty(), "stray bytes: {:?}", up.text());
    origin.assert_no_new_connection();
}

/// An origin that writes a whole unsolicited response after its answer, in the same
/// write or later while the connection sits idle in the pool: that connection's
/// framing cannot be trusted, so it is closed, and the next request goes on a new
/// connection and gets its own answer, never the stale one.
async fn bytes_after_a_response(same_write: bool) {
    let (mut origin, sluice) = start("").await;
    let stale = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale";
    let (first, mut up) = tokio::join!(fetch(&sluice, "/one"), async {
        let mut up = origin.next().await;
        up.head().await;
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none".to_vec();
        if same_write {
            answer.extend_from_slice(stale);
        }
        up.send(&answer).await;
        up
    });
    assert_eq!(first.text(), "one");
    if !same_write {
        up.send(stale).await;
        // In sluice's kernel before the next request exists, so a check at checkout
        // can see it.
        up.wait_taken_by_sluice(false).await;
    }
    let closing = up.closed_by_sluice();
    tokio::join!(next_is_fresh(&sluice, &mut origin), closing);
    assert_eq!(connection_counts(&sluice).await, (2.0, 0.0));
}

#[tokio::test]
async fn bytes_glued_to_a_response_keep_its_connection_out_of_the_pool() {
    bytes_after_a_response(true).await;
}

#[tokio::test]
async fn bytes_sent_on_an_idle_connection_keep_it_from_being_reused() {
    bytes_after_a_response(false).await;
}

/// Nothing reads an idle pooled connection, but sluice's reaper probes them: one the
/// origin closes while it idles is closed and leaves the pool within a reaper round
/// (a quarter of the idle timeout), not at the idle timeout.
#[tokio::test]
async fn an_idle_connection_the_origin_closes_leaves_the_pool_before_its_idle_timeout() {
    let idle_timeout = Duration::from_secs(8);
    let pool = format!("    pool: {{idle_timeout: {}s}}", idle_timeout.as_secs());
    let (mut origin, sluice) = start_with("", &pool).await;
    let (first, up) = tokio::join!(fetch(&sluice, "/one"), async {
        let mut up = origin.next().await;
        up.head().await;
        up.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
            .await;
        up
    });
    assert_eq!(first.text(), "one");
    let idle = r#"sluice_upstream_idle_connections{backend="app"}"#;
    sluice.wait_for_metric(idle, |v| v == 1.0).await;
    let closed_at = Instant::now();
    drop(up);
    sluice.wait_for_metric(idle, |v| v == 0.0).await;
    let took = closed_at.elapsed();
    assert!(took < idle_timeout, "left the pool after {took:?}");
    next_is_fresh(&sluice, &mut origin).await;
}

/// An origin that answers at once and streams its response while it reads the upload
/// (an echo, upload progress) gets the whole upload, after its head reached the client;
/// the upload finished before the response did, so the connection is reused.
#[tokio::test]
async fn an_origin_that_answers_while_it_reads_gets_the_whole_upload() {
    let (mut origin, sluice) = start("").await;
    let piece = vec![b'u'; 1000];
    let pieces = 50;
    let mut c = client(&sluice).await;
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n",
        pieces * piece.len()
    );
    write(&mut c, head.as_bytes()).await;
    write(&mut c, &piece).await;
    let mut up = origin.next().await;
    assert!(up.head().await.starts_with("post /echo http/1.1\r\n"));
    up.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nstart\r\n")
        .await;
    // The client has the answer's head while most of its upload is still unsent.
    read_until(&mut c, "start").await;
    for _ in 1..pieces {
        write(&mut c, &piece).await;
    }
    let got = up.take(pieces * piece.len()).await;
    assert!(got.iter().all(|&b| b == b'u'));
    up.send(b"4\r\ndone\r\n0\r\n\r\n").await;
    read_until(&mut c, "done").await;
    let reused = async {
        let response = fetch(&sluice, "/again").await;
        assert_eq!(response.text(), "fresh");
    };
    let answered = async {
        assert!(up.head().await.starts_with("get /again http/1.1\r\n"));
        up.send(FRESH).await;
    };
    tokio::join!(reused, answered);
    origin.assert_no_new_connection();
}
