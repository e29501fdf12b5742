//! gRPC end to end, HTTP/2 client ↔ HTTP/2 upstream: trailers (and `grpc-status` in
//! them) reach the client, trailers-only answers too, `te: trailers` reaches the
//! origin; client, server and bidirectional streams work over h2c and over TLS (ALPN
//! h2) on both hops; a stream that keeps moving outlives every timeout shorter than
//! itself, and one that pauses past an idle timeout is cut with an error status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::bytes::Bytes;
use sluice_testkit::grpc::{Code, MetadataMap, GRPC_TIMEOUT};
use sluice_testkit::serde_json::Value as Json;
use sluice_testkit::{Certs, GrpcClient, GrpcOrigin, Sluice};
use std::time::Duration;
use tokio::time::Instant;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const AUTHORITY: &str = "grpc.test";

/// A gRPC origin and sluice in front of it, with two listeners: `grpc` (plain,
/// h2c with prior knowledge) and `ingress` (TLS, ALPN h2).
struct Setup {
    certs: Certs,
    origin: GrpcOrigin,
    sluice: Sluice,
}

impl Setup {
    /// `tls_origin`: the origin speaks h2 over TLS (the backend verifies it with the
    /// CA, SNI `grpc.test`), else h2c. `listener_extra` goes into both listeners,
    /// `backend_extra` into the backend (each line indented by four spaces).
    async fn start(tls_origin: bool, listener_extra: &str, backend_extra: &str) -> Self {
        let certs = Certs::new(&[AUTHORITY]);
        let origin = match tls_origin {
            true => GrpcOrigin::start_tls(&certs).await,
            false => GrpcOrigin::start().await,
        };
        let upstream_tls = match tls_origin {
            true => format!(
                "    tls: {{ca_file: \"{}\", sni: {AUTHORITY}}}\n",
                certs.ca_file().display()
            ),
            false => String::new(),
        };
        let (cert, key) = certs.write_leaf("ingress");
        let yaml = format!(
            r#"log: {{format: json, access_log: true}}
admin: {{bind: "127.0.0.1:0"}}
listeners:
  - name: grpc
    bind: 127.0.0.1:0
    http2: true
{listener_extra}
  - name: ingress
    bind: 127.0.0.1:0
{listener_extra}
    tls:
      certificates:
        - {{cert_file: "{cert}", key_file: "{key}"}}
routes:
  - {{host: "{AUTHORITY}", backend: grpc}}
backends:
  - name: grpc
    servers: ["{server}"]
    protocol: http2
{upstream_tls}{backend_extra}
"#,
            cert = cert.display(),
            key = key.display(),
            server = origin.server_spec(),
        );
        let sluice = Sluice::start(SLUICE, &yaml).await;
        Self {
            certs,
            origin,
            sluice,
        }
    }

    async fn h2c_client(&self) -> GrpcClient {
        GrpcClient::connect(self.sluice.listener_addr("grpc"), AUTHORITY).await
    }

    async fn tls_client(&self) -> GrpcClient {
        let addr = self.sluice.listener_addr("ingress");
        GrpcClient::connect_tls(addr, AUTHORITY, self.certs.client_config()).await
    }

    async fn streams_counted(&self, listener: &str) -> f64 {
        let series = format!("sluice_client_h2_streams_total{{listener=\"{listener}\"}}");
        self.sluice.metric(&series).await.unwrap_or_default()
    }

    /// The access-log line of the only request to `path`, once `n` lines are written.
    async fn logged(&self, n: usize, path: &str) -> Json {
        let log = self.sluice.wait_for_access_log(n).await;
        let mut lines = log.iter().filter(|e| e["fields"]["path"] == path);
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no {path} in {log:?}"));
        assert!(lines.next().is_none(), "one {path} request: {log:?}");
        line.clone()
    }
}

fn trailer<'a>(trailers: &'a MetadataMap, name: &str) -> Option<&'a str> {
    trailers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_over_h2c_carries_trailers_statuses_and_te() {
    let s = Setup::start(false, "", "").await;
    let mut client = s.h2c_client().await;

    let (reply, trailers) = client.unary(Bytes::from("hello")).await.expect("unary");
    assert_eq!(reply, "hello");
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("unary"));
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));
    let seen = s.origin.last_request().expect("the origin got the call");
    assert_eq!(seen.version, sluice_testkit::http::Version::HTTP_2);
    assert_eq!(seen.path, "/test.Echo/Unary");
    assert_eq!(s.origin.last_authority().as_deref(), Some(AUTHORITY));
    let headers = s.origin.last_headers();
    assert_eq!(headers["te"], "trailers", "te: trailers was dropped");
    assert_eq!(headers["content-type"], "application/grpc");

    // grpc-status 3 in a trailers frame after the response headers.
    let status = client.unary(Bytes::from("fail:boom")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), "boom");
    // Trailers-only: grpc-status in the response headers, which end the stream.
    let status = client.unary(Bytes::from("reject:nope")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), "nope");

    // The connection outlives failed calls.
    let (reply, _) = client.unary(Bytes::from("again")).await.expect("unary");
    assert_eq!(reply, "again");
    assert_eq!(s.origin.calls(), 4);
    assert_eq!(s.origin.accepted(), 1, "one upstream h2c connection");
    assert_eq!(s.streams_counted("grpc").await, 4.0);
    assert_eq!(s.streams_counted("ingress").await, 0.0);
    let log = s.sluice.wait_for_access_log(4).await;
    for line in &log {
        // gRPC errors are HTTP 200s: neither side failed the exchange.
        assert_eq!(line["fields"]["status"], 200, "{line}");
        assert_eq!(line["fields"]["cause"], "-", "{line}");
        assert_eq!(line["fields"]["complete"], true, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_tls_listener_to_a_tls_origin() {
    let s = Setup::start(true, "", "").await;
    let mut client = s.tls_client().await;

    let (messages, trailers) = client
        .server_stream(20, Duration::from_millis(5))
        .await
        .expect("server stream");
    let expected: Vec<String> = (0..20).map(|i| format!("msg {i}")).collect();
    assert_eq!(messages, expected);
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("server-stream"));
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));

    let parts: Vec<Bytes> = (0..10).map(|i| Bytes::from(format!("<{i}>"))).collect();
    let (all, trailers) = client
        .client_stream(parts, Duration::from_millis(5))
        .await
        .expect("client stream");
    assert_eq!(all, (0..10).map(|i| format!("<{i}>")).collect::<String>());
    assert_eq!(
        trailer(&trailers, "x-echo-trailer"),
        Some("client-stream:10")
    );

    // Interactive: each echo comes back while the request stream is still open.
    let mut call = client.bidi().await.expect("bidi opens");
    for i in 0..5 {
        let text = format!("ping {i}");
        call.send(Bytes::from(text.clone()));
        let echo = call.recv().await.expect("echo").expect("a message");
        assert_eq!(echo, text);
    }
    let (rest, trailers) = call.finish().await.expect("bidi ends OK");
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("bidi"));
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));

    assert_eq!(s.origin.last_headers()["te"], "trailers");
    assert_eq!(s.origin.last_authority().as_deref(), Some(AUTHORITY));
    assert_eq!(s.origin.calls(), 3);
    assert_eq!(s.origin.accepted(), 1, "one upstream TLS connection");
    assert_eq!(s.origin.handshake_failures(), 0);
    assert_eq!(s.streams_counted("ingress").await, 3.0);
    let line = s.logged(3, "/test.Echo/Bidi").await;
    assert_eq!(line["fields"]["sni"], AUTHORITY, "{line}");
}

/// Every timeout that could cut a long stream, set far below the streams' length.
const SHORT_TIMEOUTS_LISTENER: &str = "    request_body_idle_timeout: 300ms";
const SHORT_TIMEOUTS_BACKEND: &str = "    timeouts: {response: 300ms, response_body_idle: 600ms}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_keep_moving_outlive_the_timeouts() {
    let s = Setup::start(false, SHORT_TIMEOUTS_LISTENER, SHORT_TIMEOUTS_BACKEND).await;
    let mut client = s.h2c_client().await;
    let gap = Duration::from_millis(100);

    let started = Instant::now();
    let (messages, trailers) = client.server_stream(12, gap).await.expect("server stream");
    assert_eq!(messages.len(), 12);
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("server-stream"));
    assert!(started.elapsed() >= 11 * gap, "{:?}", started.elapsed());

    // The response head comes only once the upload is over, 1.1 s after the request
    // began: the response timeout must not count the client's pauses.
    let started = Instant::now();
    let parts: Vec<Bytes> = (0..12).map(|i| Bytes::from(format!("{i},"))).collect();
    let (all, trailers) = client
        .client_stream(parts, gap)
        .await
        .expect("client stream");
    assert_eq!(all.len(), "0,1,2,3,4,5,6,7,8,9,10,11,".len());
    assert_eq!(
        trailer(&trailers, "x-echo-trailer"),
        Some("client-stream:12")
    );
    assert!(started.elapsed() >= 11 * gap, "{:?}", started.elapsed());

    let started = Instant::now();
    let mut call = client.bidi().await.expect("bidi opens");
    for i in 0..12 {
        // Workload: the client thinks between messages.
        tokio::time::sleep(gap).await;
        call.send(Bytes::from(format!("tick {i}")));
        let echo = call.recv().await.expect("echo").expect("a message");
        assert_eq!(echo, format!("tick {i}"));
    }
    let (rest, trailers) = call.finish().await.expect("bidi ends OK");
    assert!(rest.is_empty());
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("bidi"));
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));
    assert!(started.elapsed() >= 12 * gap, "{:?}", started.elapsed());

    assert_eq!(s.streams_counted("grpc").await, 3.0);
    let log = s.sluice.wait_for_access_log(3).await;
    for line in &log {
        assert_eq!(line["fields"]["cause"], "-", "{line}");
        assert_eq!(line["fields"]["complete"], true, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_pauses_past_an_idle_timeout_is_cut() {
    let s = Setup::start(false, SHORT_TIMEOUTS_LISTENER, SHORT_TIMEOUTS_BACKEND).await;
    let mut client = s.h2c_client().await;

    // The origin sends one message, then pauses 3 s: past response_body_idle (600ms).
    let started = Instant::now();
    let status = client
        .server_stream(2, Duration::from_secs(3))
        .await
        .expect_err("a stream silent for 3 s passed a 600ms idle timeout");
    let cut_after = started.elapsed();
    assert_reset(&status);
    assert!(
        cut_after >= Duration::from_millis(600) && cut_after < Duration::from_secs(3),
        "cut by sluice's idle timeout, not ended by the origin: {cut_after:?} {status:?}"
    );
    let line = s.logged(1, "/test.Echo/ServerStream").await;
    assert_eq!(line["fields"]["cause"], "response_body_timeout", "{line}");
    assert_eq!(line["fields"]["complete"], false, "{line}");

    // The client stops sending mid-call: past request_body_idle_timeout (300ms).
    let mut call = client.bidi().await.expect("bidi opens");
    call.send(Bytes::from("one"));
    assert_eq!(call.recv().await.expect("echo"), Some(Bytes::from("one")));
    let started = Instant::now();
    let status = call
        .recv()
        .await
        .expect_err("a request stream silent past request_body_idle_timeout");
    assert_reset(&status);
    assert!(started.elapsed() < GRPC_TIMEOUT);
    let line = s.logged(2, "/test.Echo/Bidi").await;
    assert_eq!(line["fields"]["cause"], "request_body_timeout", "{line}");

    // Only those streams were cut: the connection still carries calls.
    let (reply, _) = client
        .unary(Bytes::from("still here"))
        .await
        .expect("unary");
    assert_eq!(reply, "still here");
    assert_eq!(s.streams_counted("grpc").await, 3.0);
}

/// A stream sluice cut: reset (RST_STREAM) rather than ended, so the client has no
/// grpc-status and tonic reports the broken body (Unknown) or the reset (Internal).
fn assert_reset(status: &sluice_testkit::grpc::Status) {
    assert!(
        matches!(status.code(), Code::Unknown | Code::Internal),
        "{status:?}"
    );
    assert!(format!("{status:?}").contains("Reset("), "{status:?}");
}
