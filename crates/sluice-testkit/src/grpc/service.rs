//! The `test.Echo` service, written the way tonic's generated code is: a tower
//! `Service` routing on the path to `tonic::server::Grpc` with one small handler per
//! method.
//!
//! Every successful call ends with a trailer `x-echo-trailer`. tonic's `Grpc::unary`
//! and `Grpc::client_streaming` cannot send trailing metadata with an OK status (their
//! response is a single message, then a bare `grpc-status: 0`), so `Unary` and
//! `ClientStream` are served as server-streaming and streaming calls that yield one
//! message: the frames on the wire are the same as a unary call's. The trailer rides on
//! an OK `Status` yielded last, which tonic turns into the trailers frame.

use super::{BytesCodec, BIDI, CLIENT_STREAM, SERVER_STREAM, SERVICE, UNARY};
use bytes::{Bytes, BytesMut};
use futures_util::{stream, Stream, StreamExt};
use http::{HeaderMap, Version};
use parking_lot::Mutex;
use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::sync::Notify;
use tonic::{
    body::Body,
    metadata::{MetadataMap, MetadataValue},
    server::{Grpc, NamedService, ServerStreamingService, StreamingService},
    Code, Request, Response, Status, Streaming,
};
use tower_service::Service;

type MessageStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;
type CallFuture = Pin<Box<dyn Future<Output = Result<Response<MessageStream>, Status>> + Send>>;
type BoxBodyError = Box<dyn std::error::Error + Send + Sync>;

/// One request as the origin received it, before tonic read its body.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The request path, e.g. `/test.Echo/Unary`.
    pub path: String,
    /// The HTTP/2 `:authority` (or, if there was none, the `Host` header).
    pub authority: Option<String>,
    /// Every regular header (HTTP/2 pseudo-headers are not headers), `te` included.
    pub headers: HeaderMap,
    pub version: Version,
}

/// What the origin has seen; shared by every connection.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) accepted: AtomicU64,
    pub(super) handshake_failures: AtomicU64,
    pub(super) calls: AtomicU64,
    pub(super) last: Mutex<Option<SeenRequest>>,
    pub(super) changed: Notify,
}

impl Seen {
    pub(super) fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, SeqCst);
        self.changed.notify_waiters();
    }
}

/// The routing service for one connection.
#[derive(Clone)]
pub(super) struct EchoServer {
    pub(super) seen: Arc<Seen>,
}

impl NamedService for EchoServer {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for EchoServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxBodyError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.record(&request);
        let path = request.uri().path().to_owned();
        Box::pin(async move {
            let mut grpc = Grpc::new(BytesCodec);
            Ok(match path.as_str() {
                UNARY => grpc.server_streaming(UnaryEcho, request).await,
                SERVER_STREAM => grpc.server_streaming(ServerStreamEcho, request).await,
                CLIENT_STREAM => grpc.streaming(ClientStreamEcho, request).await,
                BIDI => grpc.streaming(BidiEcho, request).await,
                other => Status::unimplemented(format!("no method {other}")).into_http(),
            })
        })
    }
}

impl EchoServer {
    fn record<B>(&self, request: &http::Request<B>) {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                let host = request.headers().get(http::header::HOST)?;
                host.to_str().ok().map(str::to_owned)
            });
        *self.seen.last.lock() = Some(SeenRequest {
            path: request.uri().path().to_owned(),
            authority,
            headers: request.headers().clone(),
            version: request.version(),
        });
        self.seen.bump(&self.seen.calls);
    }
}

/// The OK status that ends a successful call, carrying `x-echo-trailer: <value>`.
fn done(value: &str) -> Status {
    let mut metadata = MetadataMap::new();
    let value = MetadataValue::try_from(value).expect("ASCII trailer value");
    metadata.insert("x-echo-trailer", value);
    Status::with_metadata(Code::Ok, "", metadata)
}

fn boxed(s: impl Stream<Item = Result<Bytes, Status>> + Send + 'static) -> Response<MessageStream> {
    Response::new(Box::pin(s))
}

/// Echoes the request; `fail:<msg>` ends in `grpc-status: 3` in the trailers (after
/// response headers), `reject:<msg>` answers trailers-only (status in the response
/// headers, no body), `sleep:<ms>` waits before answering.
struct UnaryEcho;

impl ServerStreamingService<Bytes> for UnaryEcho {
    type Response = Bytes;
    type ResponseStream = MessageStream;
    type Future = CallFuture;

    fn call(&mut self, request: Request<Bytes>) -> CallFuture {
        Box::pin(async move {
            let message = request.into_inner();
            if let Some(reason) = message.strip_prefix(b"fail:") {
                let status = Status::invalid_argument(String::from_utf8_lossy(reason));
                return Ok(boxed(stream::iter([Err(status)])));
            }
            if let Some(reason) = message.strip_prefix(b"reject:") {
                return Err(Status::invalid_argument(String::from_utf8_lossy(reason)));
            }
            if let Some(ms) = message.strip_prefix(b"sleep:") {
                let ms = parse_number(ms, "sleep:<ms>")?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(boxed(stream::iter([Ok(message), Err(done("unary"))])))
        })
    }
}

/// `"<count> <interval_ms>"`: `count` messages `msg <i>`, the first at once, then one
/// every `interval_ms`.
struct ServerStreamEcho;

impl ServerStreamingService<Bytes> for ServerStreamEcho {
    type Response = Bytes;
    type ResponseStream = MessageStream;
    type Future = CallFuture;

    fn call(&mut self, request: Request<Bytes>) -> CallFuture {
        Box::pin(async move {
            let message = request.into_inner();
            let mut fields = message.split(|b| *b == b' ');
            let (Some(count), Some(interval), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(Status::invalid_argument(
                    "expected \"<count> <interval_ms>\"",
                ));
            };
            let count = parse_number(count, "count")?;
            let interval = Duration::from_millis(parse_number(interval, "interval_ms")?);
            let messages = stream::unfold(0, move |i| async move {
                if i == count {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(interval).await;
                }
                Some((Ok(Bytes::from(format!("msg {i}"))), i + 1))
            });
            let end = stream::once(async { Err(done("server-stream")) });
            Ok(boxed(messages.chain(end)))
        })
    }
}

/// Answers, once the client's stream has ended, with everything it sent, concatenated.
struct ClientStreamEcho;

impl StreamingService<Bytes> for ClientStreamEcho {
    type Response = Bytes;
    type ResponseStream = MessageStream;
    type Future = CallFuture;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> CallFuture {
        Box::pin(async move {
            let mut inbound = request.into_inner();
            let mut all = BytesMut::new();
            let mut n = 0;
            while let Some(message) = inbound.message().await? {
                all.extend_from_slice(&message);
                n += 1;
            }
            let end = done(&format!("client-stream:{n}"));
            Ok(boxed(stream::iter([Ok(all.freeze()), Err(end)])))
        })
    }
}

/// Echoes each message as it arrives; ends when the client's stream does.
struct BidiEcho;

impl StreamingService<Bytes> for BidiEcho {
    type Response = Bytes;
    type ResponseStream = MessageStream;
    type Future = CallFuture;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> CallFuture {
        let inbound = request.into_inner();
        // Answered at once, so the response headers go out before the first message.
        let echoes = stream::unfold(Some(inbound), |inbound| async move {
            let mut inbound = inbound?;
            match inbound.message().await {
                Ok(Some(message)) => Some((Ok(message), Some(inbound))),
                Ok(None) => Some((Err(done("bidi")), None)),
                Err(status) => Some((Err(status), None)),
            }
        });
        Box::pin(async move { Ok(boxed(echoes)) })
    }
}

fn parse_number(digits: &[u8], what: &str) -> Result<u64, Status> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Status::invalid_argument(format!("{what}: not a number")))
}
