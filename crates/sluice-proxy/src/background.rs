//! The proxy's background work: pool eviction, health-gauge refresh and queue kicks,
//! the warm pool (`min_idle_per_server`), active health checks and DNS refresh.

use crate::backend::Backend;
use crate::proxy::Proxy;
use crate::{dns, health, limit, upstream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often the maintenance loop runs.
const TICK: Duration = Duration::from_secs(1);

/// Resolves server names once (bounded by the resolver's timeout), then starts every
/// background task on the current runtime.
pub async fn start(proxy: &Arc<Proxy>) -> Result<(), String> {
    let rt = proxy.runtime();
    start_backends(proxy, rt.resolver.as_ref(), &rt.backends).await?;
    start_maintenance(proxy);
    Ok(())
}

/// Starts the background work of these backends (new in a generation): health
/// checks, and DNS (resolving each name once first, bounded by the resolver's timeout).
/// Each backend keeps the handles; [`stop_backends`] ends them.
pub async fn start_backends(
    proxy: &Arc<Proxy>,
    resolver: Option<&sluice_config::Resolver>,
    backends: &[Arc<Backend>],
) -> Result<(), String> {
    let needs_dns = backends
        .iter()
        .any(|b| b.templates.iter().any(|t| t.hostname().is_some()));
    let resolver = match needs_dns {
        true => Some(dns::Resolver::new(resolver)?),
        false => None,
    };
    for backend in backends {
        for server in backend.servers().iter() {
            health::spawn(backend, server, proxy.pools(), proxy.metrics());
        }
    }
    if let Some(resolver) = &resolver {
        // All names at once: startup waits for the slowest lookup, not their sum.
        futures_util::future::join_all(
            backends
                .iter()
                .map(|backend| dns::start(resolver, backend, proxy.registry())),
        )
        .await;
    }
    Ok(())
}

/// Stops the background work of backends that left (or were replaced by a new version).
pub fn stop_backends(backends: &[Arc<Backend>]) {
    for b in backends {
        b.stop();
    }
}

/// The maintenance loop over the current generation (once per process).
pub fn start_maintenance(proxy: &Arc<Proxy>) {
    let reap = proxy.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            maintain(&reap);
        }
    });
}

fn maintain(proxy: &Arc<Proxy>) {
    let rt = proxy.runtime();
    for f in rt.forward.values() {
        f.evict_idle(proxy.metrics());
        f.refresh_credentials();
    }
    let pools = proxy.pools();
    pools.h2.evict(|key| {
        rt.backends.iter().find_map(|b| {
            b.servers()
                .iter()
                .any(|s| &s.key == key)
                .then_some(b.settings.policy.idle_timeout)
        })
    });
    for backend in &rt.backends {
        let servers = backend.servers();
        backend.metrics.servers.set(servers.len() as i64);
        for s in servers.iter() {
            s.expire_ejection();
            s.refresh_health_gauge();
        }
        // An ejection that ran out frees capacity without any slot being released.
        limit::kick(backend);
        if backend.settings.min_idle > 0 {
            for s in servers.iter().filter(|s| s.available()) {
                warm(proxy, backend, s);
            }
        }
    }
}

/// Tops up a server's idle connections to `min_idle_per_server`, one task at a time.
fn warm(proxy: &Arc<Proxy>, backend: &Arc<Backend>, server: &Arc<crate::backend::Server>) {
    let pools = proxy.pools();
    let idle = server.idle.len() + pools.h2.count(&server.key);
    if idle >= backend.settings.min_idle || server.warming.swap(true, Ordering::AcqRel) {
        return;
    }
    let need = backend.settings.min_idle - idle;
    let (proxy, owner, server) = (proxy.clone(), backend.clone(), server.clone());
    let backend = owner.clone();
    let task = tokio::spawn(async move {
        for _ in 0..need {
            let r = upstream::warm(proxy.pools(), proxy.metrics(), &backend, &server).await;
            if let Err(e) = r {
                tracing::debug!(backend = %backend.name.as_str(), server = %server.label.as_str(), cause = e.cause.as_str(), detail = %e.detail, "warm-up connection failed");
                break;
            }
            if proxy.pools().h2.count(&server.key) > 0 {
                break;
            }
        }
        server.warming.store(false, Ordering::Release);
    });
    owner.track(task.abort_handle());
}
