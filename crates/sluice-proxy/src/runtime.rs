//! Config → runtime tables: routes compiled into a [`Router`], backends with their
//! TLS client configs and pool keys resolved. Done once per config, off the hot path.

use crate::backend::Backend;
use crate::build::{self, TlsCache};
use crate::forward::Forward;
use crate::metrics::Name;
use crate::registry::Registry;
use crate::router::{Route, Router};
use sluice_config::{Config, ConfigError};
use std::collections::HashMap;
use std::sync::Arc;

/// One immutable snapshot of everything a request needs: one config generation.
pub struct Runtime {
    pub generation: u64,
    pub router: Router,
    pub backends: Vec<Arc<Backend>>,
    pub access_log: bool,
    pub resolver: Option<sluice_config::Resolver>,
    /// Forward listeners' state, by listener name.
    pub forward: HashMap<String, Arc<Forward>>,
}

impl Runtime {
    pub fn backend(&self, name: &str) -> Option<&Arc<Backend>> {
        self.backends.iter().find(|b| b.name.as_str() == name)
    }

    /// Pool keys in use by this generation's servers (for "which pools survive").
    pub fn pool_keys(&self) -> std::collections::BTreeSet<String> {
        self.backends
            .iter()
            .flat_map(|b| {
                b.servers()
                    .iter()
                    .map(|s| s.key.identity().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// After a reload's swap: forward listeners of `old` that `next` did not keep (removed,
/// or their settings changed) drop their destinations, whose DNS refresh stops and
/// whose metric series go.
pub fn retire_forwards(old: &Runtime, next: &Runtime, metrics: &crate::metrics::Metrics) {
    for (name, f) in &old.forward {
        let kept = next.forward.get(name).is_some_and(|n| Arc::ptr_eq(n, f));
        if !kept {
            f.stop(metrics);
        }
    }
}

/// Builds the runtime tables of `config`. A backend whose definition is the same as
/// in `previous` is the same object (its pools, DNS state and checks go on); others
/// are built, finding their servers' state in `registry`. Fails (naming the field) on
/// what only shows when the settings are used, like an unparsable CA file. `origin`
/// names the config in errors.
pub fn compile(
    config: &Config,
    registry: &Registry,
    previous: Option<&Runtime>,
    origin: &str,
) -> Result<Runtime, ConfigError> {
    let fail = |field: String, reason: String| ConfigError {
        file: origin.to_string(),
        field,
        reason,
    };
    let mut tls_configs = TlsCache::new();
    let mut backends: HashMap<&str, Arc<Backend>> = HashMap::new();
    let mut ordered = Vec::new();
    for (i, b) in config.backends.iter().enumerate() {
        let definition = format!("{:?}", sluice_config::canonical_backend(b));
        let old = previous.and_then(|p| p.backend(&b.name));
        let backend = match old {
            Some(old) if old.definition == definition => old.clone(),
            _ => {
                let new = build::backend(i, b, registry, &mut tls_configs, origin, definition)?;
                if let Some(old) = old {
                    new.adopt_endpoints(old);
                }
                new
            }
        };
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
        let label = Name::new(&sluice_config::route_id(r));
        let mut headers = Vec::with_capacity(r.headers.len());
        for (name, value) in &r.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| fail(format!("routes[{i}].headers"), format!("{name}: {e}")))?;
            headers.push((name, value.clone()));
        }
        router.add(
            &r.host,
            Route {
                prefix: r.path_prefix.clone(),
                backend,
                label,
                identities: r.client_identities.clone().into(),
                max_body: r.max_request_body,
                headers: headers.into(),
            },
        );
    }
    let mut forward = HashMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(f) = &l.forward else { continue };
        let kept = previous
            .and_then(|p| p.forward.get(&l.name))
            .filter(|old| old.config == *f && old.resolver_config == config.resolver);
        let state = match kept {
            Some(old) => old.clone(),
            None => Arc::new(Forward::new(
                &l.name,
                f,
                config.resolver.as_ref(),
                &registry.metrics.forward,
                (origin, &format!("listeners[{i}].forward")),
            )?),
        };
        forward.insert(l.name.clone(), state);
    }
    Ok(Runtime {
        forward,
        generation: previous.map_or(1, |p| p.generation + 1),
        router,
        backends: ordered,
        access_log: config.log.access_log,
        resolver: config.resolver.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use prometheus_client::registry::Registry;

    fn runtime(routes: &str) -> Runtime {
        let yaml = format!(
            "listeners: [{{name: e, bind: '127.0.0.1:0'}}]\nbackends: [{{name: a, servers: ['a:1']}}, {{name: b, servers: ['b:1']}}, {{name: c, servers: ['c:1']}}]\nroutes: {routes}"
        );
        let config = sluice_config::parse("t", &yaml).unwrap();
        compile(
            &config,
            &crate::Registry::new(Metrics::register(&mut Registry::default())),
            None,
            "t",
        )
        .unwrap()
    }

    fn backend_for(rt: &Runtime, host: &str, path: &str) -> Option<String> {
        backend_with(rt, host, path, &[])
    }

    fn backend_with(
        rt: &Runtime,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<String> {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        rt.router
            .find(host, path, &h)
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
    fn header_conditions_narrow_a_route_and_fall_back_to_a_wider_host() {
        let rt = runtime(
            "[{host: api.example.com, backend: a, headers: {X-Env: canary}},
              {host: '*.example.com', backend: b}]",
        );
        let env = [("x-env", "canary")];
        assert_eq!(
            backend_with(&rt, "api.example.com", "/", &env).as_deref(),
            Some("a")
        );
        // Any of a repeated header's values may match.
        let both = [("x-env", "prod"), ("x-env", "canary")];
        assert_eq!(
            backend_with(&rt, "api.example.com", "/", &both).as_deref(),
            Some("a")
        );
        assert_eq!(
            backend_for(&rt, "api.example.com", "/").as_deref(),
            Some("b"),
            "no condition holds: the wildcard host's route"
        );
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
        let rt = compile(
            &config,
            &crate::Registry::new(Metrics::register(&mut Registry::default())),
            None,
            "t",
        )
        .unwrap();
        let key = |i: usize| rt.backends[i].servers()[0].key.clone();
        assert_eq!(key(0), key(1));
        assert_ne!(
            key(0),
            key(2),
            "TLS settings make connections non-interchangeable"
        );
        assert_ne!(key(0), key(3), "so does the protocol");
    }

    fn generation(registry: &crate::Registry, prev: Option<&Runtime>, a: &str) -> Runtime {
        let yaml = format!(
            "listeners: [{{name: e, bind: '127.0.0.1:0'}}]\nbackends: [{{name: a, servers: ['10.0.0.1:1'], {a}}}, {{name: b, servers: ['10.0.0.2:1']}}]\nroutes: [{{host: '*', backend: a}}]"
        );
        let config = sluice_config::parse("t", &yaml).unwrap();
        compile(&config, registry, prev, "t").unwrap()
    }

    #[test]
    fn a_new_generation_reuses_unchanged_backends_and_keeps_server_state() {
        let registry = crate::Registry::new(Metrics::register(&mut Registry::default()));
        let one = generation(&registry, None, "timeouts: {connect: 1s}");
        let server = one.backends[0].servers()[0].clone();
        server
            .health
            .ejected_until_ms
            .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
        let two = generation(&registry, Some(&one), "timeouts: {connect: 2s}");
        assert_eq!((one.generation, two.generation), (1, 2));
        assert!(
            !Arc::ptr_eq(&one.backends[0], &two.backends[0]),
            "a changed backend is rebuilt"
        );
        assert!(
            Arc::ptr_eq(&server, &two.backends[0].servers()[0]),
            "its server (same identity) is the same, ejection included"
        );
        assert!(!two.backends[0].servers()[0].available());
        assert!(
            Arc::ptr_eq(&one.backends[1], &two.backends[1]),
            "an unchanged backend is the same object"
        );
        let three = generation(
            &registry,
            Some(&two),
            "timeouts: {connect: 2s}, source_addresses: ['127.0.0.1']",
        );
        assert_ne!(
            three.backends[0].servers()[0].key,
            server.key,
            "another source-address set is another pool"
        );
        assert!(three.backends[0].servers()[0].available());
    }

    #[test]
    fn a_backend_listed_out_of_order_is_still_the_same_backend() {
        let registry = crate::Registry::new(Metrics::register(&mut Registry::default()));
        let yaml = "listeners: [{name: e, bind: '127.0.0.1:0'}]\nbackends: [{name: a, servers: ['10.0.0.2:1', '10.0.0.1:1']}]";
        let config = sluice_config::parse("t", yaml).unwrap();
        let one = compile(&config, &registry, None, "t").unwrap();
        let two = compile(&config, &registry, Some(&one), "t").unwrap();
        assert!(
            Arc::ptr_eq(&one.backends[0], &two.backends[0]),
            "its identity is its canonical form, whatever the file's order"
        );
    }
}
