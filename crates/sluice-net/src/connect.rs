//! Opening upstream connections: resolve, TCP or Unix connect, then TLS, each step
//! bounded by one deadline and classified when it fails.

use crate::stream::{PlainStream, UpstreamStream};
use rustls::pki_types::ServerName;
use sluice_config::ServerAddr;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{timeout_at, Instant};

/// Where to connect and how to secure it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: ServerAddr,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// How long each phase of a successful connect took.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectTimings {
    pub connect: Duration,
    pub tls_handshake: Option<Duration>,
}

/// What went wrong while connecting; decides the status code and the `sluice-error` cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectErrorKind {
    Resolve,
    Refused,
    AddrNotAvailable,
    Io,
    Timeout,
    TlsTimeout,
    TlsVerify,
    TlsHandshake,
}

impl ConnectErrorKind {
    /// Short machine-readable cause, used in `sluice-error` and logs.
    pub fn cause(self) -> &'static str {
        match self {
            Self::Resolve => "dns_failed",
            Self::Refused => "connect_refused",
            Self::AddrNotAvailable => "connect_addr_not_available",
            Self::Io => "connect_failed",
            Self::Timeout => "connect_timeout",
            Self::TlsTimeout => "tls_handshake_timeout",
            Self::TlsVerify => "tls_verify_failed",
            Self::TlsHandshake => "tls_handshake_failed",
        }
    }

    pub fn is_timeout(self) -> bool {
        matches!(self, Self::Timeout | Self::TlsTimeout)
    }
}

#[derive(Debug, Clone)]
pub struct ConnectError {
    pub kind: ConnectErrorKind,
    pub detail: String,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.cause(), self.detail)
    }
}

impl std::error::Error for ConnectError {}

fn io_kind(e: &io::Error) -> ConnectErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectErrorKind::Refused,
        io::ErrorKind::AddrNotAvailable => ConnectErrorKind::AddrNotAvailable,
        _ => ConnectErrorKind::Io,
    }
}

fn tls_kind(e: &io::Error) -> ConnectErrorKind {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => ConnectErrorKind::TlsVerify,
        _ => ConnectErrorKind::TlsHandshake,
    }
}

/// Opens upstream connections. Holds socket options; source-address pools come later.
#[derive(Debug, Clone, Default)]
pub struct Connector {}

impl Connector {
    pub fn new() -> Self {
        Self {}
    }

    /// Connects to `target` within `limit` (DNS + connect + TLS together).
    pub async fn connect(
        &self,
        target: &Target,
        limit: Duration,
    ) -> Result<(UpstreamStream, ConnectTimings), ConnectError> {
        let start = Instant::now();
        let deadline = start + limit;
        let err = |kind, detail: String| ConnectError { kind, detail };
        let plain = match &target.addr {
            ServerAddr::Unix(path) => match timeout_at(deadline, UnixStream::connect(path)).await {
                Ok(Ok(s)) => PlainStream::Unix(s),
                Ok(Err(e)) => return Err(err(io_kind(&e), format!("{}: {e}", path.display()))),
                Err(_) => {
                    return Err(err(
                        ConnectErrorKind::Timeout,
                        format!("{} after {limit:?}", target.addr),
                    ))
                }
            },
            ServerAddr::Tcp { host, port } => {
                let addrs = resolve(host, *port, deadline).await?;
                PlainStream::Tcp(connect_any(&addrs, deadline, &target.addr, limit).await?)
            }
        };
        let connected = Instant::now();
        let mut timings = ConnectTimings {
            connect: connected.saturating_duration_since(start),
            tls_handshake: None,
        };
        let Some((config, name)) = &target.tls else {
            return Ok((UpstreamStream::Plain(plain), timings));
        };
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        match timeout_at(deadline, connector.connect(name.clone(), plain)).await {
            Ok(Ok(tls)) => {
                timings.tls_handshake = Some(Instant::now().saturating_duration_since(connected));
                Ok((UpstreamStream::Tls(Box::new(tls)), timings))
            }
            Ok(Err(e)) => Err(err(
                tls_kind(&e),
                format!("{} ({}): {e}", target.addr, name.to_str()),
            )),
            Err(_) => Err(err(
                ConnectErrorKind::TlsTimeout,
                format!("{} after {limit:?}", target.addr),
            )),
        }
    }
}

async fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let fail = |detail| ConnectError {
        kind: ConnectErrorKind::Resolve,
        detail,
    };
    match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(it)) => {
            let addrs: Vec<_> = it.collect();
            if addrs.is_empty() {
                Err(fail(format!("{host}: no addresses")))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(fail(format!("{host}: {e}"))),
        Err(_) => Err(ConnectError {
            kind: ConnectErrorKind::Timeout,
            detail: format!("resolving {host}"),
        }),
    }
}

/// Tries each address in turn until one accepts; the last error wins.
async fn connect_any(
    addrs: &[SocketAddr],
    deadline: Instant,
    shown: &ServerAddr,
    limit: Duration,
) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => {
                last = Some(ConnectError {
                    kind: io_kind(&e),
                    detail: format!("{shown} ({addr}): {e}"),
                })
            }
            Err(_) => {
                return Err(ConnectError {
                    kind: ConnectErrorKind::Timeout,
                    detail: format!("{shown} after {limit:?}"),
                })
            }
        }
    }
    Err(last.unwrap_or(ConnectError {
        kind: ConnectErrorKind::Resolve,
        detail: format!("{shown}: no addresses"),
    }))
}
