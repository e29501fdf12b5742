//! Graceful shutdown: on SIGTERM sluice stops accepting, reports not-ready, lets
//! in-flight requests finish (for at most `shutdown.drain_timeout`) and exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{
    get,
    http::{Method, StatusCode},
    http_body_util::Empty,
    request, send, Conn, Origin, Sluice,
};
use std::{
    io::{ErrorKind, Write},
    net::SocketAddr,
    time::Duration,
};
use tokio::{io::AsyncReadExt, net::TcpStream, time::Instant};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// How long a condition polled over the network may take to come true.
const POLL_WAIT: Duration = Duration::from_secs(5);

/// Sluice with an admin listener and one listener forwarding every host to `origin`.
/// (Its SIGTERM handler is installed before the listeners are bound, so once
/// `Sluice::start` returns a SIGTERM always means a drain.)
async fn sluice_for(origin: &Origin, shutdown: &str) -> Sluice {
    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
shutdown: {{{shutdown}}}
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

/// Whether a TCP connection to `addr` is refused right now. (While the listening
/// socket is being closed, a connect may also be reset; that is not yet "refused".)
async fn refuses_connections(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect(addr).await, Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

/// Polls `/readyz` until it answers `status`; panics if it does not within [`POLL_WAIT`].
async fn wait_for_readyz(admin: SocketAddr, status: StatusCode) {
    let deadline = Instant::now() + POLL_WAIT;
    loop {
        let answer = send(
            admin,
            request(Method::GET, "admin", "/readyz", Empty::new()),
        )
        .await
        .map(|r| r.status);
        if matches!(answer, Ok(s) if s == status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {answer:?} after {POLL_WAIT:?}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGTERM while a request is in flight: sluice turns not-ready and stops accepting new
/// connections at once, but the in-flight request still completes with its 200; then
/// sluice exits 0 and the port is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let origin = Origin::start().await;
    let mut sluice = sluice_for(&origin, "drain_timeout: 30s").await;
    let egress = sluice.listener_addr("egress");
    let admin = sluice.admin_addr();
    // Ready once started (the admin listener may answer a moment before).
    wait_for_readyz(admin, StatusCode::OK).await;

    let in_flight = tokio::spawn(async move { get(egress, "app.test", "/delay/1000").await });
    origin.wait_until(|s| s.in_flight == 1).await;

    sluice.terminate();
    wait_for_readyz(admin, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        origin.in_flight() == 1 && !in_flight.is_finished(),
        "the request should still be in flight while draining"
    );

    let response = in_flight.await.expect("client task");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello from origin");
    assert_eq!(
        response.header("connection"),
        Some("close"),
        "a response finished during the drain tells the client the connection closes"
    );

    let status = sluice.wait_exit().await;
    assert!(status.success(), "sluice exited with {status}");
    assert!(
        refuses_connections(egress).await,
        "the listener still accepts after exit"
    );
}

/// An idle keep-alive client connection is not in flight: it is closed at once on
/// SIGTERM and does not hold up the exit for the whole `drain_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_clients_do_not_delay_shutdown() {
    let origin = Origin::start().await;
    let mut sluice = sluice_for(&origin, "drain_timeout: 30s").await;
    let mut client = Conn::open(sluice.listener_addr("egress")).await;
    assert_eq!(client.get("app.test", "/").await.status, 200);
    assert!(!client.is_closed());

    sluice.terminate();
    assert!(
        client.closed_within(POLL_WAIT).await,
        "the idle client connection stayed open after SIGTERM"
    );
    let status = sluice.wait_exit_within(POLL_WAIT).await;
    assert!(status.success(), "sluice exited with {status}");
}

/// A new client arriving during the drain is turned away at the TCP level (the
/// listening socket is closed), not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_new_connections_while_draining() {
    let origin = Origin::start().await;
    let mut sluice = sluice_for(&origin, "drain_timeout: 30s").await;
    let egress = sluice.listener_addr("egress");

    let in_flight = tokio::spawn(async move { get(egress, "app.test", "/delay/1000").await });
    origin.wait_until(|s| s.in_flight == 1).await;
    sluice.terminate();

    let deadline = Instant::now() + POLL_WAIT;
    while !refuses_connections(egress).await {
        assert!(
            Instant::now() < deadline,
            "the listener still accepts {POLL_WAIT:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !in_flight.is_finished(),
        "the listener should close before the drain ends"
    );
    assert_eq!(in_flight.await.expect("client task").status, 200);
    assert!(sluice.wait_exit().await.success());
}

/// `shutdown.drain_timeout` bounds the drain: a request that would take 5 s does not
/// hold up the exit, which comes (with status 0) shortly after the 300 ms timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_how_long_shutdown_waits() {
    let origin = Origin::start().await;
    let mut sluice = sluice_for(&origin, "drain_timeout: 300ms").await;
    let egress = sluice.listener_addr("egress");

    let in_flight = tokio::spawn(async move {
        send(
            egress,
            request(Method::GET, "app.test", "/delay/5000", Empty::new()),
        )
        .await
    });
    origin.wait_until(|s| s.in_flight == 1).await;

    let signalled = Instant::now();
    sluice.terminate();
    let status = sluice.wait_exit_within(Duration::from_secs(3)).await;
    let took = signalled.elapsed();
    assert!(status.success(), "sluice exited with {status}");
    assert!(
        took < Duration::from_secs(2),
        "exit took {took:?} with a 300ms drain timeout"
    );

    // The cut-off request did not get its response.
    let outcome = in_flight.await.expect("client task");
    assert!(
        outcome.is_err(),
        "the request outlived the drain timeout: {outcome:?}"
    );
}

/// A SIGTERM that arrives once sluice is bound and reachable, but still starting up, is
/// a graceful shutdown too: exit status 0 and the Unix socket file removed, never a
/// death by the signal's default action.
///
/// To hit that moment deterministically, sluice's stderr is a pipe the test has filled:
/// its first log line (`listening`, written right after the bind) blocks until the test
/// reads the pipe, so the signal is sent while sluice is certainly between binding and
/// its `sluice started` line. (This is why the test spawns the binary itself instead of
/// using `Sluice::start`, which needs to read stderr to know the listeners are bound.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_the_listeners_are_bound_still_drains_and_exits_zero() {
    let origin = Origin::start().await;
    let dir = sluice_testkit::scratch_dir();
    let socket = dir.path().join("egress.sock");
    let config = dir.path().join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
log: {{format: json}}
listeners: [{{name: egress, bind: "unix:{}"}}]
routes: [{{host: "*", backend: app}}]
backends: [{{name: app, servers: ["{}"]}}]
"#,
            socket.display(),
            origin.server_spec()
        ),
    )
    .unwrap();

    // A full pipe as stderr: sluice's first log write blocks until we read.
    let (stderr_tx, mut stderr_rx) = tokio::net::unix::pipe::pipe().unwrap();
    let mut fill = std::fs::File::from(stderr_tx.into_nonblocking_fd().unwrap());
    for chunk in [&[b'#'; 4096][..], b"#"] {
        while fill.write(chunk).is_ok() {}
    }
    // Back to blocking mode for sluice (tokio clears O_NONBLOCK on the way out).
    let stderr_tx = tokio::net::unix::pipe::Sender::from_file(fill).unwrap();
    let mut sluice = KillOnDrop(
        std::process::Command::new(SLUICE)
            .args(["run", "--config"])
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::from(
                stderr_tx.into_blocking_fd().unwrap(),
            ))
            .spawn()
            .unwrap(),
    );

    // Bound and listening: connections succeed (nobody accepts them yet).
    let deadline = Instant::now() + POLL_WAIT;
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(
            Instant::now() < deadline && sluice.exit_status().is_none(),
            "sluice did not bind {} within {POLL_WAIT:?}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &sluice.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Let sluice write its logs again, and keep reading them until it exits.
    let logs = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr_rx.read_to_end(&mut all).await;
        String::from_utf8_lossy(&all)
            .trim_start_matches('#')
            .to_owned()
    });

    let deadline = Instant::now() + POLL_WAIT;
    let status = loop {
        if let Some(status) = sluice.exit_status() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sluice still running {POLL_WAIT:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let logs = logs.await.unwrap();
    assert!(
        status.success(),
        "SIGTERM during startup: sluice exited with {status}\n{logs}"
    );
    assert!(
        !socket.exists(),
        "the socket file was left behind: {}",
        socket.display()
    );
}

/// A child process that is killed (and reaped) if the test ends while it still runs.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().expect("poll sluice status")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// With several listeners, SIGTERM tells every listener's connections to finish at
/// once: an idle keep-alive client on the second listener is closed right away, not
/// only after a slow request on the first listener has drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_clients_of_every_listener_at_once() {
    let origin = Origin::start().await;
    let yaml = format!(
        r#"
log: {{format: json}}
shutdown: {{drain_timeout: 30s}}
listeners:
  - {{name: one, bind: "127.0.0.1:0"}}
  - {{name: two, bind: "127.0.0.1:0"}}
routes: [{{host: "*", backend: app}}]
backends:
  - name: app
    servers: ["{}"]
"#,
        origin.server_spec()
    );
    let mut sluice = Sluice::start(SLUICE, &yaml).await;
    let mut idle = Conn::open(sluice.listener_addr("two")).await;
    assert_eq!(idle.get("app.test", "/").await.status, 200);

    let one = sluice.listener_addr("one");
    let slow = tokio::spawn(async move { get(one, "app.test", "/delay/3000").await });
    origin.wait_until(|s| s.in_flight == 1).await;
    sluice.terminate();

    assert!(
        idle.closed_within(Duration::from_millis(1500)).await,
        "the idle client on listener two must be closed while listener one still drains"
    );
    assert_eq!(
        slow.await.unwrap().status,
        200,
        "the slow request still finishes"
    );
    assert!(sluice.wait_exit().await.success());
}
