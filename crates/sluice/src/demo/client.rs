//! The demo's client, written like PHP calling an API with a fresh curl handle per
//! call: every request opens its own connection (TLS straight to the origin, or plain
//! HTTP to sluice) and closes it after the answer.

use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most one call may take before the demo gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn request(host: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// A TLS client that trusts only the demo's CA and never resumes a session, as a
/// fresh handle per call does not.
pub fn tls_config(ca: &CertificateDer<'static>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(c))
}

/// One call straight to the origin: TCP, a full TLS handshake, the request.
pub async fn direct(
    origin: SocketAddr,
    name: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Duration, String> {
    let start = tokio::time::Instant::now();
    let call = async {
        let tcp = TcpStream::connect(origin)
            .await
            .map_err(|e| e.to_string())?;
        let server = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let mut s = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(server, tcp)
            .await
            .map_err(|e| e.to_string())?;
        exchange(&mut s, name).await
    };
    finish(call, start).await
}

/// One call through sluice: plain TCP to it, the request; sluice's pool does the rest.
pub async fn via(sluice: SocketAddr, name: &str) -> Result<Duration, String> {
    let start = tokio::time::Instant::now();
    let call = async {
        let mut s = TcpStream::connect(sluice)
            .await
            .map_err(|e| e.to_string())?;
        exchange(&mut s, name).await
    };
    finish(call, start).await
}

async fn finish(
    call: impl std::future::Future<Output = Result<(), String>>,
    start: tokio::time::Instant,
) -> Result<Duration, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

async fn exchange<S>(s: &mut S, host: &str) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(request(host).as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // The origin closes after `Connection: close`; a TLS peer may skip close_notify.
    let _ = s.read_to_end(&mut answer).await;
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
        Err(format!("unexpected answer: {head:?}"))
    }
}

/// The `q`-quantile (0-1) of `samples`, sorted in place.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i.min(samples.len() - 1)]
}
