//! Config → runtime tables: routes compiled into a [`Router`], backends with their
//! TLS client configs and pool keys resolved. Done once per config, off the hot path.

use crate::backend::{Backend, ServerTemplate, Settings};
use crate::budget::RetryBudget;
use crate::metrics::{BackendMetrics, Metrics, Name, QueueMetrics};
use crate::router::{Route, Router};
use sluice_config::{Config, ConfigError, Protocol, Tls};
use sluice_net::{Connector, SocketOptions, TlsClientConfig, TlsError};
use sluice_pool::Policy;
use sluice_pool::{Limiter, Limits};
use std::collections::HashMap;
use std::sync::Arc;

/// One immutable snapshot of everything a request needs.
pub struct Runtime {
    pub router: Router,
    pub backends: Vec<Arc<Backend>>,
    pub access_log: bool,
    pub resolver: Option<sluice_config::Resolver>,
}

/// Builds the runtime tables. Fails (naming the field) on what only shows when the
/// settings are used, like an unparsable CA file. `origin` names the config in errors.
pub fn compile(config: &Config, metrics: &Metrics, origin: &str) -> Result<Runtime, ConfigError> {
    let fail = |field: String, reason: String| ConfigError {
        file: origin.to_string(),
        field,
        reason,
    };
    let mut tls_configs: HashMap<(&Tls, Protocol), TlsClientConfig> = HashMap::new();
    let mut backends: HashMap<&str, Arc<Backend>> = HashMap::new();
    let mut ordered = Vec::new();
    for (i, b) in config.backends.iter().enumerate() {
        let tls_config = match &b.tls {
            None => None,
            Some(tls) => match tls_configs.get(&(tls, b.protocol)) {
                Some(c) => Some(c.clone()),
                None => {
                    let c = TlsClientConfig::new(tls, b.protocol).map_err(|e| {
                        let field = match e {
                            TlsError::CaFile { .. } | TlsError::EmptyCaFile(_) => "tls.ca_file",
                            _ => "tls",
                        };
                        fail(format!("backends[{i}].{field}"), e.to_string())
                    })?;
                    if !tls.verify {
                        tracing::warn!(backend = %b.name, "TLS certificate verification is OFF for this backend");
                    }
                    tls_configs.insert((tls, b.protocol), c.clone());
                    Some(c)
                }
            },
        };
        let alpn = match b.protocol {
            Protocol::Http1 => "http/1.1",
            Protocol::Http2 => "h2",
            Protocol::Auto => "h2,http/1.1",
        };
        let mut templates = Vec::with_capacity(b.servers.len());
        for (j, addr) in b.servers.iter().enumerate() {
            let (tls, tls_identity, host) = match (&b.tls, &tls_config) {
                (Some(tls), Some(c)) => {
                    let sni = tls.sni.as_deref().or(addr.host()).unwrap_or_default();
                    let name = TlsClientConfig::server_name(sni)
                        .map_err(|e| fail(format!("backends[{i}].servers[{j}]"), e.to_string()))?;
                    let ca = tls
                        .ca_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "system".into());
                    (
                        Some((c.config.clone(), name)),
                        format!("tls;sni={sni};verify={};ca={ca};alpn={alpn}", tls.verify),
                        sni.to_string(),
                    )
                }
                _ => (
                    None,
                    format!("plain;proto={alpn}"),
                    addr.host().unwrap_or("localhost").to_string(),
                ),
            };
            let host = match &b.health.check {
                Some(hc) => hc.host.clone().unwrap_or(host),
                None => host,
            };
            templates.push(ServerTemplate::new(addr.clone(), tls, tls_identity, host));
        }
        let name = Name::new(&b.name);
        let settings = Settings {
            connect_timeout: b.timeouts.connect.get(),
            response_timeout: b.timeouts.response.get(),
            response_body_idle: b.timeouts.response_body_idle.get(),
            queue_timeout: b.timeouts.queue.get(),
            policy: Policy {
                max_idle: b.pool.max_idle_per_server,
                idle_timeout: b.pool.idle_timeout.get(),
                max_requests: b.pool.max_requests_per_connection,
                max_lifetime: b.pool.max_lifetime.get(),
            },
            protocol: b.protocol,
            tls: b.tls.is_some(),
            max_streams: b.pool.max_concurrent_streams,
            h2_ping: (!b.pool.h2_ping_interval.get().is_zero())
                .then(|| (b.pool.h2_ping_interval.get(), b.pool.h2_ping_timeout.get())),
            min_idle: b.pool.min_idle_per_server,
            balance: b.balance,
            hash_on: b.hash_on.clone(),
            retry_attempts: b.retries.attempts,
            retry_non_idempotent: b.retries.non_idempotent,
            passive: b.health.passive.clone(),
            check: b.health.check.clone(),
            dns: b.dns.clone(),
        };
        let bm = BackendMetrics::new(metrics, &name);
        let limiter = Limiter::new(
            Limits {
                per_member: b.limits.maxconn_per_server,
                total: b.limits.maxconn,
                max_queue: b.limits.max_queue,
                queue_timeout: b.timeouts.queue.get(),
            },
            Default::default(),
            Arc::new(QueueMetrics {
                depth: bm.queue_depth.clone(),
                time: bm.queue_time.clone(),
            }),
        );
        let budget = RetryBudget::new(
            b.retries.budget.ratio,
            b.retries.budget.min_per_second,
            bm.budget_exhausted.clone(),
        );
        let keepalive = (!b.tcp.keepalive_idle.get().is_zero()).then(|| {
            (
                b.tcp.keepalive_idle.get(),
                b.tcp.keepalive_interval.get(),
                b.tcp.keepalive_count,
            )
        });
        let connector = Connector::new(
            SocketOptions {
                nodelay: b.tcp.nodelay,
                keepalive,
            },
            b.source_addresses.clone(),
        );
        let backend = Arc::new(Backend::new(
            name,
            settings,
            templates,
            connector,
            limiter,
            budget,
            bm,
            metrics.clone(),
        ));
        backend.metrics.servers.set(backend.servers().len() as i64);
        backends.insert(&b.name, backend.clone());
        ordered.push(backend);
    }
    let mut router = Router::default();
    for (i, r) in config.routes.iter().enumerate() {
        let backend = backends.get(r.backend.as_str()).cloned().ok_or_else(|| {
            fail(
                format!("routes[{i}].backend"),
                format!("unknown backend {:?}", r.backend),
            )
        })?;
        let label = Name::new(&format!("{}{}", r.host, r.path_prefix));
        router.add(
            &r.host,
            Route {
                prefix: r.path_prefix.clone(),
                backend,
                label,
            },
        );
    }
    Ok(Runtime {
        router,
        backends: ordered,
        access_log: config.log.access_log,
        resolver: config.resolver.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn runtime(routes: &str) -> Runtime {
        let yaml = format!(
            "listeners: [{{name: e, bind: '127.0.0.1:0'}}]\nbackends: [{{name: a, servers: ['a:1']}}, {{name: b, servers: ['b:1']}}, {{name: c, servers: ['c:1']}}]\nroutes: {routes}"
        );
        let config = sluice_config::parse("t", &yaml).unwrap();
        compile(&config, &Metrics::register(&mut Registry::default()), "t").unwrap()
    }

    fn backend_for(rt: &Runtime, host: &str, path: &str) -> Option<String> {
        rt.router
            .find(host, path)
            .map(|r| r.backend.name.as_str().to_string())
    }

    #[test]
    fn exact_beats_wildcard_beats_any_and_longest_prefix_wins() {
        let rt = runtime(
            "[{host: '*', backend: c}, {host: '*.example.com', backend: b}, {host: api.example.com, backend: a},
              {host: api.example.com, path_prefix: /v2, backend: b}]",
        );
        assert_eq!(
            backend_for(&rt, "api.example.com", "/v1").as_deref(),
            Some("a")
        );
        assert_eq!(
            backend_for(&rt, "api.example.com", "/v2/x").as_deref(),
            Some("b")
        );
        assert_eq!(
            backend_for(&rt, "x.y.example.com", "/").as_deref(),
            Some("b")
        );
        assert_eq!(
            backend_for(&rt, "example.com", "/").as_deref(),
            Some("c"),
            "wildcard excludes the apex"
        );
        assert_eq!(backend_for(&rt, "other.org", "/").as_deref(), Some("c"));
    }

    #[test]
    fn no_match_without_catch_all() {
        let rt = runtime("[{host: api.example.com, path_prefix: /v1, backend: a}]");
        assert_eq!(backend_for(&rt, "api.example.com", "/v2"), None);
        assert_eq!(backend_for(&rt, "nope.example.com", "/v1"), None);
    }

    #[test]
    fn same_server_and_tls_share_a_pool_key() {
        let yaml = "listeners: [{name: e, bind: '127.0.0.1:0'}]\nbackends: [{name: a, servers: ['10.0.0.1:1']}, {name: b, servers: ['10.0.0.1:1']}, {name: c, servers: ['10.0.0.1:1'], tls: {verify: false, sni: x}}, {name: d, servers: ['10.0.0.1:1'], protocol: http2}]";
        let config = sluice_config::parse("t", yaml).unwrap();
        let rt = compile(&config, &Metrics::register(&mut Registry::default()), "t").unwrap();
        let key = |i: usize| rt.backends[i].servers()[0].key.clone();
        assert_eq!(key(0), key(1));
        assert_ne!(
            key(0),
            key(2),
            "TLS settings make connections non-interchangeable"
        );
        assert_ne!(key(0), key(3), "so does the protocol");
    }
}
