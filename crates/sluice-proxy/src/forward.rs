//! Forward-proxy listeners on the data path: proxy authentication, the destination a
//! request names, and its on-demand backend (built from the listener's template,
//! pooled like any backend, reached over verified TLS when `originate_tls` names
//! it), checked against the policy before any lookup and on every resolved address.

use crate::backend::Backend;
use crate::build::{self, TlsCache};
use crate::cause::Cause;
use crate::clock;
use crate::dns;
use crate::egress::{self, Egress};
use crate::error::ProxyError;
use crate::metrics::{DestinationLabels, ForwardMetrics, Name};
use crate::registry::Registry;
use arc_swap::ArcSwap;
use base64::Engine;
use http::header::{HeaderMap, HOST, PROXY_AUTHORIZATION};
use http::request::Parts;
use parking_lot::Mutex;
use sluice_config::ConfigError;
use sluice_net::TlsClientConfig;
use sluice_policy::{Host, HostPattern, Policy, Verdict};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

/// One forward listener's state; it outlives reloads that leave its settings alone.
pub struct Forward {
    pub listener: Name,
    pub config: sluice_config::Forward,
    pub policy: Arc<Policy>,
    /// The `route` label of its requests: `forward:<listener>`.
    pub route: Name,
    originate: Vec<HostPattern>,
    /// `user:password` pairs of `auth.basic_file`, re-read when the file changes.
    credentials: ArcSwap<Vec<Vec<u8>>>,
    /// The file and its (modified time, length) when last read.
    credentials_file: Option<(PathBuf, Mutex<Stamp>)>,
    /// For originated TLS, built once (loading the system's roots is slow).
    tls: Option<(TlsClientConfig, u64)>,
    resolver: dns::Resolver,
    destinations: Mutex<HashMap<String, Arc<Destination>>>,
    metrics: ForwardMetrics,
    /// The config's `resolver` it was built with: a reload keeps this object (and its
    /// destinations) only if both are unchanged.
    pub resolver_config: Option<sluice_config::Resolver>,
}

struct Destination {
    backend: tokio::sync::OnceCell<Arc<Backend>>,
    /// `clock::now_ms` of its last request.
    last_used: AtomicU64,
}

impl Forward {
    /// `at` names the listener's `forward` in errors (`listeners[0].forward`).
    pub fn new(
        listener: &str,
        config: &sluice_config::Forward,
        resolver: Option<&sluice_config::Resolver>,
        metrics: &ForwardMetrics,
        (origin, at): (&str, &str),
    ) -> Result<Self, ConfigError> {
        let at = |field: &str, reason: String| ConfigError {
            file: origin.to_string(),
            field: format!("{at}.{field}"),
            reason,
        };
        let policy = config
            .policy
            .compile()
            .map_err(|e| at(&format!("policy.{}", e.field), e.reason))?;
        let originate = config
            .originate_tls
            .iter()
            .map(|p| HostPattern::parse(p).map_err(|e| at("originate_tls", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let credentials = match &config.auth {
            Some(a) => pairs(&a.basic_file).map_err(|e| at("auth.basic_file", e))?,
            None => Vec::new(),
        };
        let credentials_file = config
            .auth
            .as_ref()
            .map(|a| (a.basic_file.clone(), Mutex::new(file_stamp(&a.basic_file))));
        let tls = if originate.is_empty() {
            None
        } else {
            let t = tls_settings(config);
            let c = TlsClientConfig::new(&t, config.destination.protocol)
                .map_err(|e| at("destination.tls", e.to_string()))?;
            Some((c, build::ca_fingerprint(&t)))
        };
        let resolver_config = resolver;
        let resolver = dns::Resolver::new(resolver).map_err(|e| at("destination", e))?;
        Ok(Self {
            listener: Name::new(listener),
            config: config.clone(),
            policy: Arc::new(policy),
            route: Name::new(&format!("forward:{listener}")),
            originate,
            credentials: ArcSwap::from_pointee(credentials),
            credentials_file,
            tls,
            resolver,
            destinations: Mutex::new(HashMap::new()),
            metrics: metrics.clone(),
            resolver_config: resolver_config.cloned(),
        })
    }

    /// `Proxy-Authorization: Basic` against the credentials file, when there is one.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        if self.credentials_file.is_none() {
            return Ok(());
        }
        let given = headers
            .get(PROXY_AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            });
        let Some(given) = given else {
            return Err(ProxyError::new(
                Cause::ProxyAuthRequired,
                "this proxy needs Proxy-Authorization: Basic credentials",
            ));
        };
        // Every entry compared in full, so the time taken says nothing about which
        // user (or how much of a password) matched.
        let ok = self
            .credentials
            .load()
            .iter()
            .fold(false, |ok, c| ok | constant_time_eq(c, &given));
        if ok {
            Ok(())
        } else {
            Err(ProxyError::new(
                Cause::ProxyAuthRequired,
                "the proxy credentials are not valid",
            ))
        }
    }

    /// Re-reads the credentials file if it changed (maintenance loop, every second):
    /// users are added or removed without a reload. A file that no longer parses
    /// keeps the credentials last read, with a warning.
    pub fn refresh_credentials(&self) {
        let Some((path, stamp)) = &self.credentials_file else {
            return;
        };
        let now = file_stamp(path);
        {
            let mut last = stamp.lock();
            if *last == now {
                return;
            }
            *last = now;
        }
        match pairs(path) {
            Ok(c) => {
                tracing::info!(listener = %self.listener.as_str(), file = %path.display(), users = c.len(), "proxy credentials reloaded");
                self.credentials.store(Arc::new(c));
            }
            Err(e) => {
                tracing::warn!(listener = %self.listener.as_str(), error = %e, "proxy credentials file is not valid; keeping the credentials last read")
            }
        }
    }

    /// Counts a denial by `rule`, logs it, and makes the 403 that names it.
    pub fn denied(&self, host: &Host, port: u16, rule: &str, detail: &str) -> ProxyError {
        self.metrics
            .denied
            .get_or_create(&crate::metrics::PolicyLabels {
                listener: self.listener.clone(),
                rule: Name::new(rule),
            })
            .inc();
        if self.config.audit_log {
            tracing::info!(target: "audit", listener = %self.listener.as_str(), host = %host, port, address = "", decision = "deny", rule, "policy decision");
        }
        tracing::info!(listener = %self.listener.as_str(), host = %host, port, rule, "destination denied by policy");
        ProxyError::new(
            Cause::DeniedByPolicy,
            format!("{host}:{port} {detail}: denied by rule {rule}"),
        )
    }

    /// The check of `host:port`'s resolved addresses (for a destination's servers, or
    /// the address a `CONNECT` dials).
    pub fn egress(&self, host: &Host, port: u16) -> Egress {
        Egress::new(
            self.policy.clone(),
            Some((host.clone(), port)),
            self.listener.clone(),
            self.metrics.denied.clone(),
            self.config.audit_log,
        )
    }

    pub fn resolver(&self) -> &dns::Resolver {
        &self.resolver
    }

    /// The backend for `host:port`, created on first use (policy prechecked, name
    /// resolved and each address checked before anything connects). The policy of a
    /// listener never changes under it (a new policy is a new `Forward`), so a
    /// destination that exists has passed it: its next requests cost one map lookup.
    pub async fn destination(
        &self,
        registry: &Arc<Registry>,
        host: &Host,
        port: u16,
    ) -> Result<Arc<Backend>, ProxyError> {
        let key = format!("{host}:{port}");
        if let Some(b) = self.ready(&key) {
            return Ok(b);
        }
        let verdict = self.policy.precheck(host, port);
        match &verdict {
            Some(Verdict::Denied(why)) => {
                return Err(self.denied(host, port, &why.to_string(), "is not allowed"))
            }
            Some(v) => egress::audit(
                self.config.audit_log,
                &self.listener,
                host,
                port,
                host.ip(),
                v,
            ),
            None => {}
        }
        let dest = self.slot(&key)?;
        let backend = dest
            .backend
            .get_or_try_init(|| self.build(registry, host, port))
            .await?
            .clone();
        dest.touch();
        Ok(backend)
    }

    /// An existing destination's backend (marked used), if it is built.
    fn ready(&self, key: &str) -> Option<Arc<Backend>> {
        let d = self.destinations.lock().get(key).cloned()?;
        let b = d.backend.get()?.clone();
        d.touch();
        if self.config.audit_log {
            tracing::info!(target: "audit", listener = %self.listener.as_str(), destination = key, decision = "allow", rule = "checked when the destination was added", "policy decision");
        }
        Some(b)
    }

    /// The destination's entry, making room under `max_destinations` if it is new.
    fn slot(&self, key: &str) -> Result<Arc<Destination>, ProxyError> {
        let mut map = self.destinations.lock();
        if let Some(d) = map.get(key) {
            return Ok(d.clone());
        }
        if map.len() >= self.config.max_destinations {
            let oldest = map
                .iter()
                .filter(|(_, d)| d.idle())
                .min_by_key(|(_, d)| d.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    if let Some(d) = map.remove(&k) {
                        self.retire(&d);
                    }
                }
                None => {
                    return Err(ProxyError::new(
                        Cause::TooManyDestinations,
                        format!(
                        "listener {} already has {} destinations in use (forward.max_destinations)",
                        self.listener.as_str(),
                        map.len()
                    ),
                    ))
                }
            }
        }
        let d = Arc::new(Destination {
            backend: tokio::sync::OnceCell::new(),
            last_used: AtomicU64::new(clock::now_ms()),
        });
        map.insert(key.to_string(), d.clone());
        Ok(d)
    }

    /// The destination's backend: TLS and port 443 (for 80) when `originate_tls`
    /// names the host.
    async fn build(
        &self,
        registry: &Arc<Registry>,
        host: &Host,
        port: u16,
    ) -> Result<Arc<Backend>, ProxyError> {
        let tls = self.originate.iter().any(|p| p.matches(host));
        let upstream_port = if tls && port == 80 { 443 } else { port };
        let key = &format!("{host}:{upstream_port}{}", if tls { "+tls" } else { "" });
        let server_host = match host {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        };
        let name = format!("{}/{key}", self.listener.as_str());
        let cfg = self
            .config
            .backend_for(name, &server_host, upstream_port, tls);
        let mut cache = TlsCache::new();
        if let (Some(t), Some(c)) = (&cfg.tls, &self.tls) {
            cache.insert((t, cfg.protocol), c.clone());
        }
        let definition = format!("{:?}", sluice_config::canonical_backend(&cfg));
        let backend = build::backend(0, &cfg, registry, &mut cache, "forward", definition)
            .map_err(|e| ProxyError::new(Cause::UpstreamError, e.to_string()))?;
        let _ = backend.egress.set(self.egress(host, port));
        if let Host::Name(_) = host {
            dns::start(&self.resolver, &backend, registry).await;
        }
        self.gauge().inc();
        tracing::info!(listener = %self.listener.as_str(), destination = key, "forward destination added");
        Ok(backend)
    }

    fn gauge(&self) -> prometheus_client::metrics::gauge::Gauge {
        self.metrics
            .destinations
            .get_or_create(&DestinationLabels {
                listener: self.listener.clone(),
            })
            .clone()
    }

    fn retire(&self, d: &Destination) {
        if let Some(b) = d.backend.get() {
            b.stop();
            self.gauge().dec();
            self.metrics
                .evicted
                .get_or_create(&DestinationLabels {
                    listener: self.listener.clone(),
                })
                .inc();
        }
    }

    /// Drops destinations unused for `destination_idle_timeout` (maintenance loop).
    pub fn evict_idle(&self, metrics: &crate::metrics::Metrics) {
        let idle_for = self.config.destination_idle_timeout.get();
        let now = clock::now_ms();
        let idle_ms = u64::try_from(idle_for.as_millis()).unwrap_or(u64::MAX);
        let mut gone = Vec::new();
        self.destinations.lock().retain(|_, d| {
            let since = d.last_used.load(Ordering::Relaxed);
            let stale = d.idle() && now.saturating_sub(since) >= idle_ms;
            if stale {
                gone.push(d.clone());
            }
            !stale
        });
        for d in gone {
            self.retire(&d);
            if let Some(b) = d.backend.get() {
                metrics.remove_backend(&b.name);
            }
        }
    }

    /// Stops every destination's background work (the listener left the config, or
    /// its settings changed) and removes their metric series.
    pub fn stop(&self, metrics: &crate::metrics::Metrics) {
        let all: Vec<_> = self.destinations.lock().drain().map(|(_, d)| d).collect();
        for d in all {
            self.retire(&d);
            if let Some(b) = d.backend.get() {
                metrics.remove_backend(&b.name);
            }
        }
    }

    /// The idle timeout of CONNECT tunnels, and the connect timeout of their dial.
    pub fn tunnel_timeouts(&self) -> (Duration, Duration) {
        let t = &self.config.destination.timeouts;
        (t.tunnel.get(), t.connect.get())
    }
}

impl Destination {
    fn touch(&self) {
        self.last_used.store(clock::now_ms(), Ordering::Relaxed);
    }

    /// Nothing in flight on it (requests or tunnels hold server slots).
    fn idle(&self) -> bool {
        self.backend
            .get()
            .is_none_or(|b| b.servers().iter().all(|s| s.inflight() == 0))
    }
}

/// The host and port a forward request names: its absolute-form target, or `Host`.
pub fn target(parts: &Parts, routed_host: &str) -> Result<(Host, u16), ProxyError> {
    let bad = |why: String| ProxyError::new(Cause::InvalidHost, why);
    let (raw_host, port) = match parts.uri.authority() {
        Some(a) => (a.host().to_string(), a.port_u16()),
        None => {
            let raw = parts
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(routed_host);
            match raw.parse::<http::uri::Authority>() {
                Ok(a) => (a.host().to_string(), a.port_u16()),
                Err(_) => return Err(bad(format!("invalid destination {raw:?}"))),
            }
        }
    };
    let host = Host::parse(&raw_host).map_err(|e| bad(format!("invalid destination host: {e}")))?;
    Ok((host, port.unwrap_or(80)))
}

/// The credentials of `path` as the header carries them (`user:password`).
fn pairs(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    Ok(sluice_config::read_credentials(path)?
        .into_iter()
        .map(|(u, p)| format!("{u}:{p}").into_bytes())
        .collect())
}

/// A file's (modified time, length): a change to either means it was rewritten.
type Stamp = (Option<SystemTime>, u64);

fn file_stamp(path: &std::path::Path) -> Stamp {
    std::fs::metadata(path).map_or((None, 0), |m| (m.modified().ok(), m.len()))
}

fn tls_settings(config: &sluice_config::Forward) -> sluice_config::Tls {
    sluice_config::Tls {
        sni: None,
        verify: config.destination.tls.verify,
        ca_file: config.destination.tls.ca_file.clone(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
