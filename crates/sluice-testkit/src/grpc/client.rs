//! [`GrpcClient`]: tonic's client over one hyper HTTP/2 connection the testkit opens
//! itself (h2c or TLS with ALPN `h2`), so the test picks the address, the SNI and the
//! `:authority` independently of each other's usual coupling in `tonic::transport`.

use super::{BytesCodec, BIDI, CLIENT_STREAM, GRPC_TIMEOUT, SERVER_STREAM, UNARY};
use crate::client::BoxError;
use bytes::Bytes;
use futures_util::stream;
use http::uri::{Authority, PathAndQuery, Uri};
use hyper::{body::Incoming, client::conn::http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::mpsc,
};
use tokio_rustls::TlsConnector;
use tonic::{body::Body, client::Grpc, metadata::MetadataMap, Request, Status, Streaming};
use tower_service::Service;

/// A whole call's outcome: response headers, every message, trailers.
#[derive(Debug)]
pub struct GrpcReply {
    pub headers: MetadataMap,
    pub messages: Vec<Bytes>,
    /// The trailers frame, `grpc-status` included.
    pub trailers: MetadataMap,
}

/// A gRPC client on one HTTP/2 connection; calls on it (and clones of it) are streams
/// of that connection. Every call gives up, panicking, after [`GRPC_TIMEOUT`]; gRPC
/// failures (a non-OK status, a reset stream, a dead connection) are returned as
/// [`Status`].
#[derive(Clone)]
pub struct GrpcClient {
    grpc: Grpc<H2Sender>,
    metadata: MetadataMap,
    authority: String,
}

impl GrpcClient {
    /// h2c (prior knowledge) to `addr`, naming `authority` (e.g. `grpc.test`) in every
    /// request's `:authority`. Panics if the connection fails.
    pub async fn connect(addr: SocketAddr, authority: &str) -> Self {
        Self::try_connect(addr, authority)
            .await
            .unwrap_or_else(|e| panic!("gRPC h2c connect to {addr} failed: {e}"))
    }

    /// TLS to `addr` with SNI and `:authority` from `authority` (SNI without any
    /// `:port`). `config` is used with its ALPN replaced by `h2` only, so
    /// [`Certs::client_config`](crate::Certs::client_config) can be passed as it is.
    /// Panics if the connection or handshake fails, or `h2` was not negotiated.
    pub async fn connect_tls(
        addr: SocketAddr,
        authority: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self::try_connect_tls(addr, authority, config)
            .await
            .unwrap_or_else(|e| panic!("gRPC TLS connect to {addr} failed: {e}"))
    }

    /// [`GrpcClient::connect`], returning the error instead of panicking.
    pub async fn try_connect(addr: SocketAddr, authority: &str) -> Result<Self, BoxError> {
        let tcp = within("TCP connect", TcpStream::connect(addr)).await??;
        tcp.set_nodelay(true)?;
        Self::handshake(tcp, "http", authority).await
    }

    /// [`GrpcClient::connect_tls`], returning the error instead of panicking.
    pub async fn try_connect_tls(
        addr: SocketAddr,
        authority: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, BoxError> {
        let host = authority.parse::<Authority>()?.host().to_owned();
        // An IPv6 authority is bracketed; a server name is not.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())?;
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = within("TCP connect", TcpStream::connect(addr)).await??;
        tcp.set_nodelay(true)?;
        let connector = TlsConnector::from(Arc::new(config));
        let tls = within("TLS handshake", connector.connect(name, tcp)).await??;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        if alpn.as_deref() != Some(b"h2") {
            let alpn = alpn.map(|p| String::from_utf8_lossy(&p).into_owned());
            return Err(format!("server negotiated ALPN {alpn:?}, not h2").into());
        }
        Self::handshake(tls, "https", authority).await
    }

    async fn handshake<IO>(io: IO, scheme: &str, authority: &str) -> Result<Self, BoxError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let origin: Uri = format!("{scheme}://{authority}").parse()?;
        let handshake = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io));
        let (sender, connection) = within("HTTP/2 handshake", handshake).await??;
        // Ends by itself once every handle and stream of the connection is gone.
        tokio::spawn(connection);
        Ok(Self {
            grpc: Grpc::with_origin(H2Sender(sender), origin),
            metadata: MetadataMap::new(),
            authority: authority.to_owned(),
        })
    }

    /// Metadata (request headers) sent with every later call of this client.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.metadata
    }

    /// `Unary`: the echoed message and the trailers. See [`super`] for `fail:`,
    /// `reject:` and `sleep:`.
    pub async fn unary(&mut self, message: Bytes) -> Result<(Bytes, MetadataMap), Status> {
        let reply = self.call(UNARY, vec![message], Duration::ZERO).await?;
        Ok((only_message(reply.messages)?, reply.trailers))
    }

    /// `ServerStream`: `count` messages (`msg 0`, `msg 1`, ...) `interval` apart, and
    /// the trailers. The whole stream must fit in [`GRPC_TIMEOUT`].
    pub async fn server_stream(
        &mut self,
        count: u64,
        interval: Duration,
    ) -> Result<(Vec<Bytes>, MetadataMap), Status> {
        let request = Bytes::from(format!("{count} {}", interval.as_millis()));
        let reply = self
            .call(SERVER_STREAM, vec![request], Duration::ZERO)
            .await?;
        Ok((reply.messages, reply.trailers))
    }

    /// `ClientStream`: sends `messages`, `gap` apart, then ends the request stream; the
    /// reply is their concatenation, and the trailers.
    pub async fn client_stream(
        &mut self,
        messages: Vec<Bytes>,
        gap: Duration,
    ) -> Result<(Bytes, MetadataMap), Status> {
        let reply = self.call(CLIENT_STREAM, messages, gap).await?;
        Ok((only_message(reply.messages)?, reply.trailers))
    }

    /// Any method (`path` like `/test.Echo/Unary`, or one the origin does not have):
    /// sends `messages`, `gap` apart, and collects the whole reply.
    pub async fn call(
        &mut self,
        path: &str,
        messages: Vec<Bytes>,
        gap: Duration,
    ) -> Result<GrpcReply, Status> {
        let path = PathAndQuery::try_from(path)
            .map_err(|e| Status::invalid_argument(format!("path {path:?}: {e}")))?;
        let outbound = stream::unfold(
            (messages.into_iter(), true),
            move |(mut rest, first)| async move {
                let next = rest.next()?;
                if !first && !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
                Some((next, (rest, false)))
            },
        );
        let request = self.request(outbound);
        let mut grpc = self.grpc.clone();
        within_or_panic(&self.authority, async move {
            grpc.ready()
                .await
                .map_err(|e| Status::from_error(e.into()))?;
            let response = grpc.streaming(request, path, BytesCodec).await?;
            let (headers, inbound, _) = response.into_parts();
            let (messages, trailers) = drain(inbound).await?;
            Ok(GrpcReply {
                headers,
                messages,
                trailers,
            })
        })
        .await
    }

    /// `Bidi`: opens the call and returns once the response headers have arrived; then
    /// send and receive one message at a time with the returned [`BidiCall`].
    pub async fn bidi(&mut self) -> Result<BidiCall, Status> {
        let (sender, receiver) = mpsc::unbounded_channel::<Bytes>();
        let outbound = stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|message| (message, receiver))
        });
        let request = self.request(outbound);
        let mut grpc = self.grpc.clone();
        let response = within_or_panic(&self.authority, async move {
            grpc.ready()
                .await
                .map_err(|e| Status::from_error(e.into()))?;
            grpc.streaming(request, PathAndQuery::from_static(BIDI), BytesCodec)
                .await
        })
        .await?;
        let (headers, inbound, _) = response.into_parts();
        Ok(BidiCall {
            sender: Some(sender),
            inbound,
            headers,
            authority: self.authority.clone(),
        })
    }

    fn request<S>(&self, messages: S) -> Request<S> {
        let mut request = Request::new(messages);
        *request.metadata_mut() = self.metadata.clone();
        request
    }
}

impl fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClient")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// An open `Bidi` call. Each wait gives up, panicking, after [`GRPC_TIMEOUT`].
pub struct BidiCall {
    sender: Option<mpsc::UnboundedSender<Bytes>>,
    inbound: Streaming<Bytes>,
    headers: MetadataMap,
    authority: String,
}

impl BidiCall {
    /// The response headers.
    pub fn headers(&self) -> &MetadataMap {
        &self.headers
    }

    /// Queues `message` on the request stream; panics after [`BidiCall::close_send`].
    pub fn send(&mut self, message: Bytes) {
        let sender = self.sender.as_ref().expect("bidi: send after close_send");
        // The receiving end lives as long as the request body; once the stream is
        // gone, `recv` reports why.
        let _ = sender.send(message);
    }

    /// The next message; `Ok(None)` once the server has ended the call with an OK
    /// status (read the trailers with [`BidiCall::finish`]).
    pub async fn recv(&mut self) -> Result<Option<Bytes>, Status> {
        within_or_panic(&self.authority, self.inbound.message()).await
    }

    /// Ends the request stream (END_STREAM), leaving the response open.
    pub fn close_send(&mut self) {
        self.sender = None;
    }

    /// Ends the request stream, then reads what is left: messages not yet received,
    /// and the trailers.
    pub async fn finish(mut self) -> Result<(Vec<Bytes>, MetadataMap), Status> {
        self.close_send();
        within_or_panic(&self.authority, drain(self.inbound)).await
    }
}

impl fmt::Debug for BidiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BidiCall")
            .field("authority", &self.authority)
            .field("sending", &self.sender.is_some())
            .finish_non_exhaustive()
    }
}

/// Every message, then the trailers, which must be there: tonic would take a response
/// that ends without any as success, hiding a proxy that lost them.
async fn drain(mut inbound: Streaming<Bytes>) -> Result<(Vec<Bytes>, MetadataMap), Status> {
    let mut messages = Vec::new();
    while let Some(message) = inbound.message().await? {
        messages.push(message);
    }
    let trailers = inbound.trailers().await?.ok_or_else(|| {
        Status::internal("sluice-testkit: response ended without trailers (no grpc-status)")
    })?;
    Ok((messages, trailers))
}

fn only_message(mut messages: Vec<Bytes>) -> Result<Bytes, Status> {
    match messages.len() {
        1 => Ok(messages.remove(0)),
        n => Err(Status::internal(format!(
            "sluice-testkit: expected one response message, got {n}"
        ))),
    }
}

async fn within<T>(what: &str, work: impl Future<Output = T>) -> Result<T, BoxError> {
    tokio::time::timeout(GRPC_TIMEOUT, work)
        .await
        .map_err(|_| format!("{what}: no answer within {GRPC_TIMEOUT:?}").into())
}

async fn within_or_panic<T>(authority: &str, work: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GRPC_TIMEOUT, work).await {
        Ok(outcome) => outcome,
        Err(_) => panic!("gRPC call to {authority}: no answer within {GRPC_TIMEOUT:?}"),
    }
}

/// hyper's HTTP/2 `SendRequest` as the tower `Service` tonic's client takes.
#[derive(Clone)]
struct H2Sender(http2::SendRequest<Body>);

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

impl Service<http::Request<Body>> for H2Sender {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> ResponseFuture {
        Box::pin(self.0.send_request(request))
    }
}
