//! [`FaultOrigin`] against plain tokio sockets: each fault does what it says, and each
//! way a peer lets go is counted (or, where documented, not).

use super::{Fault, FaultOrigin};
use crate::{
    body::{generated_bytes, PatternCheck},
    wait,
};
use std::{io, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::timeout,
};

const GET: &[u8] = b"GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n";
/// The one deliberate wait for nothing: long enough for loopback to deliver anything in
/// flight many times over.
const QUIET: Duration = Duration::from_millis(200);

async fn connect(origin: &FaultOrigin) -> TcpStream {
    TcpStream::connect(origin.addr()).await.expect("connect")
}

/// Reads until EOF or an error; returns the bytes and how it ended.
async fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    };
    let end = timeout(wait::DEFAULT_WAIT, read)
        .await
        .expect("the origin neither closed nor reset");
    (received, end)
}

/// A client whose small send buffer fills fast, so its writes to a non-reading origin
/// block after little data.
async fn small_sndbuf_client(origin: &FaultOrigin) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_send_buffer_size(16 * 1024).expect("SO_SNDBUF");
    socket.connect(origin.addr()).await.expect("connect")
}

#[tokio::test]
async fn no_response_counts_heads_and_sees_the_client_close() {
    let origin = FaultOrigin::start(Fault::NoResponse).await;
    assert_eq!(
        origin.server_spec(),
        format!("127.0.0.1:{}", origin.addr().port())
    );

    let mut client = connect(&origin).await;
    // A request body after the head is read and dropped, not taken for a head.
    client.write_all(GET).await.expect("write head");
    client.write_all(b"trailing bytes").await.expect("write");
    origin.wait_until(|s| s.heads == 1).await;
    assert_eq!(origin.heads(), [String::from_utf8_lossy(GET)]);

    let mut partial = connect(&origin).await;
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    drop(partial);
    origin.wait_until(|s| s.closed == 1).await;
    assert_eq!(origin.stats().heads, 1, "an unfinished head is not a head");

    drop(client);
    origin.wait_until(|s| s.closed == 2).await;
    let stats = origin.stats();
    assert_eq!((stats.accepted, stats.open, stats.resets_seen), (2, 0, 0));
}

#[tokio::test]
async fn no_response_counts_a_client_reset() {
    let origin = FaultOrigin::start(Fault::NoResponse).await;
    let mut client = connect(&origin).await;
    client.write_all(GET).await.expect("write head");
    origin.wait_until(|s| s.heads == 1).await;
    client.set_zero_linger().expect("SO_LINGER 0");
    drop(client);
    origin
        .wait_until(|s| s.resets_seen == 1 && s.closed == 1)
        .await;
}

#[tokio::test]
async fn stall_after_delivers_exactly_its_bytes_then_nothing() {
    let origin = FaultOrigin::start(Fault::stall_body(1000, 300)).await;
    let mut client = connect(&origin).await;
    client.write_all(GET).await.expect("write head");

    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    let mut received = vec![0u8; head.len() + 300];
    timeout(wait::DEFAULT_WAIT, client.read_exact(&mut received))
        .await
        .expect("head and body within the wait")
        .expect("read");
    assert_eq!(&received[..head.len()], head);
    let mut check = PatternCheck::new();
    check.update(&received[head.len()..]);
    assert!(check.intact());

    let mut more = [0u8; 1];
    let after = timeout(QUIET, client.read(&mut more)).await;
    assert!(
        after.is_err(),
        "after its body the origin must send nothing and hold the connection: {after:?}"
    );
    assert_eq!(origin.stats().open, 1);

    drop(client);
    origin.wait_until(|s| s.closed == 1).await;
    assert_eq!(origin.stats().resets_seen, 0);
}

#[tokio::test]
async fn reset_after_sends_its_bytes_then_a_reset_not_a_fin() {
    let origin = FaultOrigin::start(Fault::reset_body(1000, 300)).await;
    let mut client = connect(&origin).await;
    client.write_all(GET).await.expect("write head");
    let (received, end) = read_to_end(&mut client).await;
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    assert_eq!(received.len(), head.len() + 300);
    assert_eq!(&received[..head.len()], head);
    let error = end.expect_err("a reset, not a clean EOF");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    origin.wait_until(|s| s.closed == 1).await;
    assert_eq!(origin.stats().resets_seen, 0, "the reset was ours");
}

#[tokio::test]
async fn reset_after_a_large_body_waits_until_all_of_it_arrived() {
    // Far more than socket buffers take at once: without waiting for the peer's
    // acknowledgements, the reset would discard the unsent tail.
    const BODY: usize = 8 * 1024 * 1024;
    let origin = FaultOrigin::start(Fault::reset_body(2 * BODY as u64, BODY)).await;
    let mut client = connect(&origin).await;
    client.write_all(GET).await.expect("write head");
    let (received, end) = read_to_end(&mut client).await;
    let head_len = received.len() - BODY.min(received.len());
    let mut check = PatternCheck::new();
    check.update(&received[head_len..]);
    assert_eq!(check.len(), BODY as u64);
    assert!(check.intact());
    assert_eq!(
        end.expect_err("reset").kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn reset_chunked_sends_one_chunk_then_resets() {
    let origin = FaultOrigin::start(Fault::reset_chunked(100)).await;
    let mut client = connect(&origin).await;
    client.write_all(GET).await.expect("write head");
    let (received, end) = read_to_end(&mut client).await;
    let mut expected = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n".to_vec();
    expected.extend_from_slice(&generated_bytes(100));
    expected.extend_from_slice(b"\r\n");
    assert_eq!(received, expected);
    assert_eq!(
        end.expect_err("reset").kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn never_read_blocks_writers_and_sees_resets_but_not_a_fin_stuck_behind_data() {
    let origin = FaultOrigin::start(Fault::NeverRead).await;
    let mut reset = small_sndbuf_client(&origin).await;
    let mut fin = small_sndbuf_client(&origin).await;
    origin.wait_until(|s| s.accepted == 2).await;

    let lots = vec![0u8; 1024 * 1024];
    let (a, b) = tokio::join!(
        timeout(QUIET, reset.write_all(&lots)),
        timeout(QUIET, fin.write_all(&lots)),
    );
    assert!(
        a.is_err() && b.is_err(),
        "writes to a non-reading origin must block: {a:?} {b:?}"
    );

    // `fin` closes first, with most of its megabyte unsent: its FIN waits behind it.
    drop(fin);
    reset.set_zero_linger().expect("SO_LINGER 0");
    drop(reset);
    origin
        .wait_until(|s| s.resets_seen == 1 && s.closed == 1)
        .await;

    // A FIN with nothing ahead of it does get through, and by now the stuck one would
    // have too, were it coming.
    drop(connect(&origin).await);
    origin.wait_until(|s| s.closed == 2).await;
    let stats = origin.stats();
    assert_eq!(
        (stats.accepted, stats.open, stats.heads),
        (3, 1, 0),
        "{stats:?}"
    );
    assert!(origin.heads().is_empty());
}

#[tokio::test]
async fn dropping_the_origin_drops_its_connections() {
    let origin = FaultOrigin::start(Fault::NoResponse).await;
    let mut client = connect(&origin).await;
    client.write_all(GET).await.expect("write head");
    origin.wait_until(|s| s.heads == 1).await;
    drop(origin);
    let (received, end) = read_to_end(&mut client).await;
    assert!(received.is_empty());
    end.expect("a clean close");
}
