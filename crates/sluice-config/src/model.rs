//! The schema. Field docs here are the source for the README's config reference.

use crate::duration::HumanDuration;
pub use crate::duration::HumanDuration as Duration;
use serde::Deserialize;
use std::{fmt, net::SocketAddr, path::PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub runtime: Runtime,
    #[serde(default)]
    pub log: Log,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); absent = none.
    #[serde(default)]
    pub admin: Option<Admin>,
    #[serde(default)]
    pub shutdown: Shutdown,
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Worker threads for the data path; 0 = one per CPU. 1 runs a single-threaded reactor.
    #[serde(default)]
    pub workers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter (`sluice_pool=debug`).
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
    /// One line per request on stdout.
    #[serde(default = "yes")]
    pub access_log: bool,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::Text,
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `host:port` or `unix:/path`.
    pub bind: BindAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// On SIGTERM/SIGINT: stop accepting, let in-flight requests finish for at most this long.
    #[serde(default = "default_drain")]
    pub drain_timeout: HumanDuration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            drain_timeout: default_drain(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    /// `host:port` or `unix:/path/to.sock`.
    pub bind: BindAddr,
    /// File mode of a Unix socket, octal string like "0660" (default: left to the umask).
    #[serde(default)]
    pub mode: Option<FileMode>,
    /// Listen backlog (pending connections the kernel queues before accept).
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// How long a client connection may sit without sending a complete request head:
    /// both the idle time between keep-alive requests and a slow first request.
    #[serde(default = "default_client_keepalive")]
    pub keepalive_timeout: HumanDuration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Exact host (`api.example.com`), wildcard (`*.example.com`: any subdomain,
    /// not the apex) or `*` (any host). Case-insensitive; a port in Host is ignored.
    pub host: String,
    /// Only requests whose path starts with this prefix (default `/`). Longest wins.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    pub backend: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: String,
    /// `host:port` or `unix:/path`. Hostnames are resolved when a connection is opened.
    pub servers: Vec<ServerAddr>,
    /// TLS towards the servers. Absent = plain HTTP; `tls: {}` = TLS with defaults.
    #[serde(default)]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub pool: Pool,
    #[serde(default)]
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Server name sent in SNI and verified; default: the server's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the certificate chain and name. Turning this off is logged loudly.
    #[serde(default = "yes")]
    pub verify: bool,
    /// PEM bundle of CAs to trust instead of the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            sni: None,
            verify: true,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Idle connections kept per server (beyond that, a returned connection is closed).
    #[serde(default = "default_max_idle")]
    pub max_idle_per_server: usize,
    /// An idle connection unused this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// A connection is retired after this many requests; 0 = unlimited.
    #[serde(default = "default_max_requests")]
    pub max_requests_per_connection: u64,
    /// A connection is retired (not cut mid-request) after this age; 0s = unlimited.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: HumanDuration,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            max_idle_per_server: default_max_idle(),
            idle_timeout: default_idle_timeout(),
            max_requests_per_connection: default_max_requests(),
            max_lifetime: default_max_lifetime(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake.
    #[serde(default = "default_connect")]
    pub connect: HumanDuration,
    /// From the request being sent to the response head arriving.
    #[serde(default = "default_response")]
    pub response: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect(),
            response: default_response(),
        }
    }
}

/// Where a listener binds.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum BindAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl TryFrom<String> for BindAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/run/sluice/egress.sock".into());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>().map(Self::Tcp).map_err(|_| {
            format!("invalid bind address {s:?}: expected ip:port (e.g. 127.0.0.1:8080, [::1]:8080) or unix:/path")
        })
    }
}

impl fmt::Debug for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// An upstream server.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum ServerAddr {
    /// A host name or IP literal (without brackets) and a port.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

impl ServerAddr {
    /// The host part, for SNI and `Host` defaults; `None` for Unix sockets.
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::Tcp { host, .. } => Some(host),
            Self::Unix(_) => None,
        }
    }
}

impl TryFrom<String> for ServerAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/run/app.sock".into());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if s.contains("://") {
            return Err(format!(
                "invalid server {s:?}: write host:port without a scheme (TLS is set by the backend's `tls`)"
            ));
        }
        let bad = || {
            format!("invalid server {s:?}: expected host:port (e.g. api.example.com:443, [::1]:8443) or unix:/path")
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || port == 0 || host.contains(['/', ' ']) {
            return Err(bad());
        }
        Ok(Self::Tcp {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Debug for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A Unix file mode written as an octal string ("0660").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FileMode(pub u32);

impl TryFrom<String> for FileMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let digits = s.strip_prefix("0o").unwrap_or(&s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o777 => Ok(Self(m)),
            _ => Err(format!(
                "invalid mode {s:?}: expected an octal file mode like \"0660\""
            )),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_log_level() -> String {
    "info".into()
}
fn default_drain() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_backlog() -> u32 {
    1024
}
fn default_client_keepalive() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_prefix() -> String {
    "/".into()
}
fn default_max_idle() -> usize {
    64
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_max_requests() -> u64 {
    10_000
}
fn default_max_lifetime() -> HumanDuration {
    HumanDuration::secs(3600)
}
fn default_connect() -> HumanDuration {
    HumanDuration::secs(2)
}
fn default_response() -> HumanDuration {
    HumanDuration::secs(30)
}
