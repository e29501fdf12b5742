//! The admin plane over real sockets: the reload/config/pools endpoints through a fake
//! [`Control`], which is the seam the binary implements (the real one, wired to the proxy,
//! is tested end to end through the binary), and the method and 404 rules of every path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use sluice_admin::{AdminState, Control, ReloadFuture};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

const DEADLINE: Duration = Duration::from_secs(10);

/// Answers reloads with a fixed result once `gate` lets it through, and counts them.
struct FakeControl {
    status: StatusCode,
    body: &'static str,
    gate: Arc<Semaphore>,
    started: watch::Sender<usize>,
    finished: watch::Sender<usize>,
}

impl FakeControl {
    fn new(status: StatusCode, body: &'static str) -> Arc<Self> {
        Arc::new(Self {
            status,
            body,
            gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            started: watch::channel(0).0,
            finished: watch::channel(0).0,
        })
    }

    /// Like `new`, but every reload waits until the test adds a permit.
    fn gated(status: StatusCode, body: &'static str) -> Arc<Self> {
        let c = Self::new(status, body);
        c.gate.forget_permits(Semaphore::MAX_PERMITS);
        c
    }
}

impl Control for FakeControl {
    fn reload(&self) -> ReloadFuture {
        self.started.send_modify(|n| *n += 1);
        let (gate, finished) = (self.gate.clone(), self.finished.clone());
        let answer = (self.status, self.body.to_string());
        Box::pin(async move {
            gate.acquire().await.expect("gate open").forget();
            finished.send_modify(|n| *n += 1);
            answer
        })
    }

    fn config(&self) -> String {
        r#"{"generation":1,"config":{},"last_reload":null}"#.to_string()
    }

    fn pools(&self) -> String {
        r#"{"generation":1,"backends":{}}"#.to_string()
    }
}

/// Serves the admin plane on 127.0.0.1:0 on the test's (single-threaded) runtime, like
/// the admin's own runtime in the binary.
async fn start(control: Option<Arc<dyn Control>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AdminState {
        registry: Arc::new(Registry::default()),
        ready: Arc::new(AtomicBool::new(true)),
        overloaded: Arc::new(AtomicBool::new(false)),
        control,
    };
    tokio::spawn(sluice_admin::serve(
        sluice_net::Listener::Tcp(listener),
        state,
    ));
    addr
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

/// One HTTP/1.1 connection to the admin plane.
struct Client(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self(send)
    }

    async fn send(&mut self, method: Method, path: &str, body: &'static [u8]) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "admin")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        let exchange = async {
            let resp = self.0.send_request(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Answer {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8(body.to_vec()).unwrap(),
            }
        };
        tokio::time::timeout(DEADLINE, exchange)
            .await
            .expect("admin answered in time")
    }
}

async fn once(addr: SocketAddr, method: Method, path: &str) -> Answer {
    Client::connect(addr).await.send(method, path, b"").await
}

fn content_type(a: &Answer) -> &str {
    a.headers
        .get(header::CONTENT_TYPE)
        .map_or("", |v| v.to_str().unwrap())
}

async fn wait_count(rx: &mut watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(DEADLINE, rx.wait_for(|c| *c >= n))
        .await
        .expect("count reached in time")
        .unwrap();
}

#[tokio::test]
async fn post_reload_answers_with_the_controls_status_and_body() {
    let body = r#"{"result":"rejected","generation":1,"trigger":"admin","error":"x.yaml: a: b"}"#;
    let control = FakeControl::new(StatusCode::BAD_REQUEST, body);
    let addr = start(Some(control.clone())).await;
    let a = once(addr, Method::POST, "/reload").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body, body);
    assert_eq!(content_type(&a), "application/json");
    assert_eq!(*control.finished.borrow(), 1);
}

#[tokio::test]
async fn reload_takes_no_other_method() {
    let control = FakeControl::new(StatusCode::OK, "{}");
    let addr = start(Some(control.clone())).await;
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
        let a = once(addr, method.clone(), "/reload").await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(a.headers.get(header::ALLOW).unwrap(), "POST", "{method}");
    }
    assert_eq!(*control.started.borrow(), 0, "no reload ran");
}

#[tokio::test]
async fn config_and_pools_are_json() {
    let addr = start(Some(FakeControl::new(StatusCode::OK, "{}"))).await;
    let mut client = Client::connect(addr).await;
    let config = client.send(Method::GET, "/config", b"").await;
    assert_eq!(config.status, StatusCode::OK);
    assert_eq!(content_type(&config), "application/json");
    assert_eq!(
        config.body,
        r#"{"generation":1,"config":{},"last_reload":null}"#
    );
    let pools = client.send(Method::GET, "/pools", b"").await;
    assert_eq!(pools.status, StatusCode::OK);
    assert_eq!(content_type(&pools), "application/json");
    assert_eq!(pools.body, r#"{"generation":1,"backends":{}}"#);
    let head = client.send(Method::HEAD, "/pools", b"").await;
    assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));
    for path in ["/config", "/pools"] {
        let a = client.send(Method::POST, path, b"").await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(a.headers.get(header::ALLOW).unwrap(), "GET, HEAD", "{path}");
    }
}

#[tokio::test]
async fn without_control_the_control_endpoints_are_404() {
    let addr = start(None).await;
    for (method, path) in [
        (Method::POST, "/reload"),
        (Method::GET, "/reload"),
        (Method::GET, "/config"),
        (Method::GET, "/pools"),
    ] {
        let a = once(addr, method, path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert!(a.body.contains("no config control"), "{path}: {}", a.body);
    }
    let health = once(addr, Method::GET, "/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok\n")
    );
}

#[tokio::test]
async fn unknown_path_lists_every_endpoint_and_old_ones_stay_read_only() {
    let addr = start(Some(FakeControl::new(StatusCode::OK, "{}"))).await;
    let a = once(addr, Method::GET, "/nope").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    for endpoint in [
        "/metrics", "/healthz", "/readyz", "/config", "/pools", "/reload",
    ] {
        assert!(
            a.body.contains(endpoint),
            "404 names {endpoint}: {}",
            a.body
        );
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(
            once(addr, Method::GET, path).await.status,
            StatusCode::OK,
            "{path}"
        );
        let a = once(addr, Method::POST, path).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(a.headers.get(header::ALLOW).unwrap(), "GET, HEAD", "{path}");
    }
}

#[tokio::test]
async fn a_small_reload_body_is_read_off_and_the_connection_reused() {
    let control = FakeControl::new(StatusCode::OK, r#"{"result":"unchanged"}"#);
    let addr = start(Some(control.clone())).await;
    let mut client = Client::connect(addr).await;
    let a = client.send(Method::POST, "/reload", &[b'x'; 4096]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers.get(header::CONNECTION).is_none());
    // The same connection carries the next request: the body did not linger on it.
    let b = client.send(Method::POST, "/reload", b"").await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(*control.finished.borrow(), 2);
}

#[tokio::test]
async fn an_announced_large_body_is_refused_unread() {
    let control = FakeControl::new(StatusCode::OK, "{}");
    let addr = start(Some(control.clone())).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Headers only: the server must answer without waiting for the 10 MB it was promised.
    s.write_all(b"POST /reload HTTP/1.1\r\nhost: admin\r\ncontent-length: 10000000\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("server closed in time")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert_eq!(*control.started.borrow(), 0, "no reload ran");
}

#[tokio::test]
async fn a_pending_reload_leaves_the_admin_serving_and_survives_the_client_leaving() {
    let control = FakeControl::gated(StatusCode::OK, r#"{"result":"applied"}"#);
    let addr = start(Some(control.clone())).await;
    let (mut started, mut finished) = (control.started.subscribe(), control.finished.subscribe());

    let mut first = Client::connect(addr).await;
    let waiting = tokio::spawn(async move { first.send(Method::POST, "/reload", b"").await });
    wait_count(&mut started, 1).await;
    // The test runtime is single-threaded like the admin's: this answer proves the
    // pending reload does not occupy it.
    let health = once(addr, Method::GET, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    control.gate.add_permits(1);
    let a = tokio::time::timeout(DEADLINE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, r#"{"result":"applied"}"#)
    );

    // A client that hangs up mid-reload does not cancel it.
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(b"POST /reload HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    wait_count(&mut started, 2).await;
    // Half-closing makes hyper give up the request (it closes its side), which drops the
    // request's future: only then is it known that the reload outlived its client.
    second.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, second.read_to_end(&mut rest))
        .await
        .expect("server closed in time")
        .unwrap();
    assert!(rest.is_empty(), "no answer to a client that left");
    control.gate.add_permits(1);
    wait_count(&mut finished, 2).await;
}
