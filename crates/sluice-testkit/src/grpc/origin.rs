//! [`GrpcOrigin`]: the `test.Echo` service on `127.0.0.1:0`, h2c or TLS with ALPN `h2`.

use super::service::{EchoServer, Seen, SeenRequest};
use crate::{wait, Certs};
use http::HeaderMap;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::{
    fmt,
    net::SocketAddr,
    sync::{atomic::Ordering::SeqCst, Arc},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running gRPC origin serving `test.Echo` (see [`super`]); stops, dropping every
/// connection, when dropped.
pub struct GrpcOrigin {
    addr: SocketAddr,
    tls: bool,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl GrpcOrigin {
    /// Plaintext HTTP/2 with prior knowledge (h2c), on `127.0.0.1:0`.
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// TLS with the leaf of `certs`, ALPN `h2` only (a client offering only `http/1.1`
    /// fails the handshake), on `127.0.0.1:0`.
    pub async fn start_tls(certs: &Certs) -> Self {
        let mut config = (*certs.server_config()).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Self::start_inner(Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_inner(tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gRPC origin on 127.0.0.1:0");
        let addr = listener.local_addr().expect("gRPC origin local addr");
        let seen = Arc::new(Seen::default());
        let is_tls = tls.is_some();
        let task = tokio::spawn(accept(listener, tls, seen.clone()));
        Self {
            addr,
            tls: is_tls,
            seen,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as a backend `servers` entry: `127.0.0.1:PORT`.
    pub fn server_spec(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted (counted before any TLS handshake).
    pub fn accepted(&self) -> u64 {
        self.seen.accepted.load(SeqCst)
    }

    /// Connections whose TLS handshake failed or timed out.
    pub fn handshake_failures(&self) -> u64 {
        self.seen.handshake_failures.load(SeqCst)
    }

    /// Calls received (request heads, for any path, unknown methods included).
    pub fn calls(&self) -> u64 {
        self.seen.calls.load(SeqCst)
    }

    /// The most recent request as received, if any.
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.seen.last.lock().clone()
    }

    /// The headers of the most recent request (e.g. `te: trailers`, `content-type`,
    /// metadata the client sent). Panics if no call has arrived yet.
    pub fn last_headers(&self) -> HeaderMap {
        self.last_seen().headers
    }

    /// The `:authority` of the most recent request (`Host` if it had none). Panics if
    /// no call has arrived yet.
    pub fn last_authority(&self) -> Option<String> {
        self.last_seen().authority
    }

    fn last_seen(&self) -> SeenRequest {
        self.last_request()
            .expect("the gRPC origin has received no call yet")
    }

    /// Waits (at most [`wait::DEFAULT_WAIT`]) until at least `n` calls have arrived;
    /// panics otherwise.
    pub async fn wait_for_calls(&self, n: u64) {
        let reached = wait::until(&self.seen.changed, wait::DEFAULT_WAIT, || self.calls() >= n);
        if !reached.await {
            panic!(
                "gRPC origin: {} calls after {:?}, expected {n}",
                self.calls(),
                wait::DEFAULT_WAIT
            );
        }
    }
}

impl fmt::Debug for GrpcOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcOrigin")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("accepted", &self.accepted())
            .field("calls", &self.calls())
            .finish()
    }
}

impl Drop for GrpcOrigin {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, seen: Arc<Seen>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        seen.bump(&seen.accepted);
        connections.spawn(serve(tcp, tls.clone(), seen.clone()));
        while connections.try_join_next().is_some() {}
    }
}

async fn serve(tcp: TcpStream, tls: Option<TlsAcceptor>, seen: Arc<Seen>) {
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = tls else {
        return serve_h2(tcp, seen).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve_h2(stream, seen).await,
        _ => seen.bump(&seen.handshake_failures),
    }
}

async fn serve_h2<IO>(io: IO, seen: Arc<Seen>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let server = EchoServer { seen };
    // The tower service is always ready (as tonic's generated servers are), so hyper's
    // `&self` service can clone it and call it directly.
    let service =
        hyper::service::service_fn(move |request| Service::call(&mut server.clone(), request));
    let _ = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}
