//! HTTP/1.1 Upgrade through sluice (issue 10, item 1): a WebSocket (tokio-tungstenite
//! client, echo origin behind hyper) becomes a byte tunnel after the origin's `101`;
//! any other answer is an ordinary response; `timeouts.tunnel` closes an idle one and
//! traffic resets it; the backend's `maxconn` caps tunnels; a reload leaves them
//! alone, and shutdown closes them when the drain time is over.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, Certs, RawConn, Sluice, WsClient, WsOrigin};
use std::time::Duration;
use tokio::time::Instant;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn open_series(route: &str, backend: &str) -> String {
    format!(r#"sluice_tunnels_open{{route="{route}",backend="{backend}"}}"#)
}

fn closed_series(route: &str, backend: &str, reason: &str) -> String {
    format!(
        r#"sluice_tunnels_closed_total{{route="{route}",backend="{backend}",reason="{reason}"}}"#
    )
}

fn bytes_series(route: &str, backend: &str, direction: &str) -> String {
    format!(
        r#"sluice_tunnel_bytes_total{{route="{route}",backend="{backend}",direction="{direction}"}}"#
    )
}

#[tokio::test]
async fn a_websocket_echoes_both_ways_and_its_tunnel_is_counted() {
    let origin = WsOrigin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let addr = sluice.listener_addr("egress");

    let mut ws = WsClient::connect(addr, "chat.test", "/socket").await;
    for i in 0..3 {
        ws.echo(&format!("message {i}")).await;
    }
    // The origin got the switch with its headers, as a proxied request.
    let heads = origin.heads();
    let (path, h) = &heads[0];
    assert_eq!(path, "/socket");
    assert_eq!(h["upgrade"], "websocket");
    assert!(h["connection"]
        .to_str()
        .unwrap()
        .eq_ignore_ascii_case("upgrade"));
    assert!(h.contains_key("sec-websocket-key"));
    assert_eq!(h["host"], "chat.test");
    assert!(h.contains_key("x-forwarded-for"), "{h:?}");
    sluice
        .wait_for_metric(&open_series("*/", "app"), |v| v == 1.0)
        .await;

    ws.close().await;
    origin.wait_until(|c| c.closed == 1).await;
    sluice
        .wait_for_metric(&closed_series("*/", "app", "closed"), |v| v == 1.0)
        .await;
    sluice
        .wait_for_metric(&open_series("*/", "app"), |v| v == 0.0)
        .await;
    // Three text frames of 9 bytes each way plus the close frames: masked client
    // frames are 6 header bytes, the origin's 2.
    let up = sluice
        .metric(&bytes_series("*/", "app", "upstream"))
        .await
        .unwrap();
    let down = sluice
        .metric(&bytes_series("*/", "app", "downstream"))
        .await
        .unwrap();
    assert!(up >= 3.0 * 15.0, "upstream bytes {up}");
    assert!(down >= 3.0 * 11.0, "downstream bytes {down}");
    let log = sluice.wait_for_access_log(1).await;
    assert_eq!(log[0]["fields"]["status"], 101, "{}", log[0]);
    sluice
        .wait_for_stderr(|l| l.contains("tunnel closed") && l.contains("\"reason\":\"closed\""))
        .await;
}

/// An upgrade the origin refuses is an ordinary response, and the connection goes
/// on with HTTP/1.1; `Upgrade: h2c` is never passed on.
#[tokio::test]
async fn a_refused_upgrade_is_an_ordinary_response_and_h2c_is_not_forwarded() {
    let origin = WsOrigin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let mut c = RawConn::connect(sluice.listener_addr("egress")).await;
    c.send(
        b"GET /deny HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    let head = c.read_until("no websockets here").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    c.send(
        b"GET /after HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    let rest = c.read_until("plain").await;
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
    let heads = origin.heads();
    assert_eq!(heads.len(), 2);
    let (_, h2c) = &heads[1];
    assert!(!h2c.contains_key("upgrade"), "{h2c:?}");
    assert!(!h2c.contains_key("http2-settings"), "{h2c:?}");
    // One upstream connection served both: the refused upgrade did not tunnel.
    assert_eq!(origin.counts().accepted, 1);
    assert_eq!(origin.counts().open, 0);
}

/// `timeouts.tunnel` is an idle timeout: a tunnel with a message every 150 ms
/// outlives it several times over; once quiet, it is closed.
#[tokio::test]
async fn an_idle_tunnel_times_out_and_traffic_keeps_it_open() {
    let origin = WsOrigin::start().await;
    let idle = Duration::from_millis(600);
    let yaml = app_config(&[origin.server_spec()], "    timeouts: {tunnel: 600ms}");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let mut ws = WsClient::connect(sluice.listener_addr("egress"), "chat.test", "/").await;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(150));
    let mut n = 0;
    while start.elapsed() < idle * 3 {
        tick.tick().await;
        ws.echo(&format!("keep {n}")).await;
        n += 1;
    }
    let quiet_since = Instant::now();
    ws.wait_closed(Duration::from_secs(10)).await;
    let quiet = quiet_since.elapsed();
    assert!(
        quiet >= idle,
        "closed after {quiet:?} of silence (timeout {idle:?})"
    );
    sluice
        .wait_for_metric(&closed_series("*/", "app", "idle_timeout"), |v| v == 1.0)
        .await;
    origin.wait_until(|c| c.closed == 1 && c.open == 0).await;
}

/// Seed 004: WebSockets on their own backend by path, with their own `maxconn`. A
/// tunnel holds its slot for its whole life: with two open, a third waits in the
/// queue and gets 503 when it times out, while plain requests on the other backend
/// go on; once one tunnel closes, the next upgrade gets its slot.
#[tokio::test]
async fn a_backends_maxconn_caps_its_open_tunnels() {
    let origin = WsOrigin::start().await;
    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes:
  - {{host: "*", path_prefix: /websockets, backend: ws}}
  - {{host: "*", backend: app}}
backends:
  - name: ws
    servers: ["{s}"]
    limits: {{maxconn_per_server: 2}}
    timeouts: {{queue: 300ms}}
  - name: app
    servers: ["{s}"]
"#,
        s = origin.server_spec()
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("egress");
    let mut a = WsClient::connect(addr, "chat.test", "/websockets/a").await;
    let b = WsClient::connect(addr, "chat.test", "/websockets/b").await;
    let refused = WsClient::try_connect(addr, "chat.test", "/websockets/c").await;
    assert_eq!(refused.err().as_deref(), Some("status 503"));
    let plain = sluice_testkit::get(addr, "chat.test", "/other").await;
    assert_eq!(plain.status, 200);
    assert_eq!(origin.counts().open, 2);
    a.echo("still here").await;
    b.close().await;
    sluice
        .wait_for_metric(&open_series("*/websockets", "ws"), |v| v == 1.0)
        .await;
    let mut c = WsClient::connect(addr, "chat.test", "/websockets/c").await;
    c.echo("third").await;
    let log = sluice.access_log();
    assert!(
        log.iter().any(|e| e["fields"]["status"] == 503),
        "no 503 in {log:?}"
    );
}

/// Tunnels belong to no config generation: reloads that re-route and even remove
/// their backend leave an open WebSocket working.
#[tokio::test]
async fn a_reload_does_not_cut_an_open_tunnel() {
    let origin = WsOrigin::start().await;
    let other = WsOrigin::start().await;
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], "")).await;
    let addr = sluice.listener_addr("egress");
    let mut ws = WsClient::connect(addr, "chat.test", "/").await;
    ws.echo("before").await;

    // The route now goes to another backend; `app` is gone from the config.
    let yaml = app_config(&[other.server_spec()], "").replace("name: app", "name: moved");
    let yaml = yaml.replace("backend: app", "backend: moved");
    sluice.write_config(&yaml);
    let outcome = sluice.sighup_and_wait().await;
    assert_eq!(
        outcome["fields"]["message"], "config reload applied",
        "{outcome}"
    );
    ws.echo("after").await;
    // New tunnels go to the new backend.
    let mut fresh = WsClient::connect(addr, "chat.test", "/").await;
    fresh.echo("new").await;
    assert_eq!(other.counts().open, 1);
    assert_eq!(origin.counts().open, 1);
    ws.echo("still").await;
}

/// On SIGTERM a tunnel keeps working through the drain; when `drain_timeout` ends it
/// is closed (the client sees the end), and sluice exits.
#[tokio::test]
async fn shutdown_closes_tunnels_when_the_drain_time_is_over() {
    let origin = WsOrigin::start().await;
    let yaml = format!(
        "shutdown: {{drain_timeout: 700ms}}\n{}",
        app_config(&[origin.server_spec()], "")
    );
    let mut sluice = Sluice::start(SLUICE, &yaml).await;
    let mut ws = WsClient::connect(sluice.listener_addr("egress"), "chat.test", "/").await;
    ws.echo("before").await;
    let asked = Instant::now();
    sluice.terminate();
    sluice
        .wait_for_stderr(|l| l.contains("shutting down"))
        .await;
    ws.echo("during the drain").await;
    ws.wait_closed(Duration::from_secs(10)).await;
    assert!(
        asked.elapsed() >= Duration::from_millis(700),
        "closed {:?} after SIGTERM, before the drain time",
        asked.elapsed()
    );
    let status = sluice.wait_exit_within(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    origin.wait_until(|c| c.open == 0).await;
}

/// To an origin that would pick HTTP/2 (ALPN `h2`) for a backend on `protocol: auto`,
/// a tunnel's connection offers only `http/1.1`: an upgrade needs HTTP/1.1.
#[tokio::test]
async fn a_tunnel_over_tls_speaks_http_1_1_to_an_origin_that_offers_h2() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = WsOrigin::start_tls(&certs).await;
    let backend = format!(
        "    protocol: auto\n    tls: {{ca_file: \"{}\"}}",
        certs.ca_file().display()
    );
    let sluice = Sluice::start(SLUICE, &app_config(&[origin.server_spec()], &backend)).await;
    let mut ws = WsClient::connect(sluice.listener_addr("egress"), "chat.test", "/").await;
    ws.echo("over tls").await;
    assert_eq!(origin.alpn(), vec!["http/1.1".to_string()]);
}
