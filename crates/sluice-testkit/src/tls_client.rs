//! A TLS client for sluice's TLS listeners: one connection, HTTP/1.1 or HTTP/2 as
//! ALPN agrees, with what the handshake settled (certificate served, ALPN, version)
//! for the test to assert on.

use crate::client::{BoxError, Response, CLIENT_TIMEOUT};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// One TLS connection to a listener.
pub struct TlsConn {
    sender: Sender,
    /// The protocol ALPN agreed (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: String,
    /// The handshake resumed a session (the config's session store had a ticket).
    pub resumed: bool,
    /// The leaf certificate the server presented.
    pub peer_leaf: CertificateDer<'static>,
    /// hyper's connection task: it ends when the connection does.
    task: tokio::task::JoinHandle<()>,
}

impl TlsConn {
    /// Connects to `addr` sending `sni` (None: no SNI, as a client dialling an IP),
    /// offering `alpn` (e.g. `&["h2", "http/1.1"]`) with `config`'s roots and client
    /// certificate. Without SNI the certificate is verified for `127.0.0.1`.
    pub async fn connect(
        addr: SocketAddr,
        sni: Option<&str>,
        config: Arc<rustls::ClientConfig>,
        alpn: &[&str],
    ) -> Result<Self, BoxError> {
        tokio::time::timeout(CLIENT_TIMEOUT, Self::open(addr, sni, config, alpn))
            .await
            .unwrap_or_else(|_| Err(format!("no TLS connection within {CLIENT_TIMEOUT:?}").into()))
    }

    async fn open(
        addr: SocketAddr,
        sni: Option<&str>,
        config: Arc<rustls::ClientConfig>,
        alpn: &[&str],
    ) -> Result<Self, BoxError> {
        let mut config = (*config).clone();
        config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        config.enable_sni = sni.is_some();
        let name = ServerName::try_from(sni.unwrap_or("127.0.0.1").to_string())?;
        let tcp = TcpStream::connect(addr).await?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let (_, conn) = tls.get_ref();
        let alpn = conn
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned());
        let version = conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("-")
            .to_string();
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let peer_leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned()
            .ok_or("the server presented no certificate")?;
        let io = TokioIo::new(tls);
        let (sender, task) = if alpn.as_deref() == Some("h2") {
            let (s, c) = http2::handshake(TokioExecutor::new(), io).await?;
            (Sender::H2(s), tokio::spawn(async move { drop(c.await) }))
        } else {
            let (s, c) = http1::handshake(io).await?;
            (Sender::H1(s), tokio::spawn(async move { drop(c.await) }))
        };
        Ok(Self {
            sender,
            alpn,
            version,
            resumed,
            peer_leaf,
            task,
        })
    }

    /// Whether the server ended the connection (HTTP/2: GOAWAY and close) within
    /// `within`.
    pub async fn closed_within(&mut self, within: std::time::Duration) -> bool {
        tokio::time::timeout(within, &mut self.task).await.is_ok()
    }

    /// `GET path` for `host` (the `Host` header on HTTP/1.1, `:authority` on HTTP/2).
    pub async fn get(&mut self, host: &str, path: &str) -> Result<Response, BoxError> {
        tokio::time::timeout(CLIENT_TIMEOUT, self.exchange(host, path))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {CLIENT_TIMEOUT:?}").into()))
    }

    async fn exchange(&mut self, host: &str, path: &str) -> Result<Response, BoxError> {
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                let req = Request::builder()
                    .method(Method::GET)
                    .uri(path)
                    .header(header::HOST, host)
                    .body(Empty::new())?;
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                let req = Request::builder()
                    .method(Method::GET)
                    .uri(format!("https://{host}{path}"))
                    .body(Empty::new())?;
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }
}
