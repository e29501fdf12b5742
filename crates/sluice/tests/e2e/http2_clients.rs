//! HTTP/2 from clients under attack and under load: the known denial-of-service
//! patterns (rapid reset CVE-2023-44487, CONTINUATION flood, SETTINGS and PING floods)
//! each end or stall only the attacking connection, while another client is served and
//! sluice's memory stays bounded; `max_concurrent_streams` is advertised and enforced;
//! real clients (h2load, Python httpx) get HTTP/2 end to end.
//!
//! The floods are written by hand ([`sluice_testkit::h2_raw`]). Run with
//! `--nocapture` to see the figures each test measures (`figures:` lines).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::h2_raw::{self, code, hpack, kind, setting, End, H2Reader, H2Writer};
use sluice_testkit::{peak_rss_kib, rss_kib, Certs, H2Client, Origin, Sluice};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::process::Command;
use tokio::time::{timeout, Instant};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
/// How long sluice has to end an attacking connection, or to answer a normal client.
const WAIT: Duration = Duration::from_secs(15);
/// How much a flood may grow sluice's resident memory (peak over the before figure).
const RSS_BOUND_KIB: u64 = 50 * 1024;

fn config(origin: &Origin, listener_extra: &str) -> String {
    format!(
        r#"listeners:
  - name: h2c
    bind: 127.0.0.1:0
    http2: true
{listener_extra}admin: {{bind: 127.0.0.1:0}}
log: {{format: json}}
routes:
  - {{host: "*", backend: app}}
backends:
  - name: app
    servers: ["{}"]
"#,
        origin.server_spec()
    )
}

async fn start(listener_extra: &str) -> (Origin, Sluice, SocketAddr) {
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &config(&origin, listener_extra)).await;
    let addr = sluice.listener_addr("h2c");
    (origin, sluice, addr)
}

/// A well-behaved client on a fresh h2c connection gets 200 within [`WAIT`]; how long
/// it took.
async fn assert_served(addr: SocketAddr, when: &str) -> Duration {
    let t = Instant::now();
    let asking = async {
        let client = H2Client::connect(addr).await?;
        client.get("app.test", "/").await
    };
    let (status, body) = timeout(WAIT, asking)
        .await
        .unwrap_or_else(|_| panic!("{when}: no answer to a normal client within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{when}: a normal client failed: {e}"));
    assert_eq!(status, 200, "{when}: {}", String::from_utf8_lossy(&body));
    t.elapsed()
}

/// Resident memory before an attack, and the check after it (peak, not just now).
/// (pid, KiB before).
struct Memory(u32, u64);

impl Memory {
    fn before(sluice: &Sluice) -> Self {
        Memory(sluice.pid(), rss_kib(sluice.pid()))
    }

    fn assert_bounded(&self, what: &str) -> String {
        let (now, peak) = (rss_kib(self.0), peak_rss_kib(self.0));
        let figures = format!(
            "RSS before {} KiB, after {now} KiB, peak {peak} KiB",
            self.1
        );
        assert!(
            peak.saturating_sub(self.1) < RSS_BOUND_KIB,
            "{what}: sluice's memory grew past {RSS_BOUND_KIB} KiB: {figures}"
        );
        figures
    }
}

/// What a flood written on one connection got: bytes the socket took, how the
/// writing ended, how (and how soon after the first byte) sluice ended the connection.
struct Flood {
    taken: usize,
    writing: String,
    end: End,
    took: Duration,
    reader: H2Reader,
}

/// Writes `bytes` on a fresh h2c connection, `chunk` bytes a write, as fast as the
/// socket takes them, while another task reads what sluice sends back.
async fn flood(addr: SocketAddr, bytes: &[u8], chunk: usize) -> Flood {
    let (mut w, mut r) = h2_raw::connect(addr).await;
    let watcher = tokio::spawn(async move { (r.wait_end(WAIT * 2).await, r) });
    let started = Instant::now();
    let (mut taken, mut writing) = (0, "all written".to_string());
    let writes = async {
        for c in bytes.chunks(chunk) {
            if let Err(e) = w.send(c).await {
                writing = format!("write failed: {e}");
                return;
            }
            taken += c.len();
        }
    };
    if timeout(WAIT, writes).await.is_err() {
        writing = "stalled".to_string();
    }
    let ((end, at), reader) = watcher.await.unwrap();
    Flood {
        taken,
        writing,
        end,
        took: at - started,
        reader,
    }
}

impl Flood {
    /// sluice ended the connection: a GOAWAY with one of `codes`, or a close.
    fn assert_ended(&self, what: &str, codes: &[u32]) {
        let figures = format!("{} bytes taken, {}", self.taken, self.writing);
        assert_ne!(self.end, End::StillOpen, "{what}: still open ({figures})");
        if let End::GoAway(g) = &self.end {
            assert!(codes.contains(&g.code), "{what}: {g:?} ({figures})");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway_while_others_are_served_and_memory_stays_bounded() {
    let (origin, sluice, addr) = start("").await;
    assert_served(addr, "before the flood").await;
    let mem = Memory::before(&sluice);
    let requests_before = origin.requests();
    let head = hpack::get("app.test", "/");
    let mut bytes = Vec::new();
    for id in (1..20_000u32).step_by(2) {
        bytes.extend(h2_raw::headers(id, &head, true));
        bytes.extend(h2_raw::rst_stream(id, code::CANCEL));
    }
    let pair = bytes.len() / 10_000;
    let probe = tokio::spawn(async move { assert_served(addr, "during the flood").await });
    let f = flood(addr, &bytes, 100 * pair).await;
    f.assert_ended("rapid reset", &[code::ENHANCE_YOUR_CALM]);
    let during = probe.await.unwrap();
    let after = assert_served(addr, "after the flood").await;
    let memory = mem.assert_bounded("rapid reset");
    let reached = origin.requests().saturating_sub(requests_before + 2); // the probes
    let pairs = f.taken / pair;
    assert!(
        reached <= 200,
        "{reached} of {pairs} reset streams reached the origin"
    );
    let streams = sluice
        .metric(r#"sluice_client_h2_streams_total{listener="h2c"}"#)
        .await;
    eprintln!(
        "figures: rapid reset: {:?} after {:?}; {pairs} pairs taken, {}; response HEADERS \
         {}; streams sluice accepted {streams:?} (3 probes), reached the origin {reached}; \
         probe during {during:?}, after {after:?}; {memory}",
        f.end,
        f.took,
        f.writing,
        f.reader.count_of(kind::HEADERS),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_ends_the_connection_before_sluice_buffers_it() {
    let (origin, sluice, addr) = start("").await;
    assert_served(addr, "before the flood").await;
    let mem = Memory::before(&sluice);
    let requests_before = origin.requests();
    // 1 MiB+ of header fields either way: 70 frames of 16 fields of 1000 bytes, and
    // 10,000 tiny frames of one field each.
    for (frames, fields, value_len) in [(70, 16, 1000), (10_000, 1, 100)] {
        let mut block = Vec::new();
        for i in 0..fields {
            block.extend(hpack::literal(
                &format!("x-flood-{i}"),
                &vec![b'a'; value_len],
            ));
        }
        let mut bytes = h2_raw::headers_open(1, &hpack::get("app.test", "/"));
        for _ in 0..frames {
            bytes.extend(h2_raw::continuation(1, &block, false));
        }
        let what = format!("{frames} CONTINUATION frames of {} bytes", block.len());
        let f = flood(addr, &bytes, 16 * 1024).await;
        let codes = [
            code::ENHANCE_YOUR_CALM,
            code::COMPRESSION_ERROR,
            code::PROTOCOL_ERROR,
        ];
        f.assert_ended(&what, &codes);
        eprintln!(
            "figures: CONTINUATION flood, {what} ({} bytes): {:?} after {:?}; {} bytes \
             taken, {}",
            bytes.len(),
            f.end,
            f.took,
            f.taken,
            f.writing
        );
    }
    let after = assert_served(addr, "after the floods").await;
    let memory = mem.assert_bounded("CONTINUATION flood");
    let reached = origin.requests() - requests_before; // the probe only
    assert_eq!(reached, 1, "no flooded head reached the origin");
    eprintln!("figures: CONTINUATION flood: probe after {after:?}; {memory}");
}

type Conn = (H2Writer, H2Reader);

/// Floods `frame` (one SETTINGS or PING) up to `max` times without reading the ACKs;
/// how many the socket took, whether it stalled (back-pressure), and the connection
/// (kept open until the caller's checks are done).
async fn flood_unread(addr: SocketAddr, frame: &[u8], max: usize) -> (usize, String, Conn) {
    let (mut w, r) = h2_raw::connect(addr).await;
    let batch_len = 10_000;
    let batch = frame.repeat(batch_len);
    let mut sent = 0;
    while sent < max {
        match timeout(Duration::from_secs(3), w.send(&batch)).await {
            Ok(Ok(())) => sent += batch_len,
            Ok(Err(e)) => return (sent, format!("write failed: {e}"), (w, r)),
            Err(_) => return (sent, "stalled 3s (back-pressure)".to_string(), (w, r)),
        }
    }
    (sent, "all written".to_string(), (w, r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_ping_floods_stall_only_the_flooder() {
    let (_origin, sluice, addr) = start("").await;
    assert_served(addr, "before the floods").await;
    let settings = h2_raw::settings(&[(setting::HEADER_TABLE_SIZE, 4096)]);
    let floods = [
        ("SETTINGS", settings, kind::SETTINGS),
        ("PING", h2_raw::ping(*b"flooding"), kind::PING),
    ];
    for (name, frame, frame_kind) in floods {
        let mem = Memory::before(&sluice);
        let started = Instant::now();
        let (sent, how, (_w, mut r)) = flood_unread(addr, &frame, 1_000_000).await;
        let flood_time = started.elapsed();
        let served_in = assert_served(addr, &format!("during the {name} flood")).await;
        let memory = mem.assert_bounded(&format!("{name} flood"));
        // Now read what sluice did to the flooder: ACKs, GOAWAY, close, or nothing.
        let (end, _) = r.wait_end(Duration::from_secs(3)).await;
        eprintln!(
            "figures: {name} flood: {sent} frames taken in {flood_time:?} ({how}); \
             then {} {name} frames read back (ACKs), end {end:?}; probe answered in \
             {served_in:?}; {memory}",
            r.count_of(frame_kind)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_streams_is_advertised_and_extra_streams_are_refused() {
    let (origin, _sluice, addr) = start("    http2_settings: {max_concurrent_streams: 5}\n").await;
    let (mut w, mut r) = h2_raw::connect(addr).await;
    let settings = r.server_settings(WAIT).await;
    assert!(
        settings.contains(&(setting::MAX_CONCURRENT_STREAMS, 5)),
        "server SETTINGS {settings:?}"
    );
    // A client that ignores the limit: ten streams at once.
    let (mut out, head) = (h2_raw::settings_ack(), hpack::get("app.test", "/delay/300"));
    for id in (1..20).step_by(2) {
        out.extend(h2_raw::headers(id, &head, true));
    }
    w.send(&out).await.unwrap();
    let (mut refused, mut ok, mut done) = (Vec::new(), 0, std::collections::HashSet::new());
    let reading = async {
        while done.len() < 10 {
            let f = r.next().await.unwrap().expect("the connection closed");
            match f.kind {
                kind::RST_STREAM => {
                    refused.push(f.error_code());
                    done.insert(f.stream);
                }
                kind::HEADERS if f.status() == Some(200) => ok += 1,
                kind::GOAWAY => panic!("GOAWAY {:?}", f.goaway()),
                _ => {}
            }
            if f.stream != 0 && f.flags & h2_raw::flag::END_STREAM != 0 {
                done.insert(f.stream);
            }
        }
    };
    timeout(WAIT, reading)
        .await
        .expect("all ten streams answered");
    assert_eq!(refused, [Some(code::REFUSED_STREAM); 5], "RST_STREAM codes");
    assert_eq!(ok, 5, "answered with 200");
    let max = origin.max_in_flight();
    assert!(max <= 5, "the origin saw {max} in flight");
    assert_eq!(origin.requests(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_within_the_limit_gets_all_ten_five_at_a_time() {
    let (origin, _sluice, addr) = start("    http2_settings: {max_concurrent_streams: 5}\n").await;
    let client = H2Client::connect(addr).await.unwrap();
    // One answer first: the server's SETTINGS (with the limit) came before it.
    assert_eq!(client.get("app.test", "/").await.unwrap().0, 200);
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get("app.test", "/delay/300").await })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap().unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let max = origin.max_in_flight();
    assert!(max <= 5, "the origin saw {max} in flight");
    assert_eq!(origin.requests(), 11);
    eprintln!(
        "figures: ten on five streams: max in flight {max}, {:?}",
        started.elapsed()
    );
}

/// Runs a client to its end (bounded); its stdout, after asserting it succeeded.
async fn run(program: &str, args: &[&str]) -> String {
    let wait = Duration::from_secs(120);
    let out = timeout(wait, Command::new(program).args(args).output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within {wait:?}"))
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test-deps.sh installs it)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{program}: {}\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_gets_two_thousand_2xx_over_h2c() {
    let (origin, _sluice, addr) = start("").await;
    let url = format!("http://{addr}/");
    let out = run("h2load", &["-n", "2000", "-c", "4", "-m", "10", &url]).await;
    assert!(
        out.contains("status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx"),
        "h2load:\n{out}"
    );
    assert!(out.contains("Application protocol: h2c"), "h2load:\n{out}");
    assert_eq!(origin.requests(), 2000);
    let summary = out.lines().find(|l| l.starts_with("finished in"));
    eprintln!("figures: h2load: {summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_httpx_speaks_http2_to_a_tls_listener() {
    let certs = Certs::new(&["h2.test"]);
    let (cert, key) = certs.write_leaf("h2");
    let tls = format!(
        "    tls:\n      certificates:\n        - {{cert_file: \"{}\", key_file: \"{}\"}}\n",
        cert.display(),
        key.display()
    );
    let (_origin, _sluice, addr) = start(&tls).await;
    // httpx has no --resolve: h2.test is mapped to the listener's address in the
    // resolver, so SNI, certificate check and :authority all name h2.test.
    let script = "import socket, sys, httpx\n\
        real = socket.getaddrinfo\n\
        socket.getaddrinfo = lambda host, *a, **k: real('127.0.0.1' if host == 'h2.test' else host, *a, **k)\n\
        with httpx.Client(http2=True, verify=sys.argv[1], timeout=10) as c:\n\
        \x20   r = c.get('https://h2.test:' + sys.argv[2] + '/py')\n\
        print(r.http_version, r.status_code, r.headers.get('x-origin-path'))";
    let (ca, port) = (certs.ca_file(), addr.port().to_string());
    let args = ["-c", script, ca.to_str().unwrap(), &port];
    let out = run("/usr/bin/python3", &args).await;
    assert_eq!(out.trim(), "HTTP/2 200 /py");
}

/// A client that stops reading a response (its flow-control window stays shut) holds
/// the stream, the upstream exchange and a slot: after `send_timeout` the connection
/// is closed, as an HTTP/1.1 client's would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_at_send_timeout() {
    let (_origin, sluice, addr) = start("    send_timeout: 500ms\n").await;
    // Waiting on a slow origin is not the client's fault: not cut.
    let client = H2Client::connect(addr).await.unwrap();
    let (status, _) = client.get("app.test", "/delay/1500").await.unwrap();
    assert_eq!(status, 200);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
    let ended = tokio::spawn(conn);
    let req = http::Request::get("http://app.test/bytes/20000000")
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    let resp = timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    // The body is never read: its window (64 KiB) fills and nothing more can come.
    let _unread = resp.into_body();
    let started = Instant::now();
    let closed = timeout(WAIT, ended).await;
    assert!(
        closed.is_ok(),
        "the connection outlived send_timeout by {WAIT:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "cut before send_timeout: {took:?}"
    );
    println!("figures: a non-reading h2 client was cut after {took:?}");
    sluice
        .wait_for_metric(
            r#"sluice_client_errors_total{listener="h2c",cause="send_timeout"}"#,
            |v| v >= 1.0,
        )
        .await;
    assert_served(addr, "after the cut").await;
}
