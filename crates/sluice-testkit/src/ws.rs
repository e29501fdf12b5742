//! WebSockets for tunnel tests: an echo origin (hyper's HTTP/1.1 server with
//! upgrades, then tokio-tungstenite) and a client.
//!
//! The origin answers `GET /deny` with an ordinary `403`, any request without
//! `Upgrade: websocket` with `200 plain`, and upgrades the rest with a real `101`
//! (`Sec-WebSocket-Accept` from the key). Upgraded connections echo every text and
//! binary message. It records each request head it got and counts tunnels open.

use crate::certs::Certs;
use crate::wait;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Default)]
struct Stats {
    accepted: AtomicUsize,
    open: AtomicUsize,
    closed: AtomicUsize,
    heads: Mutex<Vec<(String, HeaderMap)>>,
    /// ALPN protocol of each TLS connection (`-` if none).
    alpn: Mutex<Vec<String>>,
    changed: Notify,
}

/// What the origin has seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsCounts {
    pub accepted: usize,
    /// WebSockets open now, and closed so far.
    pub open: usize,
    pub closed: usize,
    pub requests: usize,
}

/// The echo origin, on 127.0.0.1, port 0; stops when dropped.
pub struct WsOrigin {
    addr: SocketAddr,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WsOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WsOrigin {
    /// Plain TCP (`ws://`).
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// TLS with `certs`, offering `h2` and `http/1.1` in ALPN (a server that would
    /// take HTTP/2 if asked): a tunnel must still come in as HTTP/1.1.
    pub async fn start_tls(certs: &Certs) -> Self {
        let mut config = (*certs.server_config()).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::start_inner(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_inner(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind ws origin");
        let addr = listener.local_addr().expect("ws origin address");
        let stats = Arc::new(Stats::default());
        let s = stats.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                s.accepted.fetch_add(1, Ordering::SeqCst);
                s.changed.notify_waiters();
                let (s, tls) = (s.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve(tcp, s).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let alpn =
                                stream.get_ref().1.alpn_protocol().map_or("-".into(), |p| {
                                    String::from_utf8_lossy(p).into_owned()
                                });
                            s.alpn.lock().push(alpn);
                            serve(stream, s).await;
                        }
                    }
                });
            }
        });
        Self { addr, stats, task }
    }

    /// For a backend's `servers` list.
    pub fn server_spec(&self) -> String {
        self.addr.to_string()
    }

    pub fn counts(&self) -> WsCounts {
        let s = &self.stats;
        WsCounts {
            accepted: s.accepted.load(Ordering::SeqCst),
            open: s.open.load(Ordering::SeqCst),
            closed: s.closed.load(Ordering::SeqCst),
            requests: s.heads.lock().len(),
        }
    }

    /// Each request head received: its path and headers.
    pub fn heads(&self) -> Vec<(String, HeaderMap)> {
        self.stats.heads.lock().clone()
    }

    /// The ALPN protocol each TLS connection negotiated.
    pub fn alpn(&self) -> Vec<String> {
        self.stats.alpn.lock().clone()
    }

    /// Waits (at most [`wait::DEFAULT_WAIT`]) until `ready` holds; panics otherwise.
    pub async fn wait_until(&self, ready: impl Fn(WsCounts) -> bool) {
        let ok = wait::until(&self.stats.changed, wait::DEFAULT_WAIT, || {
            ready(self.counts())
        })
        .await;
        assert!(
            ok,
            "ws origin: condition not met; counts now {:?}",
            self.counts()
        );
    }
}

async fn serve<S>(io: S, stats: Arc<Stats>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let stats = stats.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(req, stats)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

fn answer(mut req: Request<Incoming>, stats: Arc<Stats>) -> Response<Full<Bytes>> {
    stats
        .heads
        .lock()
        .push((req.uri().path().to_string(), req.headers().clone()));
    stats.changed.notify_waiters();
    let reply = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() == "/deny" {
        return reply(StatusCode::FORBIDDEN, "no websockets here");
    }
    let wants_ws = req
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req.headers().get("sec-websocket-key").cloned();
    let (true, Some(key)) = (wants_ws, key) else {
        return reply(StatusCode::OK, "plain");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        stats.open.fetch_add(1, Ordering::SeqCst);
        stats.changed.notify_waiters();
        while let Some(Ok(msg)) = ws.next().await {
            let echo = match msg {
                Message::Text(_) | Message::Binary(_) => msg,
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(echo).await.is_err() {
                break;
            }
        }
        let _ = ws.close(None).await;
        stats.open.fetch_sub(1, Ordering::SeqCst);
        stats.closed.fetch_add(1, Ordering::SeqCst);
        stats.changed.notify_waiters();
    });
    let mut r = reply(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

/// A WebSocket client over plain TCP to `addr` (sluice's listener), with `Host: host`.
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
}

/// How long a client waits for a message or for the close.
const CLIENT_WAIT: Duration = Duration::from_secs(10);

impl WsClient {
    /// Connects and completes the handshake; panics if it is refused.
    pub async fn connect(addr: SocketAddr, host: &str, path: &str) -> Self {
        match Self::try_connect(addr, host, path).await {
            Ok(c) => c,
            Err(e) => panic!("websocket handshake through {addr} failed: {e}"),
        }
    }

    /// The handshake's error (e.g. the status sluice or the origin answered instead).
    pub async fn try_connect(addr: SocketAddr, host: &str, path: &str) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let url = format!("ws://{host}{path}");
        let (ws, _) = tokio::time::timeout(CLIENT_WAIT, tokio_tungstenite::client_async(url, tcp))
            .await
            .map_err(|_| "handshake timed out".to_string())?
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => {
                    format!("status {}", r.status().as_u16())
                }
                e => e.to_string(),
            })?;
        Ok(Self { ws })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send websocket message");
    }

    /// The next text message; panics if none comes within 10 s.
    pub async fn recv_text(&mut self) -> String {
        loop {
            let next = tokio::time::timeout(CLIENT_WAIT, self.ws.next())
                .await
                .expect("no websocket message within 10s");
            match next {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Sends `text` and checks it comes back.
    pub async fn echo(&mut self, text: &str) {
        self.send_text(text).await;
        assert_eq!(self.recv_text().await, text);
    }

    /// Sends `text` and waits (at most `within`) for it to come back; the error says
    /// what happened instead (for load tools, which count rather than panic).
    pub async fn try_echo(&mut self, text: &str, within: Duration) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(format!("no echo within {within:?}")),
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == text => return Ok(()),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => return Err(format!("expected the echo, got {other:?}")),
            }
        }
    }

    /// Waits (at most `within`) for the connection to end without a message, and
    /// returns after how long. Panics if a message arrives or it stays open.
    pub async fn wait_closed(&mut self, within: Duration) -> Duration {
        let start = tokio::time::Instant::now();
        loop {
            match tokio::time::timeout(within, self.ws.next()).await {
                Err(_) => panic!("websocket still open after {within:?}"),
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return start.elapsed(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(m))) => panic!("expected the end, got {m:?}"),
            }
        }
    }

    /// A clean close handshake.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(CLIENT_WAIT, self.ws.next()).await {}
    }
}
