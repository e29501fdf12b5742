//! [`H2Client`]: a well-behaved h2c client (prior knowledge, the `h2` crate) on one
//! connection, for many concurrent requests; it honours the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` by queueing streams past it.

use crate::client::{BoxError, CLIENT_TIMEOUT};
use bytes::Bytes;
use http::Request;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// One h2c connection; clone it to send concurrent requests on it.
#[derive(Clone)]
pub struct H2Client {
    send: h2::client::SendRequest<Bytes>,
}

impl H2Client {
    pub async fn connect(addr: SocketAddr) -> Result<H2Client, BoxError> {
        let opening = async {
            let tcp = TcpStream::connect(addr).await?;
            let (send, conn) = h2::client::handshake(tcp).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, BoxError>(H2Client { send })
        };
        tokio::time::timeout(CLIENT_TIMEOUT, opening)
            .await
            .unwrap_or_else(|_| Err("no h2c connection in time".into()))
    }

    /// `GET http://authority/path`: the status and the body.
    pub async fn get(&self, authority: &str, path: &str) -> Result<(u16, Bytes), BoxError> {
        self.get_with(authority, path, &[]).await
    }

    /// [`Self::get`] with extra request headers.
    pub async fn get_with(
        &self,
        authority: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<(u16, Bytes), BoxError> {
        let mut req = Request::get(format!("http://{authority}{path}"));
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let req = req.body(())?;
        let send = self.send.clone();
        let asking = async move {
            let mut send = send.ready().await?;
            let (resp, _) = send.send_request(req, true)?;
            let resp = resp.await?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut out = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk?;
                let _ = body.flow_control().release_capacity(chunk.len());
                out.extend_from_slice(&chunk);
            }
            Ok::<_, BoxError>((status, Bytes::from(out)))
        };
        tokio::time::timeout(CLIENT_TIMEOUT, asking)
            .await
            .unwrap_or_else(|_| Err(format!("no answer to GET {path} in time").into()))
    }
}
