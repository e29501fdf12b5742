//! The gRPC client against the gRPC origin directly, h2c and TLS: every call kind,
//! trailers, statuses and what the origin recorded.

use super::*;
use crate::Certs;
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;
use tonic::{metadata::MetadataMap, Code};

const AUTHORITY: &str = "grpc.test";

/// An origin and a client connected to it: h2c, or TLS (ALPN h2) with a fresh CA.
async fn pair(tls: bool) -> (GrpcOrigin, GrpcClient) {
    if tls {
        let certs = Certs::new(&[AUTHORITY]);
        let origin = GrpcOrigin::start_tls(&certs).await;
        let client = GrpcClient::connect_tls(origin.addr(), AUTHORITY, certs.client_config()).await;
        (origin, client)
    } else {
        let origin = GrpcOrigin::start().await;
        let client = GrpcClient::connect(origin.addr(), AUTHORITY).await;
        (origin, client)
    }
}

fn trailer<'a>(trailers: &'a MetadataMap, name: &str) -> Option<&'a str> {
    trailers.get(name).and_then(|v| v.to_str().ok())
}

async fn unary_echoes_with_trailers(tls: bool) {
    let (origin, mut client) = pair(tls).await;
    let (reply, trailers) = client.unary(Bytes::from("hello")).await.expect("unary");
    assert_eq!(reply, "hello");
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("unary"));
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));

    assert_eq!(origin.calls(), 1);
    let seen = origin.last_request().expect("a request was recorded");
    assert_eq!(seen.path, UNARY);
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(origin.last_authority().as_deref(), Some(AUTHORITY));
    let headers = origin.last_headers();
    assert_eq!(headers["te"], "trailers");
    assert_eq!(headers["content-type"], "application/grpc");
}

#[tokio::test]
async fn unary_h2c() {
    unary_echoes_with_trailers(false).await;
}

#[tokio::test]
async fn unary_tls() {
    unary_echoes_with_trailers(true).await;
}

async fn streams_in_both_directions(tls: bool) {
    let (origin, mut client) = pair(tls).await;

    let started = Instant::now();
    let interval = Duration::from_millis(20);
    let (messages, trailers) = client.server_stream(3, interval).await.expect("stream");
    assert_eq!(messages, ["msg 0", "msg 1", "msg 2"]);
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("server-stream"));
    assert!(started.elapsed() >= 2 * interval, "messages were spaced");

    let parts = ["ab", "cd", "ef"].map(Bytes::from).to_vec();
    let (all, trailers) = client
        .client_stream(parts, Duration::from_millis(5))
        .await
        .expect("client stream");
    assert_eq!(all, "abcdef");
    assert_eq!(
        trailer(&trailers, "x-echo-trailer"),
        Some("client-stream:3")
    );
    assert_eq!(origin.last_request().expect("recorded").path, CLIENT_STREAM);

    let (all, trailers) = client
        .client_stream(Vec::new(), Duration::ZERO)
        .await
        .expect("empty client stream");
    assert_eq!(all, "");
    assert_eq!(
        trailer(&trailers, "x-echo-trailer"),
        Some("client-stream:0")
    );

    // Calls are streams of one connection.
    assert_eq!(origin.calls(), 3);
    assert_eq!(origin.accepted(), 1);
}

#[tokio::test]
async fn server_and_client_streams_h2c() {
    streams_in_both_directions(false).await;
}

#[tokio::test]
async fn server_and_client_streams_tls() {
    streams_in_both_directions(true).await;
}

async fn bidi_echoes_each_message_before_the_stream_ends(tls: bool) {
    let (origin, mut client) = pair(tls).await;
    let mut call = client.bidi().await.expect("bidi call opens");
    for text in ["one", "two", "three"] {
        call.send(Bytes::from(text));
        let echo = call.recv().await.expect("echo").expect("a message");
        assert_eq!(echo, text);
    }
    call.send(Bytes::from("unread"));
    let (rest, trailers) = call.finish().await.expect("bidi ends OK");
    assert_eq!(rest, ["unread"]);
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("bidi"));
    assert_eq!(origin.last_headers()["te"], "trailers");
}

#[tokio::test]
async fn bidi_h2c() {
    bidi_echoes_each_message_before_the_stream_ends(false).await;
}

#[tokio::test]
async fn bidi_tls() {
    bidi_echoes_each_message_before_the_stream_ends(true).await;
}

#[tokio::test]
async fn bidi_half_close_then_read_to_the_end() {
    let (_origin, mut client) = pair(false).await;
    let mut call = client.bidi().await.expect("bidi call opens");
    call.send(Bytes::from("last"));
    call.close_send();
    assert_eq!(call.recv().await.expect("echo"), Some(Bytes::from("last")));
    assert_eq!(call.recv().await.expect("OK end"), None);
    let (rest, trailers) = call.finish().await.expect("trailers");
    assert!(rest.is_empty());
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("bidi"));
}

async fn statuses(tls: bool) {
    let (_origin, mut client) = pair(tls).await;

    let status = client.unary(Bytes::from("fail:boom")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "boom");

    let status = client.unary(Bytes::from("reject:no")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "no");

    let reply = client
        .call("/test.Echo/Nope", vec![Bytes::new()], Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(reply.code(), Code::Unimplemented);

    let status = client.server_stream_raw("three 10").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // The connection survives failed calls.
    let (reply, _) = client.unary(Bytes::from("still")).await.expect("unary");
    assert_eq!(reply, "still");
}

#[tokio::test]
async fn statuses_h2c() {
    statuses(false).await;
}

#[tokio::test]
async fn statuses_tls() {
    statuses(true).await;
}

#[tokio::test]
async fn unary_sleep_waits_then_echoes() {
    let (_origin, mut client) = pair(false).await;
    let started = Instant::now();
    let (reply, trailers) = client.unary(Bytes::from("sleep:50")).await.expect("unary");
    assert_eq!(reply, "sleep:50");
    assert_eq!(trailer(&trailers, "x-echo-trailer"), Some("unary"));
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn client_metadata_reaches_the_origin_and_concurrent_calls_share_a_connection() {
    let (origin, mut client) = pair(false).await;
    client
        .metadata_mut()
        .insert("x-test-id", "abc".parse().expect("metadata value"));
    let mut slow = client.clone();
    let slow = tokio::spawn(async move { slow.unary(Bytes::from("sleep:100")).await });
    origin.wait_for_calls(1).await;
    let (reply, _) = client.unary(Bytes::from("fast")).await.expect("unary");
    assert_eq!(reply, "fast");
    assert_eq!(origin.last_headers()["x-test-id"], "abc");
    let (reply, _) = slow.await.expect("task").expect("slow unary");
    assert_eq!(reply, "sleep:100");
    assert_eq!(origin.accepted(), 1);
}

#[tokio::test]
async fn tls_origin_refuses_a_client_without_h2() {
    let certs = Certs::new(&[AUTHORITY]);
    let origin = GrpcOrigin::start_tls(&certs).await;
    // Certs::client_config offers only http/1.1.
    let connector = tokio_rustls::TlsConnector::from(certs.client_config());
    let tcp = tokio::net::TcpStream::connect(origin.addr())
        .await
        .expect("TCP connect");
    let name = rustls_pki_types::ServerName::try_from(AUTHORITY).expect("name");
    let handshake = tokio::time::timeout(GRPC_TIMEOUT, connector.connect(name, tcp))
        .await
        .expect("handshake ends");
    assert!(
        handshake.is_err(),
        "no ALPN overlap must fail the handshake"
    );
}

impl GrpcClient {
    /// `ServerStream` with a request body the typed helper cannot produce.
    async fn server_stream_raw(
        &mut self,
        request: &'static str,
    ) -> Result<GrpcReply, tonic::Status> {
        self.call(SERVER_STREAM, vec![Bytes::from(request)], Duration::ZERO)
            .await
    }
}

/// What a proxy must carry, seen with a plain hyper client: OK and `fail:` put
/// `grpc-status` in a trailers frame after the response headers; `reject:` answers
/// trailers-only (the status in the response headers, which end the stream).
#[tokio::test]
async fn statuses_on_the_wire() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let origin = GrpcOrigin::start().await;
    let tcp = tokio::net::TcpStream::connect(origin.addr())
        .await
        .expect("TCP connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);

    for (message, status_in_headers, status_in_trailers) in [
        ("hi", None, Some("0")),
        ("fail:x", None, Some("3")),
        ("reject:x", Some("3"), None),
    ] {
        // A gRPC message: uncompressed flag, big-endian length, the bytes.
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(message.len()).expect("short").to_be_bytes());
        frame.extend_from_slice(message.as_bytes());
        let request = http::Request::post(format!("http://{AUTHORITY}{UNARY}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(frame)))
            .expect("request");
        let response = tokio::time::timeout(GRPC_TIMEOUT, async {
            let response = sender.send_request(request).await.expect("response");
            let (head, body) = response.into_parts();
            (head, body.collect().await.expect("body"))
        })
        .await
        .expect("answered in time");
        let (head, body) = response;
        assert_eq!(head.status, http::StatusCode::OK, "{message}");
        let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("grpc-status"), status_in_headers, "{message}");
        let trailers = body.trailers().cloned();
        let in_trailers = trailers.as_ref().and_then(|t| t.get("grpc-status"));
        assert_eq!(
            in_trailers.and_then(|v| v.to_str().ok()),
            status_in_trailers,
            "{message}"
        );
        if message == "hi" {
            let trailers = trailers.expect("trailers");
            assert_eq!(trailers["x-echo-trailer"], "unary");
            assert!(head.headers.get("x-echo-trailer").is_none());
        }
    }
}
