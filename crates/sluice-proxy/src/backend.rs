//! A backend at run time: its current servers (static, or from DNS), each with its
//! pool key, in-flight count and health; how to pick one; its limits, queue, retry
//! budget and metric handles.

use crate::budget::RetryBudget;
use crate::clock::now_ms;
use crate::h1_conn::H1;
use crate::metrics::{BackendMetrics, Metrics, Name, SeriesGuard, ServerLabels};
use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::gauge::Gauge;
use rustls::pki_types::ServerName;
use sluice_config::{Balance, HashOn, Protocol, ServerAddr};
use sluice_net::{Connector, Endpoint, Target};
use sluice_pool::Limiter;
use sluice_pool::{IdleList, Policy, Pool, PoolKey};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Weak;
use std::time::Duration;
use tokio::task::AbortHandle;

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
    pub(crate) hash_id: u64,
    /// Its share of the backend's traffic, relative to the others' (1 = equal).
    pub weight: u32,
    pub metrics: ServerMetrics,
    /// This server's idle HTTP/1.1 connections (the pool's list for its key).
    pub idle: Arc<IdleList<H1>>,
    /// Connections opened to it, and requests that reused one (for `/pools`).
    pub opened: AtomicU64,
    pub reused: AtomicU64,
}

pub struct ServerMetrics {
    pub inflight: Gauge,
    pub healthy: Gauge,
    /// Removes the server's series once the last server with its labels is gone.
    _series: SeriesGuard,
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
    /// `weights` of the config (1 unless given), for each address of this entry.
    pub weight: u32,
}

impl ServerTemplate {
    pub fn new(
        spec: ServerAddr,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        tls_identity: String,
        host: String,
        weight: u32,
    ) -> Self {
        Self {
            spec,
            tls,
            tls_identity,
            host,
            weight,
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

    /// The server for `endpoint`: the one already known by its identity (backend, pool
    /// key, check host), so its state survives DNS changes and reloads; or a new one.
    pub fn build(
        &self,
        endpoint: Endpoint,
        backend: &Name,
        catalog: &ServerCatalog,
    ) -> Arc<Server> {
        let key = PoolKey::new(format!("{endpoint}|{}", self.tls_identity));
        // The weight is part of who a server is: a reload that changes it makes a
        // new server (the pooled connections stay: they are the pool key's).
        let id = (
            backend.as_str().to_string(),
            key.clone(),
            self.host.clone(),
            self.weight,
        );
        let mut known = catalog.servers.lock();
        if let Some(s) = known.get(&id).and_then(Weak::upgrade) {
            s.removed.store(false, Ordering::Relaxed);
            return s;
        }
        if known.len() >= 64 && known.len() >= 2 * catalog.live_hint.load(Ordering::Relaxed) {
            known.retain(|_, w| w.strong_count() > 0);
            catalog.live_hint.store(known.len(), Ordering::Relaxed);
        }
        let server = self.create(endpoint, key, backend, catalog);
        known.insert(id, Arc::downgrade(&server));
        server
    }

    fn create(
        &self,
        endpoint: Endpoint,
        key: PoolKey,
        backend: &Name,
        catalog: &ServerCatalog,
    ) -> Arc<Server> {
        let metrics = &catalog.metrics;
        let label = Name::new(&endpoint.to_string());
        let origin = self.hostname().map(|_| Name::new(&self.spec.to_string()));
        let labels = ServerLabels {
            backend: backend.clone(),
            server: label.clone(),
        };
        let series = metrics.server_series(&labels);
        let server = Server {
            idle: catalog.h1.list(&key),
            opened: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            key,
            target: Target {
                endpoint,
                tls: self.tls.clone(),
            },
            hash_id:
                std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(
                )
                .hash_one(label.as_str()),
            weight: self.weight,
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
                _series: series,
            },
        };
        server.metrics.healthy.set(1);
        Arc::new(server)
    }
}

/// Every server that exists, by identity (backend, pool key, check host), and what
/// servers are built from. Outlives config generations: a new generation finds its
/// servers here, with their health, ejection and in-flight counts.
pub struct ServerCatalog {
    servers: Mutex<HashMap<ServerId, Weak<Server>>>,
    /// Entries alive at the last sweep: the map is swept when it doubles.
    live_hint: AtomicUsize,
    pub metrics: Metrics,
    pub h1: Pool<H1>,
}

type ServerId = (String, PoolKey, String, u32);

impl ServerCatalog {
    pub fn new(metrics: Metrics, h1: Pool<H1>) -> Self {
        Self {
            servers: Mutex::new(HashMap::new()),
            live_hint: AtomicUsize::new(0),
            metrics,
            h1,
        }
    }
}

/// Per-backend settings the data path reads.
pub struct Settings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub response_body_idle: Duration,
    /// `timeouts.tunnel`: the idle timeout of an upgraded connection.
    pub tunnel_idle: Duration,
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
    pub(crate) next: AtomicUsize,
    /// Some server's weight is not 1: balancing follows the weights.
    pub(crate) weighted: bool,
    pub metrics: BackendMetrics,
    pub catalog: Arc<ServerCatalog>,
    /// The backend's definition, canonical: equal definitions in two generations
    /// mean the same backend (the object is reused, nothing restarts).
    pub definition: String,
    /// Its background work (DNS refresh, health checks); aborted when it leaves.
    tasks: Mutex<Vec<AbortHandle>>,
    /// A forward listener's destination: the policy its resolved addresses pass.
    pub egress: std::sync::OnceLock<crate::egress::Egress>,
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
        catalog: Arc<ServerCatalog>,
        definition: String,
    ) -> Self {
        let entries: Vec<Vec<Arc<Server>>> = templates
            .iter()
            .map(|t| {
                t.static_endpoint()
                    .map(|e| vec![t.build(e, &name, &catalog)])
                    .unwrap_or_default()
            })
            .collect();
        let flat: Arc<[Arc<Server>]> = entries.iter().flatten().cloned().collect();
        let weighted = templates.iter().any(|t| t.weight != 1);
        Self {
            weighted,
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
            catalog,
            definition,
            tasks: Mutex::new(Vec::new()),
            egress: std::sync::OnceLock::new(),
        }
    }

    /// Keeps a handle on background work of this backend, to stop it with [`Backend::stop`].
    pub fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Stops the backend's background work (it left the config, or was replaced).
    pub fn stop(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// Background tasks still running (for tests of reloads).
    pub fn running_tasks(&self) -> usize {
        self.tasks
            .lock()
            .iter()
            .filter(|t| !t.is_finished())
            .count()
    }

    /// Takes over the current addresses of an older version of this backend for the
    /// entries both have (the same host name), so a changed backend serves at once,
    /// before its own first DNS lookup.
    pub fn adopt_endpoints(&self, old: &Backend) {
        for (i, t) in self.templates.iter().enumerate() {
            if t.hostname().is_none() {
                continue;
            }
            let Some(j) = old.templates.iter().position(|o| o.spec == t.spec) else {
                continue;
            };
            let endpoints: Vec<Endpoint> = old
                .entries
                .lock()
                .get(j)
                .map(|e| e.iter().map(|s| s.target.endpoint.clone()).collect())
                .unwrap_or_default();
            if !endpoints.is_empty() {
                self.set_endpoints(i, &endpoints);
            }
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
                    let s = template.build(e.clone(), &self.name, &self.catalog);
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
