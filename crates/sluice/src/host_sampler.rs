//! The task behind `sluice_host_*` and `sluice_backend_reuse_ratio`: what sluice
//! serves (listeners, backend servers) gathered on the main runtime, `/proc` read on
//! the blocking pool.

use crate::reload::Reloader;
use std::sync::Arc;

/// Samples the host's limits (`sluice_host_*`) every few seconds, reading `/proc` on
/// the blocking pool; the addresses of interest are the listeners' and the backends'
/// servers' at each sample.
pub fn start(
    metrics: crate::host::metrics::HostMetrics,
    reloader: Arc<Reloader>,
) -> tokio::task::JoinHandle<()> {
    use crate::host::metrics::{Known, Sampler, EVERY};
    tokio::spawn(async move {
        let mut sampler = Sampler::default();
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let listeners = reloader.listeners().lock().await.tcp_addrs();
            let runtime = reloader.proxy().runtime();
            let reuse = runtime
                .backends
                .iter()
                .map(|b| {
                    let (mut opened, mut reused) = (0, 0);
                    for s in b.servers().iter() {
                        opened += s.opened.load(std::sync::atomic::Ordering::Relaxed);
                        reused += s.reused.load(std::sync::atomic::Ordering::Relaxed);
                    }
                    (b.name.as_str().to_string(), opened, reused)
                })
                .collect();
            let destinations = runtime
                .backends
                .iter()
                .flat_map(|b| b.servers().iter().cloned().collect::<Vec<_>>())
                .filter_map(|s| match s.target.endpoint {
                    sluice_net::Endpoint::Tcp(a) => Some(a),
                    sluice_net::Endpoint::Unix(_) => None,
                })
                .collect();
            let known = Known {
                listeners,
                destinations,
                reuse,
            };
            let m = metrics.clone();
            let done = tokio::task::spawn_blocking(move || {
                sampler.sample(&m, &known);
                sampler
            })
            .await;
            match done {
                Ok(s) => sampler = s,
                Err(e) => {
                    tracing::warn!(error = %e, "host metrics: a sample failed; stopped");
                    return;
                }
            }
        }
    })
}
