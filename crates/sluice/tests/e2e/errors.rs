//! When the origin cannot be reached or misbehaves, sluice answers itself: the status
//! and `sluice-error` cause from the README's errors table, a body saying what happened,
//! and the same cause in the warn log, the access log and `sluice_upstream_errors_total`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{get, serde_json::Value as Json, Certs, Origin, Response, Sluice};
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    time::Instant,
};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A config with an admin listener, one `egress` listener and one backend `app` (every
/// host routes to it) whose YAML body (after `name: app`) is `backend`.
fn config(backend: &str) -> String {
    format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes: [{{host: "*", backend: app}}]
backends:
  - name: app
{backend}
"#
    )
}

/// Asserts `response` is sluice's own error answer with `status` and `cause`: the
/// `sluice-error` header, a plain-text body naming the cause, and a request id.
fn assert_sluice_error(response: &Response, status: u16, cause: &str) {
    assert_eq!(
        (response.status.as_u16(), response.header("sluice-error")),
        (status, Some(cause)),
        "body: {}",
        response.text()
    );
    assert!(
        response.text().contains(cause),
        "the body should say what happened: {:?}",
        response.text()
    );
    assert!(response.header("x-request-id").is_some());
    assert!(
        response.header("x-origin-headers").is_none(),
        "this answer must come from sluice, not the origin"
    );
}

/// The `warn` event sluice logged for the failed request with `request_id`.
async fn warn_event(sluice: &Sluice, request_id: &str) -> Json {
    let line = sluice
        .wait_for_stderr(|l| l.contains("upstream request failed") && l.contains(request_id))
        .await;
    sluice_testkit::serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// An origin whose certificate was not issued by the CA sluice trusts is refused before
/// any request is sent: 502 `tls_verify_failed`, logged as a warning with the same cause,
/// recorded in the access log's `cause`, and counted in `sluice_upstream_errors_total`.
#[tokio::test]
async fn an_origin_certificate_from_another_ca_is_502_tls_verify_failed_everywhere() {
    let certs = Certs::new(&["origin.test"]);
    let impostor = certs.signed_by_another_ca();
    let origin = Origin::builder().tls(&impostor).start().await;
    let yaml = config(&format!(
        "    servers: [\"{}\"]\n    tls: {{sni: origin.test, ca_file: \"{}\"}}",
        origin.server_spec(),
        certs.ca_file().display()
    ));
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let response = get(sluice.listener_addr("egress"), "origin.test", "/secret").await;
    assert_sluice_error(&response, 502, "tls_verify_failed");
    assert!(
        response.text().contains("certificate"),
        "the body should explain the failure: {:?}",
        response.text()
    );
    assert_eq!(
        origin.requests(),
        0,
        "nothing is sent to an unverified origin"
    );
    origin.wait_until(|s| s.handshake_failures == 1).await;
    let request_id = response.header("x-request-id").unwrap();

    let event = warn_event(&sluice, request_id).await;
    assert_eq!(event["level"], "WARN");
    assert_eq!(event["fields"]["cause"], "tls_verify_failed");
    assert_eq!(event["fields"]["backend"], "app");
    assert_eq!(event["fields"]["status"], 502);
    let server = origin.server_spec();
    assert_eq!(event["fields"]["upstream"].as_str(), Some(server.as_str()));

    let access = sluice.wait_for_access_log(1).await;
    let entry = &access[0]["fields"];
    assert_eq!(entry["cause"], "tls_verify_failed");
    assert_eq!(entry["status"], 502);
    assert_eq!(entry["request_id"], request_id);
    assert_eq!(entry["backend"], "app");
    assert_eq!(entry["upstream"].as_str(), Some(server.as_str()));

    let text = sluice.metrics().await;
    assert!(
        text.lines()
            .any(|l| l
                == r#"sluice_upstream_errors_total{backend="app",cause="tls_verify_failed"} 1"#),
        "one verify failure counted:\n{text}"
    );
}

/// An origin that takes longer than `timeouts.response` to send its response head is
/// given up on: 504 `response_timeout`, promptly, not when the origin finally answers.
#[tokio::test]
async fn a_slow_origin_is_504_response_timeout_after_the_configured_wait() {
    let origin = Origin::start().await;
    let yaml = config(&format!(
        "    servers: [\"{}\"]\n    timeouts: {{response: 200ms}}",
        origin.server_spec()
    ));
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let started = Instant::now();
    let response = get(sluice.listener_addr("egress"), "slow.test", "/delay/10000").await;
    let waited = started.elapsed();
    assert_sluice_error(&response, 504, "response_timeout");
    assert!(
        waited < Duration::from_secs(8),
        "sluice should give up after ~200ms, not wait for the origin: took {waited:?}"
    );
    assert_eq!(origin.requests(), 1, "the request did reach the origin");

    let event = warn_event(&sluice, response.header("x-request-id").unwrap()).await;
    assert_eq!(event["fields"]["cause"], "response_timeout");
    assert_eq!(event["fields"]["status"], 504);
}

/// A server where nothing listens: 502 `connect_refused`, and the cause is counted.
#[tokio::test]
async fn a_server_where_nothing_listens_is_502_connect_refused() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // dropped: nothing listens on `port` now
    let yaml = config(&format!("    servers: [\"127.0.0.1:{port}\"]"));
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let response = get(sluice.listener_addr("egress"), "refused.test", "/").await;
    assert_sluice_error(&response, 502, "connect_refused");
    assert!(
        response.text().contains(&port.to_string()),
        "the body should name the server: {:?}",
        response.text()
    );
    let text = sluice.metrics().await;
    assert!(
        text.lines().any(
            |l| l == r#"sluice_upstream_errors_total{backend="app",cause="connect_refused"} 1"#
        ),
        "{text}"
    );
}

/// A server name that does not resolve (`.invalid` never does, RFC 6761) fails fast with
/// 502 `dns_failed` (or 504 `connect_timeout` if the resolver itself hangs).
#[tokio::test]
async fn a_server_name_that_does_not_resolve_is_502_dns_failed() {
    let yaml = config("    servers: [\"nonexistent.invalid:443\"]\n    timeouts: {connect: 2s}");
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let response = get(sluice.listener_addr("egress"), "app.test", "/").await;
    let cause = response
        .header("sluice-error")
        .unwrap_or_else(|| panic!("no sluice-error header: {response:?}"));
    match (response.status.as_u16(), cause) {
        (502, "dns_failed") => assert!(
            response.text().contains("nonexistent.invalid"),
            "the body should name the host: {:?}",
            response.text()
        ),
        (504, "connect_timeout") => {}
        other => panic!("expected 502 dns_failed or 504 connect_timeout, got {other:?}"),
    }
}

/// An origin that accepts the request and closes the connection without answering:
/// 502 with an `upstream_*` cause. The request was sent on a fresh connection, so it is
/// not retried (only requests on pooled connections are).
#[tokio::test]
async fn an_origin_that_drops_the_connection_is_502_upstream_closed() {
    let origin = Origin::start().await;
    let yaml = config(&format!("    servers: [\"{}\"]", origin.server_spec()));
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let response = get(sluice.listener_addr("egress"), "app.test", "/drop").await;
    assert_eq!(response.status, 502, "{}", response.text());
    let cause = response
        .header("sluice-error")
        .expect("sluice-error header");
    assert!(cause.starts_with("upstream_"), "cause {cause:?}");
    assert_eq!(cause, "upstream_closed");
    assert_eq!(origin.requests(), 1, "not retried");
    assert_eq!(origin.accepted(), 1);

    let entry = &sluice.wait_for_access_log(1).await[0]["fields"];
    assert_eq!(entry["cause"], cause);
    assert_eq!(entry["status"], 502);
}

/// An origin that answers with something that is not HTTP: 502
/// `upstream_protocol_error`, and the garbage is not passed on to the client.
#[tokio::test]
async fn an_origin_that_does_not_speak_http_is_502_upstream_protocol_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let not_http = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "sluice closed before sending a request head");
            head.extend_from_slice(&buf[..n]);
        }
        stream
            .write_all(b"SSH-2.0-OpenSSH_9.6\r\nthis is not http\r\n\r\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    let yaml = config(&format!("    servers: [\"{addr}\"]"));
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let response = get(sluice.listener_addr("egress"), "app.test", "/").await;
    assert_sluice_error(&response, 502, "upstream_protocol_error");
    assert!(!response.text().contains("SSH-2.0"));
    let head = tokio::time::timeout(Duration::from_secs(10), not_http)
        .await
        .expect("sluice never sent the request to the origin")
        .unwrap();
    assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
}

/// A backend configured for TLS pointed at a plain-HTTP origin: the handshake fails
/// (it is not a certificate problem), 502 `tls_handshake_failed`.
#[tokio::test]
async fn tls_towards_a_plain_http_origin_is_502_tls_handshake_failed() {
    let certs = Certs::new(&["origin.test"]);
    let origin = Origin::start().await;
    let yaml = config(&format!(
        "    servers: [\"{}\"]\n    tls: {{sni: origin.test, ca_file: \"{}\"}}",
        origin.server_spec(),
        certs.ca_file().display()
    ));
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let response = get(sluice.listener_addr("egress"), "origin.test", "/").await;
    assert_sluice_error(&response, 502, "tls_handshake_failed");
    assert_eq!(
        origin.requests(),
        0,
        "the ClientHello is not an HTTP request"
    );
}
