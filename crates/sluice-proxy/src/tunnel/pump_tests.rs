//! The pump over real socket pairs (Unix): bytes and ends pass both ways, the idle
//! timeout is reset by traffic, and the close signal ends it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

fn pump<'a>(
    idle: Duration,
    close: watch::Receiver<bool>,
    up: &'a Counter,
    down: &'a Counter,
) -> Pump<'a> {
    Pump {
        idle,
        close,
        up_bytes: up,
        down_bytes: down,
    }
}

#[tokio::test]
async fn bytes_and_each_sides_end_go_through_and_first_bytes_go_first() {
    let (mut client, mut client_end) = UnixStream::pair().unwrap();
    let (mut upstream_end, mut origin) = UnixStream::pair().unwrap();
    let (_tx, rx) = watch::channel(false);
    let (up, down) = (Counter::default(), Counter::default());
    let relay = run(
        &mut client_end,
        &mut upstream_end,
        b"early ".to_vec(),
        b"hello ".to_vec(),
        pump(Duration::from_secs(60), rx, &up, &down),
    );
    let peers = async {
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        origin.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"early ping");
        // The client's end came through, and the origin can still answer.
        origin.write_all(b"pong").await.unwrap();
        origin.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello pong");
    };
    let ((end, moved), ()) = tokio::join!(relay, peers);
    assert_eq!(end, End::Closed);
    assert_eq!((moved.up, moved.down), (4, 4));
    assert_eq!((up.get(), down.get()), (4, 4));
}

#[tokio::test(start_paused = true)]
async fn traffic_resets_the_idle_timeout_and_silence_ends_the_tunnel() {
    let (mut client, mut client_end) = UnixStream::pair().unwrap();
    let (mut upstream_end, mut origin) = UnixStream::pair().unwrap();
    let (_tx, rx) = watch::channel(false);
    let (up, down) = (Counter::default(), Counter::default());
    let idle = Duration::from_secs(10);
    let started = Instant::now();
    let relay = run(
        &mut client_end,
        &mut upstream_end,
        Vec::new(),
        Vec::new(),
        pump(idle, rx, &up, &down),
    );
    let peers = async {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            origin.read_exact(&mut b).await.unwrap();
        }
        Instant::now()
    };
    let ((end, moved), last) = tokio::join!(relay, peers);
    assert_eq!(end, End::Idle);
    assert_eq!(moved.up, 5);
    // 30 s of a byte every 6 s, then the 10 s of silence.
    assert!(last.duration_since(started) >= Duration::from_secs(30));
    assert!(Instant::now().duration_since(last) >= idle);
}

#[tokio::test]
async fn the_close_signal_ends_a_busy_or_quiet_tunnel() {
    let (_client, mut client_end) = UnixStream::pair().unwrap();
    let (mut upstream_end, _origin) = UnixStream::pair().unwrap();
    let (tx, rx) = watch::channel(false);
    let (up, down) = (Counter::default(), Counter::default());
    let relay = run(
        &mut client_end,
        &mut upstream_end,
        Vec::new(),
        Vec::new(),
        pump(Duration::from_secs(3600), rx, &up, &down),
    );
    let stop = async {
        tokio::task::yield_now().await;
        tx.send_replace(true);
    };
    let ((end, _), ()) = tokio::join!(relay, stop);
    assert_eq!(end, End::Shutdown);
}

#[tokio::test]
async fn a_side_that_cannot_take_bytes_fails_the_tunnel_and_is_named() {
    let (client, mut client_end) = UnixStream::pair().unwrap();
    let (mut upstream_end, _origin) = UnixStream::pair().unwrap();
    let (_tx, rx) = watch::channel(false);
    let (up, down) = (Counter::default(), Counter::default());
    // The origin's side is gone for writing once the client's bytes arrive.
    upstream_end.shutdown().await.unwrap();
    let relay = run(
        &mut client_end,
        &mut upstream_end,
        Vec::new(),
        Vec::new(),
        pump(Duration::from_secs(60), rx, &up, &down),
    );
    let peers = async {
        let mut client = client;
        client.write_all(b"data").await.unwrap();
        client
    };
    let ((end, _), _client) = tokio::join!(relay, peers);
    assert_eq!(end, End::Failed(Side::Upstream));
}
