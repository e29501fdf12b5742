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
    let rt = proxy.runtime().clone();
    let resolver = dns::Resolver::new(rt.resolver.as_ref())?;
    for backend in &rt.backends {
        for server in backend.servers().iter() {
            health::spawn(backend, server, proxy.pools(), proxy.metrics());
        }
    }
    // All names at once: startup waits for the slowest lookup, not their sum.
    futures_util::future::join_all(
        rt.backends
            .iter()
            .map(|backend| dns::start(&resolver, backend, proxy)),
    )
    .await;
    let reap = proxy.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            maintain(&reap);
        }
    });
    Ok(())
}

fn maintain(proxy: &Arc<Proxy>) {
    let rt = proxy.runtime();
    let pools = proxy.pools();
    pools.h2.evict(|key| {
        rt.backends.iter().find_map(|b| {
            b.servers()
                .iter()
                .any(|s| &s.key == key)
                .then(|| b.settings.policy.idle_timeout.as_millis() as u64)
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
    let idle = pools.h1.idle_len(&server.key) + pools.h2.count(&server.key);
    if idle >= backend.settings.min_idle || server.warming.swap(true, Ordering::AcqRel) {
        return;
    }
    let need = backend.settings.min_idle - idle;
    let (proxy, backend, server) = (proxy.clone(), backend.clone(), server.clone());
    tokio::spawn(async move {
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
}
