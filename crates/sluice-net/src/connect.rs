//! Opening upstream connections: resolve, TCP or Unix connect, then TLS, each step
//! bounded by one deadline and classified when it fails.

use crate::stream::{PlainStream, UpstreamStream};
use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
use rustls::pki_types::ServerName;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio::time::{timeout_at, Instant};

/// A resolved upstream address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Where to connect and how to secure it.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Target {
    /// The same target offering only `http/1.1` in ALPN: a tunnel (an upgraded
    /// connection) needs HTTP/1.1 even to a server that would pick `h2`. The config
    /// is a copy sharing its session cache, so resumption still works.
    pub fn http1_only(&self) -> Target {
        let tls = self.tls.as_ref().map(|(config, name)| {
            let mut c = (**config).clone();
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            (Arc::new(c), name.clone())
        });
        Target {
            endpoint: self.endpoint.clone(),
            tls,
        }
    }
}

/// How long each phase of a successful connect took.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectTimings {
    pub connect: Duration,
    pub tls_handshake: Option<Duration>,
    /// The local address the connection was bound to, when `source_addresses` apply.
    pub source: Option<IpAddr>,
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
    /// The OS error behind a failed connect, if any.
    pub errno: Option<i32>,
}

impl ConnectError {
    fn new(kind: ConnectErrorKind, detail: String) -> Self {
        Self {
            kind,
            detail,
            errno: None,
        }
    }

    /// The failure as a short label for metrics: the errno name (`EADDRNOTAVAIL`,
    /// `ECONNREFUSED`, ...), or `timeout`, `tls`, `dns`.
    pub fn errno_label(&self) -> &'static str {
        match (self.errno, self.kind) {
            (Some(n), _) => errno_name(n),
            (None, ConnectErrorKind::Timeout | ConnectErrorKind::TlsTimeout) => "timeout",
            (None, ConnectErrorKind::TlsVerify | ConnectErrorKind::TlsHandshake) => "tls",
            (None, ConnectErrorKind::Resolve) => "dns",
            (None, _) => "other",
        }
    }
}

/// Names of the errors a connect can end with; anything else is `other`.
fn errno_name(n: i32) -> &'static str {
    match n {
        1 => "EPERM",
        12 => "ENOMEM",
        13 => "EACCES",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        2 => "ENOENT",
        _ => "other",
    }
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

/// Upstream socket options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    pub nodelay: bool,
    /// TCP keepalive (idle, interval, probes); `None` = off.
    pub keepalive: Option<(Duration, Duration, u32)>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            nodelay: true,
            keepalive: None,
        }
    }
}

/// Opens upstream connections for one backend: its socket options and the local
/// source addresses it spreads connections over.
#[derive(Debug, Default)]
pub struct Connector {
    options: SocketOptions,
    sources: Vec<IpAddr>,
    next_source: AtomicUsize,
}

impl Connector {
    pub fn new(options: SocketOptions, sources: Vec<IpAddr>) -> Self {
        Self {
            options,
            sources,
            next_source: AtomicUsize::new(0),
        }
    }

    /// The next source address of `dest`'s family, round robin; `None` when none is
    /// configured for that family (the kernel picks).
    fn source_for(&self, dest: &SocketAddr) -> Option<IpAddr> {
        let n = self.sources.len();
        if n == 0 {
            return None;
        }
        let start = self.next_source.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| self.sources[(start + i) % n])
            .find(|ip| ip.is_ipv4() == dest.is_ipv4())
    }

    /// Connects to `target` within `limit` (DNS + connect + TLS together).
    pub async fn connect(
        &self,
        target: &Target,
        limit: Duration,
    ) -> Result<(UpstreamStream, ConnectTimings), ConnectError> {
        let start = Instant::now();
        let deadline = start + limit;
        let err = ConnectError::new;
        let mut source = None;
        let plain = match &target.endpoint {
            Endpoint::Unix(path) => match timeout_at(deadline, UnixStream::connect(path)).await {
                Ok(Ok(s)) => PlainStream::Unix(s),
                Ok(Err(e)) => return Err(io_err(&e, format!("{}: {e}", path.display()))),
                Err(_) => {
                    return Err(err(
                        ConnectErrorKind::Timeout,
                        format!("{} after {limit:?}", target.endpoint),
                    ))
                }
            },
            Endpoint::Tcp(addr) => {
                source = self.source_for(addr);
                let connecting = self.tcp_connect(*addr, source);
                match timeout_at(deadline, connecting).await {
                    Ok(Ok(s)) => PlainStream::Tcp(s),
                    Ok(Err(e)) => {
                        let from = source.map(|s| format!(" from {s}")).unwrap_or_default();
                        return Err(io_err(&e, format!("{addr}{from}: {e}")));
                    }
                    Err(_) => {
                        return Err(err(
                            ConnectErrorKind::Timeout,
                            format!("{addr} after {limit:?}"),
                        ))
                    }
                }
            }
        };
        let connected = Instant::now();
        let mut timings = ConnectTimings {
            connect: connected.saturating_duration_since(start),
            tls_handshake: None,
            source,
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
                format!("{} ({}): {e}", target.endpoint, name.to_str()),
            )),
            Err(_) => Err(err(
                ConnectErrorKind::TlsTimeout,
                format!("{} after {limit:?}", target.endpoint),
            )),
        }
    }

    /// One TCP connect with the socket options applied, bound to `source` if given.
    async fn tcp_connect(&self, addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            // Without this, bind() reserves an ephemeral port for the source IP alone,
            // so each source IP could hold only ~28k connections in total. With it the
            // port is picked at connect() and only the full 4-tuple must be unique.
            if addr.is_ipv4() {
                setsockopt(&socket, IpBindAddressNoPort, &true).map_err(io::Error::from)?;
            }
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.set_nodelay(self.options.nodelay)?;
        if let Some((idle, interval, count)) = self.options.keepalive {
            let ka = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(interval)
                .with_retries(count);
            socket2::SockRef::from(&socket).set_tcp_keepalive(&ka)?;
        }
        socket.connect(addr).await
    }
}

fn io_err(e: &io::Error, detail: String) -> ConnectError {
    ConnectError {
        kind: io_kind(e),
        detail,
        errno: e.raw_os_error(),
    }
}
