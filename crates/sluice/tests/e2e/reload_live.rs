//! Live reload under traffic (issue 8, interface in `reload-spec.md`): a long stream and
//! keep-alive clients live through ten reloads; a removed backend finishes what it has
//! in flight, then answers 404 and stops its health checks; listeners are added and
//! removed while the unchanged one keeps its socket and never stops accepting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::reload_support;

use reload_support::{backend, changed, config, reload_expecting, tls_origin, EGRESS, SLUICE};
use sluice_testkit::{
    get, http::Method, http_body_util::Empty, request, send, spawn_download, Certs, Conn, Sluice,
};
use std::{
    io::ErrorKind,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};
use tokio::{net::TcpStream, sync::watch, time::Instant};

/// The stream: 150 chunks of 1 KiB, one every 200 ms: 30 s.
const STREAM_CHUNKS: u64 = 150;
const STREAM_BYTES: u64 = STREAM_CHUNKS * 1024;
const STREAM_PATH: &str = "/drip/150?size=1024&every=200";

/// A 30 s streaming response across 10 reloads (5 by `POST /reload`, 5 by SIGHUP), each
/// fired at the next tenth of the stream, arrives complete and byte-exact; three
/// keep-alive clients keep their connection (a `Conn` never reconnects, so a request
/// answered on it after each reload proves the same connection was kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30s_stream_and_keep_alive_clients_survive_ten_reloads() {
    let certs = Certs::new(&["127.0.0.1"]);
    let (a, b) = (tls_origin(&certs).await, tls_origin(&certs).await);
    let backends = [
        backend("a", &[&a], &certs, ""),
        backend("b", &[&b], &certs, ""),
    ];
    // Two configs that differ in one route, so every reload is `applied`.
    let variant = |other: &str| {
        config(
            "",
            &[EGRESS],
            &[
                r#"{host: "stream.test", backend: a}"#,
                &format!(r#"{{host: "other.test", backend: {other}}}"#),
            ],
            &backends,
        )
    };
    let sluice = Sluice::start(SLUICE, &variant("a")).await;
    let egress = sluice.listener_addr("egress");
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut conn = Conn::open(egress).await;
        assert_eq!(conn.get("stream.test", "/").await.status, 200);
        clients.push(conn);
    }

    let (stream, mut progress) = spawn_download(egress, "stream.test", STREAM_PATH);
    for reload in 1..=10u64 {
        let at = STREAM_BYTES * reload / 11;
        tokio::time::timeout(Duration::from_secs(30), progress.wait_for(|n| *n >= at))
            .await
            .unwrap_or_else(|_| panic!("the stream stalled before byte {at}"))
            .expect("the download task reports until it ends");
        sluice.write_config(&variant(if reload % 2 == 1 { "b" } else { "a" }));
        let generation = if reload % 2 == 0 {
            reload_expecting(&sluice, 200, "applied").await["generation"].clone()
        } else {
            let event = sluice.sighup_and_wait().await;
            assert_eq!(
                event["fields"]["message"], "config reload applied",
                "{event}"
            );
            event["fields"]["generation"].clone()
        };
        assert_eq!(generation, reload + 1, "reload {reload}");
        for (i, conn) in clients.iter_mut().enumerate() {
            let r = conn.get("stream.test", "/").await;
            assert_eq!(r.status, 200, "client {i} after reload {reload}");
            assert!(
                !conn.is_closed(),
                "client {i} lost its connection at reload {reload}"
            );
        }
        assert!(
            !stream.is_finished(),
            "the stream ended before reload {reload}"
        );
    }

    let download = stream.await.expect("download task");
    assert_eq!(download.status, 200);
    assert_eq!(download.error, None, "the stream was cut");
    assert_eq!(download.len, STREAM_BYTES, "every byte arrived");
    assert!(download.intact, "byte-exact");
    // 3 clients × (1 + 10 reloads) requests, and the stream once: nothing was re-sent.
    assert_eq!(
        a.requests(),
        3 * 11 + 1,
        "each request reached the origin once"
    );
    assert_eq!(sluice.reload_counts().await.applied, 10.0);
}

/// A backend removed by reload: the request it has in flight completes; new requests
/// for its route get 404 `no_route`; its idle connections close; its active health
/// checks stop (at most one already in flight when the reload landed), measured against
/// another backend's checks on the same 100 ms schedule; its metric series go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backend_finishes_in_flight_then_404s_and_stops_checking() {
    let certs = Certs::new(&["127.0.0.1"]);
    let (keep, gone) = (tls_origin(&certs).await, tls_origin(&certs).await);
    let checks = "health: {check: {path: /health, interval: 100ms, timeout: 1s, rise: 1, fall: 3}}";
    let keep_backend = backend("keep", &[&keep], &certs, checks);
    let before = config(
        "",
        &[EGRESS],
        &[
            r#"{host: "keep.test", backend: keep}"#,
            r#"{host: "gone.test", backend: gone}"#,
        ],
        &[
            keep_backend.clone(),
            backend("gone", &[&gone], &certs, checks),
        ],
    );
    let after = config(
        "",
        &[EGRESS],
        &[r#"{host: "keep.test", backend: keep}"#],
        &[keep_backend],
    );
    let sluice = Sluice::start(SLUICE, &before).await;
    let egress = sluice.listener_addr("egress");
    gone.wait_until(|s| s.health_checks >= 2).await;
    assert_eq!(get(egress, "gone.test", "/").await.status, 200);

    // A 2 s response in flight on the backend about to go.
    let (slow, mut progress) = spawn_download(egress, "gone.test", "/drip/10?size=1024&every=200");
    progress.wait_for(|n| *n > 0).await.expect("first chunk");
    assert_eq!(gone.in_flight(), 1);

    sluice.write_config(&after);
    let answer = reload_expecting(&sluice, 200, "applied").await;
    let gone_checks = gone.health_checks();
    assert_eq!(changed(&answer, "backends", "removed"), ["gone"]);
    assert_eq!(changed(&answer, "routes", "removed"), ["gone.test/"]);

    let r = get(egress, "gone.test", "/").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.header("sluice-error"), Some("no_route"));
    assert_eq!(get(egress, "keep.test", "/").await.status, 200);

    let download = slow.await.expect("in-flight download");
    assert_eq!(download.status, 200);
    assert_eq!(download.error, None, "the in-flight response was cut");
    assert_eq!((download.len, download.intact), (10 * 1024, true));

    // Ten more checks of `keep` (~1 s, ten intervals): `gone` got none meanwhile, but
    // for one that may have been on its way when the reload landed.
    let keep_checks = keep.health_checks();
    keep.wait_until(|s| s.health_checks >= keep_checks + 10)
        .await;
    assert!(
        gone.health_checks() <= gone_checks + 1,
        "the removed backend is still health-checked: {} checks after the reload, {gone_checks} before",
        gone.health_checks()
    );
    // Its connections (the one that carried the slow response included) are closed.
    gone.wait_until(|s| s.closed == s.accepted).await;
    assert!(gone.accepted() >= 1);
    // Its metric series are removed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sluice.metrics().await.contains(r#"backend="gone""#) {
        assert!(
            Instant::now() < deadline,
            "series of the removed backend are still on /metrics:\n{}",
            sluice.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fresh-connection GETs to `addr` in a loop until `stop`; `ok` counts the 200s, and
/// the task returns every failure (connect errors included).
fn client_loop(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<Vec<String>>, watch::Receiver<u64>) {
    let (ok_tx, ok) = watch::channel(0u64);
    let task = tokio::spawn(async move {
        let mut failures = Vec::new();
        while !stop.load(SeqCst) {
            let req = request(Method::GET, "app.test", "/", Empty::new());
            match send(addr, req).await {
                Ok(r) if r.status == 200 => {
                    ok_tx.send_modify(|n| *n += 1);
                }
                Ok(r) => failures.push(format!("{}: {}", r.status, r.text())),
                Err(e) => failures.push(e.to_string()),
            }
        }
        failures
    });
    (task, ok)
}

/// Waits until the client loop has `n` successes (bounded).
async fn wait_ok(ok: &mut watch::Receiver<u64>, n: u64) {
    tokio::time::timeout(Duration::from_secs(10), ok.wait_for(|v| *v >= n))
        .await
        .unwrap_or_else(|_| panic!("the client loop did not reach {n} successes"))
        .expect("client loop running");
}

/// Whether a TCP connection to `addr` is refused right now.
async fn refuses_connections(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect(addr).await, Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

/// A reload removes listener `old` (127.0.0.2) and adds `new` (127.0.0.3): the new one
/// binds and serves, the old one stops accepting, and `egress` (unchanged) keeps its
/// socket: same port, never re-bound (one `listening` line), a keep-alive connection
/// from before still works, and a client loop opening fresh connections all along sees
/// no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_added_and_removed_by_reload_leave_the_unchanged_one_untouched() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = tls_origin(&certs).await;
    let app = [backend("app", &[&origin], &certs, "")];
    let routes = [r#"{host: "*", backend: app}"#];
    let before = config(
        "",
        &[EGRESS, r#"{name: old, bind: "127.0.0.2:0"}"#],
        &routes,
        &app,
    );
    let after = config(
        "",
        &[EGRESS, r#"{name: new, bind: "127.0.0.3:0"}"#],
        &routes,
        &app,
    );
    let sluice = Sluice::start(SLUICE, &before).await;
    let egress = sluice.listener_addr("egress");
    let old = sluice.listener_addr("old");
    assert_eq!(get(old, "app.test", "/").await.status, 200);
    let mut kept = Conn::open(egress).await;
    assert_eq!(kept.get("app.test", "/").await.status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let (clients, mut ok) = client_loop(egress, stop.clone());
    wait_ok(&mut ok, 20).await;

    sluice.write_config(&after);
    let answer = reload_expecting(&sluice, 200, "applied").await;
    assert_eq!(changed(&answer, "listeners", "added"), ["new"]);
    assert_eq!(changed(&answer, "listeners", "removed"), ["old"]);
    assert!(
        changed(&answer, "listeners", "changed").is_empty(),
        "{answer}"
    );

    let new = sluice.wait_for_listener("new").await;
    assert_eq!(new.ip().to_string(), "127.0.0.3");
    assert_eq!(get(new, "app.test", "/").await.status, 200);

    let deadline = Instant::now() + Duration::from_secs(5);
    while !refuses_connections(old).await {
        assert!(
            Instant::now() < deadline,
            "the removed listener {old} still accepts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let after_reload = *ok.borrow();
    wait_ok(&mut ok, after_reload + 20).await;
    stop.store(true, SeqCst);
    let failures = clients.await.expect("client loop");
    assert!(
        failures.is_empty(),
        "fresh connections to the unchanged listener failed around the reload: {failures:?}"
    );

    let r = kept.get("app.test", "/").await;
    assert_eq!(
        r.status, 200,
        "the keep-alive connection from before the reload"
    );
    assert!(!kept.is_closed());
    assert_eq!(
        sluice.wait_for_listener("egress").await,
        egress,
        "same port"
    );
    assert_eq!(
        sluice.listening_count("egress"),
        1,
        "egress was never re-bound"
    );
}
