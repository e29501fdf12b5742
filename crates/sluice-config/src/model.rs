//! The schema. Field docs here are the source for the README's config reference.

pub use crate::addr::{BindAddr, FileMode, ServerAddr};
use crate::duration::HumanDuration;
pub use crate::duration::HumanDuration as Duration;
use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, path::PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    #[serde(default)]
    pub limits: Limits,
    /// DNS for server host names; absent = the system's (`/etc/resolv.conf`, `/etc/hosts`).
    #[serde(default)]
    pub resolver: Option<Resolver>,
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub backends: Vec<Backend>,
    /// How sluice follows its own config file.
    #[serde(default)]
    pub config: ConfigSource,
    #[serde(default)]
    pub sources: crate::Sources,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSource {
    /// Reload when the config file changes (written in place, replaced by rename, or
    /// a symlink swapped as Kubernetes ConfigMaps do). SIGHUP and `POST /reload`
    /// reload either way.
    #[serde(default)]
    pub watch: bool,
    /// Quiet time after the last file event before reloading, so an editor's or a
    /// deploy tool's burst of writes is read once, complete.
    #[serde(default = "default_watch_debounce")]
    pub watch_debounce: HumanDuration,
}

impl Default for ConfigSource {
    fn default() -> Self {
        Self {
            watch: false,
            watch_debounce: default_watch_debounce(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Worker threads for the data path; 0 = one per CPU. 1 runs a single-threaded reactor.
    #[serde(default)]
    pub workers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `host:port` or `unix:/path`.
    pub bind: BindAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Open client connections across all listeners. 0 = unlimited.
    #[serde(default)]
    pub max_client_connections: usize,
    /// At `max_client_connections`: `shed` (default) accepts each new client only to
    /// answer a fast `503` with `sluice-error: overloaded` and close (a TLS listener
    /// closes without a handshake); `wait` stops accepting, so new clients wait in the
    /// kernel's listen backlog, and beyond it are dropped by the kernel unanswered.
    #[serde(default)]
    pub when_full: WhenFull,
    /// After shedding clients (`when_full: shed`) in every second for this long,
    /// `/readyz` answers 503 until a second passes without any; `/healthz` never
    /// does. `0s` (default): readiness ignores load.
    #[serde(default)]
    pub unready_after: crate::duration::HumanDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenFull {
    #[default]
    Shed,
    Wait,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resolver {
    /// Name servers as `ip:port` (UDP, with TCP fallback), e.g. `10.96.0.10:53`.
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout.
    #[serde(default = "default_dns_timeout")]
    pub timeout: HumanDuration,
    /// Tries per query.
    #[serde(default = "default_dns_attempts")]
    pub attempts: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    /// `host:port` or `unix:/path/to.sock`.
    pub bind: BindAddr,
    /// File mode of a Unix socket, octal string like "0660" (default: left to the umask).
    #[serde(default)]
    pub mode: Option<FileMode>,
    /// Listen backlog (pending connections the kernel queues before accept). Absent:
    /// the kernel's `net.core.somaxconn`, read at start (a larger value would be cut
    /// to it silently; sluice warns instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    /// How long an idle keep-alive connection (no request started) stays open; then it
    /// is closed without a response.
    #[serde(default = "default_client_keepalive")]
    pub keepalive_timeout: HumanDuration,
    /// Longest HTTP/1.1 request line (method, target and version), in bytes; a longer
    /// one gets 414 `uri_too_long`.
    #[serde(default = "default_max_request_line")]
    pub max_request_line: u32,
    /// Largest HTTP/1.1 request head (request line and headers), in bytes; a larger one
    /// gets 431 `request_header_too_large`. HTTP/2 clients are bounded by
    /// `http2_settings.max_header_list_size` instead.
    #[serde(default = "default_max_request_head")]
    pub max_request_head: u32,
    /// Most headers in a request (either protocol); one more gets 431
    /// `request_header_too_large`.
    #[serde(default = "default_max_request_headers")]
    pub max_request_headers: u32,
    /// A request head must be complete within this, counted from the accept for the
    /// first request and from its first byte for later ones; else 408.
    #[serde(default = "default_request_header_timeout")]
    pub request_header_timeout: HumanDuration,
    /// The longest pause while a request body arrives (reset by every chunk); else 408
    /// (or the connection is closed, if the response has started).
    #[serde(default = "default_request_body_idle_timeout")]
    pub request_body_idle_timeout: HumanDuration,
    /// The longest a response write may wait for a client that does not read (reset
    /// by progress); then the connection is reset.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: HumanDuration,
    /// `false` (default): a client that shuts down its sending side (FIN) while its
    /// request is in flight is taken as gone and the request is cancelled, like NGINX
    /// and Envoy do. `true`: it still gets its answer (`nc -N`, some HTTP/1.0 scripts);
    /// a client that really left is then only noticed by the timeouts.
    #[serde(default)]
    pub half_close: bool,
    /// Makes this a forward-proxy listener (see [`crate::Forward`]).
    #[serde(default)]
    pub forward: Option<crate::Forward>,
    /// Terminate TLS here (see [`crate::ListenerTls`]).
    #[serde(default)]
    pub tls: Option<crate::ListenerTls>,
    /// HTTP/2 from clients: offered by ALPN (`h2`, then `http/1.1`) on a TLS listener,
    /// where it is on unless `false`; on a plain listener `true` accepts h2c with
    /// prior knowledge beside HTTP/1.1 (off unless `true`: a plain listener is usually
    /// an app's local egress point, and h2c there is rare).
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(default)]
    pub http2_settings: crate::Http2Settings,
}

impl Listener {
    /// Whether this listener speaks HTTP/2 to clients.
    pub fn http2_enabled(&self) -> bool {
        self.http2.unwrap_or(self.tls.is_some())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Exact host (`api.example.com`), wildcard (`*.example.com`: any subdomain,
    /// not the apex) or `*` (any host). Case-insensitive; a port in Host is ignored.
    pub host: String,
    /// Only requests whose path starts with this prefix (default `/`). Longest wins.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    pub backend: String,
    /// Only clients whose verified TLS identity (mTLS: the certificate's URI SAN,
    /// else DNS SAN, else CN) is listed may use this route; an entry ending in `*`
    /// matches by prefix (`spiffe://corp.test/ns/billing/*`). Empty (default): anyone.
    /// Others get 403 `client_identity_denied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_identities: Vec<String>,
    /// Only requests carrying each of these headers with exactly this value (names
    /// case-insensitive, values case-sensitive). Among routes of one host and path
    /// prefix, the one with the most headers that all match wins; empty (default):
    /// any request.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Largest request body, in bytes, this route forwards: a declared
    /// `Content-Length` above it gets 413 `request_body_too_large` before anything is
    /// sent; a chunked body that grows past it is cut off upstream and answered 413
    /// while no response has begun. Absent (default): no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: String,
    /// `host:port` or `unix:/path`. Hostnames are resolved when a connection is opened.
    pub servers: Vec<ServerAddr>,
    /// Relative shares of traffic per server (`{"canary.internal:443": 1,
    /// "stable.internal:443": 9}`); a server not listed weighs 1. Every address a
    /// host name resolves to gets its server's weight. 1–1000.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub weights: std::collections::BTreeMap<ServerAddr, u32>,
    /// TLS towards the servers. Absent = plain HTTP; `tls: {}` = TLS with defaults.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Upstream HTTP version: `http1`, `http2` (h2 over TLS via ALPN, or h2c prior
    /// knowledge on plain TCP) or `auto` (offer both in ALPN, use what the server picks;
    /// plain TCP means `http1`).
    #[serde(default)]
    pub protocol: Protocol,
    /// How a server is chosen for each request.
    #[serde(default)]
    pub balance: Balance,
    /// For `balance: hash`: `client_ip` or `header:<Name>` (requests without the
    /// header are spread like `least_request`).
    #[serde(default)]
    pub hash_on: Option<HashOn>,
    #[serde(default)]
    pub pool: Pool,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: BackendLimits,
    /// Local addresses new connections are bound to, in turn (each IP has its own
    /// ~28k ephemeral ports per destination). Bound with IP_BIND_ADDRESS_NO_PORT so
    /// ports are chosen at connect time and shared across destinations.
    #[serde(default)]
    pub source_addresses: Vec<std::net::IpAddr>,
    #[serde(default)]
    pub tcp: TcpOptions,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub retries: Retries,
    /// Opt-in egress policy on this backend's server addresses (static ones checked at
    /// load, resolved ones on every lookup), as for forward listeners.
    #[serde(default)]
    pub policy: Option<crate::PolicyConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http1,
    Http2,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    RoundRobin,
    /// The available server with the fewest requests in flight (ties rotate). The
    /// default: it measured best in bench/balance (see bench/RESULTS.md).
    #[default]
    LeastRequest,
    /// Power of two choices: two random servers, the one with fewer requests in flight.
    P2c,
    /// Rendezvous (highest random weight) hashing on `hash_on`: a key keeps its
    /// server while that server is available; only its keys move when it leaves.
    Hash,
}

/// What `balance: hash` hashes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum HashOn {
    ClientIp,
    Header(String),
}

impl From<HashOn> for String {
    fn from(h: HashOn) -> Self {
        match h {
            HashOn::ClientIp => "client_ip".into(),
            HashOn::Header(name) => format!("header:{name}"),
        }
    }
}

impl TryFrom<String> for HashOn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "client_ip" {
            return Ok(Self::ClientIp);
        }
        match s.strip_prefix("header:") {
            Some(h)
                if !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(Self::Header(h.to_ascii_lowercase()))
            }
            _ => Err(format!(
                "invalid hash_on {s:?}: expected client_ip or header:<Name>"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendLimits {
    /// Requests in flight per server (each HTTP/1.1 request holds one connection, so
    /// this also caps connections in use). Requests over it wait in the queue. 0 = unlimited.
    #[serde(default)]
    pub maxconn_per_server: usize,
    /// Requests in flight across all servers of the backend. 0 = unlimited.
    #[serde(default)]
    pub maxconn: usize,
    /// Requests that may wait in the backend's FIFO queue; one more gets 503 `queue_full`.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
}

impl Default for BackendLimits {
    fn default() -> Self {
        Self {
            maxconn_per_server: 0,
            maxconn: 0,
            max_queue: default_max_queue(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpOptions {
    /// TCP_NODELAY on upstream sockets.
    #[serde(default = "yes")]
    pub nodelay: bool,
    /// TCP keepalive: idle time before the first probe; 0s = off.
    #[serde(default = "default_keepalive_idle")]
    pub keepalive_idle: HumanDuration,
    /// Time between keepalive probes.
    #[serde(default = "default_keepalive_interval")]
    pub keepalive_interval: HumanDuration,
    /// Unanswered probes before the connection is dropped.
    #[serde(default = "default_keepalive_count")]
    pub keepalive_count: u32,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            nodelay: true,
            keepalive_idle: default_keepalive_idle(),
            keepalive_interval: default_keepalive_interval(),
            keepalive_count: default_keepalive_count(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// A record's TTL is raised to at least this before the next lookup.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: HumanDuration,
    /// ... and lowered to at most this.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: HumanDuration,
    /// Wait between lookups after one failed (the last good addresses stay in use).
    #[serde(default = "default_dns_retry")]
    pub retry_interval: HumanDuration,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            min_ttl: default_min_ttl(),
            max_ttl: default_max_ttl(),
            retry_interval: default_dns_retry(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Active HTTP checks; absent = none.
    #[serde(default)]
    pub check: Option<HealthCheck>,
    /// Passive ejection from live traffic; absent = none.
    #[serde(default)]
    pub passive: Option<PassiveHealth>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Path requested with GET; 2xx and 3xx pass.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Host header of the check; default: the TLS name or the server's host.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_health_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_health_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive passes that bring a down server back.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take a server down.
    #[serde(default = "default_fall")]
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealth {
    /// Consecutive failures (connect errors, and 5xx if `on_5xx`) that eject a server.
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// Count 5xx responses as failures.
    #[serde(default = "yes")]
    pub on_5xx: bool,
    /// First ejection lasts this long; each further one in a row doubles it.
    #[serde(default = "default_ejection")]
    pub ejection_time: HumanDuration,
    /// Cap of the doubling.
    #[serde(default = "default_max_ejection")]
    pub max_ejection_time: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Retries per request (0 = none beyond the stale-connection retry, which is always on).
    #[serde(default = "default_retry_attempts")]
    pub attempts: u32,
    /// Also replay non-idempotent requests (POST, PATCH) that were sent on a pooled
    /// connection the server closed. Connect failures are retried for every method:
    /// nothing was sent.
    #[serde(default)]
    pub non_idempotent: bool,
    #[serde(default)]
    pub budget: RetryBudget,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: default_retry_attempts(),
            non_idempotent: false,
            budget: RetryBudget::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries allowed as a share of requests over the last 10 s.
    #[serde(default = "default_budget_ratio")]
    pub ratio: f64,
    /// Retries per second always allowed, so quiet backends can still retry.
    #[serde(default = "default_budget_min")]
    pub min_per_second: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: default_budget_ratio(),
            min_per_second: default_budget_min(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Hash)]
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Hash)]
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
    /// Connections kept open and TLS-ready per server even when unused (opened at
    /// start and replaced as they retire), so a burst after a quiet period skips the
    /// handshakes. 0 = off.
    #[serde(default)]
    pub min_idle_per_server: usize,
    /// HTTP/2: streams per connection before another connection is opened (the
    /// server's SETTINGS_MAX_CONCURRENT_STREAMS also applies).
    #[serde(default = "default_max_streams")]
    pub max_concurrent_streams: usize,
    /// HTTP/2: PING sent after this long without frames; 0s = off.
    #[serde(default = "default_ping_interval")]
    pub h2_ping_interval: HumanDuration,
    /// HTTP/2: a PING unanswered this long closes the connection.
    #[serde(default = "default_ping_timeout")]
    pub h2_ping_timeout: HumanDuration,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            max_idle_per_server: default_max_idle(),
            idle_timeout: default_idle_timeout(),
            max_requests_per_connection: default_max_requests(),
            max_lifetime: default_max_lifetime(),
            min_idle_per_server: 0,
            max_concurrent_streams: default_max_streams(),
            h2_ping_interval: default_ping_interval(),
            h2_ping_timeout: default_ping_timeout(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake.
    #[serde(default = "default_connect")]
    pub connect: HumanDuration,
    /// From the request being sent to the response head arriving.
    #[serde(default = "default_response")]
    pub response: HumanDuration,
    /// Longest wait in the backend's queue for a free slot (see `limits`).
    #[serde(default = "default_queue")]
    pub queue: HumanDuration,
    /// The longest pause in a response body from the origin (reset by every chunk, so
    /// a long download that keeps moving is never cut); then the client connection is
    /// aborted.
    #[serde(default = "default_response_body_idle")]
    pub response_body_idle: HumanDuration,
    /// The longest a tunnel (an upgraded connection, e.g. a WebSocket) may sit with no
    /// byte moving in either direction; traffic either way resets it.
    #[serde(default = "default_tunnel")]
    pub tunnel: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect(),
            response: default_response(),
            queue: default_queue(),
            response_body_idle: default_response_body_idle(),
            tunnel: default_tunnel(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_log_level() -> String {
    "info".into()
}
fn default_watch_debounce() -> HumanDuration {
    HumanDuration::millis(200)
}
fn default_drain() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_client_keepalive() -> HumanDuration {
    HumanDuration::secs(60)
}
pub const DEFAULT_MAX_REQUEST_LINE: u32 = 16 * 1024;
pub const DEFAULT_MAX_REQUEST_HEAD: u32 = 64 * 1024;
pub const DEFAULT_MAX_REQUEST_HEADERS: u32 = 100;
fn default_max_request_line() -> u32 {
    DEFAULT_MAX_REQUEST_LINE
}
fn default_max_request_head() -> u32 {
    DEFAULT_MAX_REQUEST_HEAD
}
fn default_max_request_headers() -> u32 {
    DEFAULT_MAX_REQUEST_HEADERS
}
fn default_request_header_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_request_body_idle_timeout() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_send_timeout() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_response_body_idle() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_tunnel() -> HumanDuration {
    HumanDuration::secs(3600)
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
fn default_queue() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_max_queue() -> usize {
    1024
}
fn default_dns_timeout() -> HumanDuration {
    HumanDuration::secs(2)
}
fn default_dns_attempts() -> usize {
    2
}
fn default_keepalive_idle() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_keepalive_interval() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_keepalive_count() -> u32 {
    3
}
fn default_min_ttl() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_max_ttl() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_dns_retry() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_health_path() -> String {
    "/health".into()
}
fn default_health_interval() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_health_timeout() -> HumanDuration {
    HumanDuration::secs(2)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}
fn default_consecutive_failures() -> u32 {
    5
}
fn default_ejection() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_max_ejection() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_retry_attempts() -> u32 {
    1
}
fn default_budget_ratio() -> f64 {
    0.2
}
fn default_budget_min() -> u32 {
    10
}
fn default_max_streams() -> usize {
    100
}
fn default_ping_interval() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_ping_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
