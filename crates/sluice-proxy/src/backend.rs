//! A backend at run time: its current servers (static, or from DNS), each with its
//! pool key, in-flight count and health; how to pick one; its limits, queue, retry
//! budget and metric handles.

use crate::budget::RetryBudget;
use crate::clock::now_ms;
use crate::metrics::{BackendMetrics, Metrics, Name, ServerLabels};
use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::gauge::Gauge;
use rustls::pki_types::ServerName;
use sluice_config::{Balance, HashOn, Protocol, ServerAddr};
use sluice_net::{Connector, Endpoint, Target};
use sluice_pool::Limiter;
use sluice_pool::{Policy, PoolKey};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An open in progress that several requests wait for; each gets its outcome.
pub type SharedOpen = futures_util::future::Shared<
    futures_util::future::BoxFuture<'static, Result<(), crate::error::ProxyError>>,
>;

/// The HTTP/2 open a server has in progress. Its task removes it when it ends, so a
/// request that comes later starts afresh even if nobody waited for the outcome.
pub struct H2Opening {
    pub id: u64,
    pub outcome: SharedOpen,
}

/// What a server was found to speak (for `protocol: auto`).
pub const PROTO_UNKNOWN: u8 = 0;
pub const PROTO_H1: u8 = 1;
pub const PROTO_H2: u8 = 2;

/// One address of a backend: what it is, and what we know about it right now.
pub struct Server {
    pub target: Target,
    /// Everything that makes connections to this server non-interchangeable.
    pub key: PoolKey,
    /// The address (`10.0.0.1:443`, `unix:/path`), for logs and metrics.
    pub label: Name,
    /// The configured name it came from (`api.example.com:443`), if different.
    pub origin: Option<Name>,
    /// Host name for the active check's Host header.
    pub host: String,
    /// Requests in flight (queued requests not included).
    pub inflight: AtomicUsize,
    pub health: HealthState,
    /// Left the DNS answer: takes no new requests; its connections are not pooled again.
    pub removed: AtomicBool,
    /// `PROTO_*`: what the server negotiated last (for `auto`).
    pub proto: AtomicU8,
    /// The HTTP/2 connection being opened, if any: every request that needs one waits
    /// for this open instead of starting its own.
    pub h2_opening: Mutex<Option<H2Opening>>,
    /// A warm-pool top-up is running.
    pub warming: AtomicBool,
    /// Stable per-address value for rendezvous hashing.
    hash_id: u64,
    pub metrics: ServerMetrics,
}

#[derive(Clone)]
pub struct ServerMetrics {
    pub inflight: Gauge,
    pub healthy: Gauge,
}

/// Health from two sources: active checks (up/down with rise/fall) and passive
/// ejection from live traffic (timed, with back-off).
#[derive(Default)]
pub struct HealthState {
    pub active_down: AtomicBool,
    /// Consecutive failures seen by live traffic.
    pub failures: AtomicU32,
    /// Ejected until this many ms after [`epoch`]; 0 = not ejected.
    pub ejected_until_ms: AtomicU64,
    /// Ejections in a row (each doubles the next ejection time).
    pub ejections: AtomicU32,
}

impl Server {
    /// Takes new requests: not removed, not down by checks, not ejected.
    /// (The clock is read only while an ejection is pending.)
    pub fn available(&self) -> bool {
        if self.removed.load(Ordering::Relaxed) || self.health.active_down.load(Ordering::Relaxed) {
            return false;
        }
        let until = self.health.ejected_until_ms.load(Ordering::Relaxed);
        until == 0 || until <= now_ms()
    }

    /// Clears an ejection whose time has run out (so requests skip the clock again).
    pub fn expire_ejection(&self) {
        let until = self.health.ejected_until_ms.load(Ordering::Relaxed);
        if until != 0 && until <= now_ms() {
            self.health.ejected_until_ms.store(0, Ordering::Relaxed);
        }
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Updates the health gauge from the current state.
    pub fn refresh_health_gauge(&self) {
        self.metrics.healthy.set(i64::from(self.available()));
    }
}

/// How servers of one configured entry are built (its TLS, pool-key parts).
pub struct ServerTemplate {
    pub spec: ServerAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    tls_identity: String,
    host: String,
}

impl ServerTemplate {
    pub fn new(
        spec: ServerAddr,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        tls_identity: String,
        host: String,
    ) -> Self {
        Self {
            spec,
            tls,
            tls_identity,
            host,
        }
    }

    /// Needs DNS (a host name, not an IP literal or a Unix path).
    pub fn hostname(&self) -> Option<(&str, u16)> {
        match &self.spec {
            ServerAddr::Tcp { host, port } if host.parse::<std::net::IpAddr>().is_err() => {
                Some((host, *port))
            }
            _ => None,
        }
    }

    /// The endpoint of a spec that needs no DNS.
    pub fn static_endpoint(&self) -> Option<Endpoint> {
        match &self.spec {
            ServerAddr::Unix(p) => Some(Endpoint::Unix(p.clone())),
            ServerAddr::Tcp { host, port } => host
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| Endpoint::Tcp(SocketAddr::new(ip, *port))),
        }
    }

    pub fn build(&self, endpoint: Endpoint, backend: &Name, metrics: &Metrics) -> Arc<Server> {
        let label = Name::new(&endpoint.to_string());
        let origin = self.hostname().map(|_| Name::new(&self.spec.to_string()));
        let labels = ServerLabels {
            backend: backend.clone(),
            server: label.clone(),
        };
        let server = Server {
            key: PoolKey::new(format!("{endpoint}|{}", self.tls_identity)),
            target: Target {
                endpoint,
                tls: self.tls.clone(),
            },
            hash_id:
                std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(
                )
                .hash_one(label.as_str()),
            label,
            origin,
            host: self.host.clone(),
            inflight: AtomicUsize::new(0),
            health: HealthState::default(),
            removed: AtomicBool::new(false),
            proto: AtomicU8::new(PROTO_UNKNOWN),
            h2_opening: Mutex::new(None),
            warming: AtomicBool::new(false),
            metrics: ServerMetrics {
                inflight: metrics.server_inflight.get_or_create(&labels).clone(),
                healthy: metrics.server_healthy.get_or_create(&labels).clone(),
            },
        };
        server.metrics.healthy.set(1);
        Arc::new(server)
    }
}

/// Per-backend settings the data path reads.
pub struct Settings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub response_body_idle: Duration,
    pub queue_timeout: Duration,
    pub policy: Policy,
    pub protocol: Protocol,
    pub tls: bool,
    pub max_streams: usize,
    pub h2_ping: Option<(Duration, Duration)>,
    pub min_idle: usize,
    pub balance: Balance,
    pub hash_on: Option<HashOn>,
    pub retry_attempts: u32,
    pub retry_non_idempotent: bool,
    pub passive: Option<sluice_config::PassiveHealth>,
    pub check: Option<sluice_config::HealthCheck>,
    pub dns: sluice_config::Dns,
}

pub struct Backend {
    pub name: Name,
    pub settings: Settings,
    pub templates: Vec<ServerTemplate>,
    /// Servers per template (index = position in the config's `servers`).
    entries: Mutex<Vec<Vec<Arc<Server>>>>,
    /// All current servers, flattened: what requests pick from.
    servers: RwLock<Arc<[Arc<Server>]>>,
    /// The last DNS error while some host name has never resolved.
    pub dns_error: Mutex<Option<String>>,
    pub connector: Connector,
    pub limiter: Limiter<Backend>,
    pub budget: RetryBudget,
    next: AtomicUsize,
    pub metrics: BackendMetrics,
    pub registry: Metrics,
}

impl Backend {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: Name,
        settings: Settings,
        templates: Vec<ServerTemplate>,
        connector: Connector,
        limiter: Limiter<Backend>,
        budget: RetryBudget,
        metrics: BackendMetrics,
        registry: Metrics,
    ) -> Self {
        let entries: Vec<Vec<Arc<Server>>> = templates
            .iter()
            .map(|t| {
                t.static_endpoint()
                    .map(|e| vec![t.build(e, &name, &registry)])
                    .unwrap_or_default()
            })
            .collect();
        let flat: Arc<[Arc<Server>]> = entries.iter().flatten().cloned().collect();
        Self {
            name,
            settings,
            templates,
            entries: Mutex::new(entries),
            servers: RwLock::new(flat),
            dns_error: Mutex::new(None),
            connector,
            limiter,
            budget,
            next: AtomicUsize::new(0),
            metrics,
            registry,
        }
    }

    /// The current servers (a cheap snapshot).
    pub fn servers(&self) -> Arc<[Arc<Server>]> {
        self.servers.read().clone()
    }

    /// Replaces the servers of config entry `index` with these endpoints. Servers whose
    /// endpoint stays keep their state; new ones are returned (to start their checks);
    /// those that left are marked removed and returned so their idle connections can
    /// be closed.
    pub fn set_endpoints(
        &self,
        index: usize,
        endpoints: &[Endpoint],
    ) -> (Vec<Arc<Server>>, Vec<Arc<Server>>) {
        let Some(template) = self.templates.get(index) else {
            return (Vec::new(), Vec::new());
        };
        let mut entries = self.entries.lock();
        let Some(current) = entries.get_mut(index) else {
            return (Vec::new(), Vec::new());
        };
        let mut next = Vec::with_capacity(endpoints.len());
        let mut added = Vec::new();
        for e in endpoints {
            match current.iter().find(|s| &s.target.endpoint == e) {
                Some(s) => next.push(s.clone()),
                None => {
                    let s = template.build(e.clone(), &self.name, &self.registry);
                    added.push(s.clone());
                    next.push(s);
                }
            }
        }
        let removed: Vec<_> = current
            .iter()
            .filter(|s| !endpoints.contains(&s.target.endpoint))
            .cloned()
            .collect();
        for s in &removed {
            s.removed.store(true, Ordering::Relaxed);
            s.metrics.healthy.set(0);
        }
        *current = next;
        let flat: Arc<[Arc<Server>]> = entries.iter().flatten().cloned().collect();
        *self.servers.write() = flat;
        (added, removed)
    }

    /// Chooses a server among those `usable`, by the backend's balancing rule.
    pub fn pick(
        &self,
        servers: &[Arc<Server>],
        usable: impl Fn(&Server) -> bool,
        hash: Option<u64>,
    ) -> Option<Arc<Server>> {
        let n = servers.len();
        match (self.settings.balance, hash) {
            _ if n == 0 => None,
            _ if n == 1 => servers.first().filter(|s| usable(s)).cloned(),
            (Balance::RoundRobin, _) => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &servers[(start + i) % n])
                    .find(|s| usable(s))
                    .cloned()
            }
            (Balance::Hash, Some(key)) => servers
                .iter()
                .filter(|s| usable(s))
                .max_by_key(|s| mix(key ^ s.hash_id))
                .cloned(),
            (Balance::LeastRequest, _) => self.least(servers, &usable),
            (Balance::P2c | Balance::Hash, _) => {
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let (sa, sb) = (&servers[a], &servers[b]);
                match (usable(sa), usable(sb)) {
                    (true, true) if sb.inflight() < sa.inflight() => Some(sb.clone()),
                    (true, _) => Some(sa.clone()),
                    (false, true) => Some(sb.clone()),
                    (false, false) => self.least(servers, &usable),
                }
            }
        }
    }

    /// The usable server with the fewest requests in flight; ties rotate.
    fn least(
        &self,
        servers: &[Arc<Server>],
        usable: &impl Fn(&Server) -> bool,
    ) -> Option<Arc<Server>> {
        let n = servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &servers[(start + i) % n])
            .filter(|s| usable(s))
            .min_by_key(|s| s.inflight())
            .cloned()
    }

    /// The hash key of a request for `balance: hash`.
    pub fn hash_key(
        &self,
        headers: &http::HeaderMap,
        client: Option<std::net::IpAddr>,
    ) -> Option<u64> {
        let on = self.settings.hash_on.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match on {
            HashOn::ClientIp => client?.hash(&mut h),
            HashOn::Header(name) => headers.get(name.as_str())?.as_bytes().hash(&mut h),
        }
        Some(h.finish())
    }
}

/// A 64-bit finaliser (splitmix64), so rendezvous weights are well spread.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
