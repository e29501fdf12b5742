//! Readiness under sustained overload (`limits.unready_after`): once sluice has shed
//! clients in every second for that long, `/readyz` says not ready, so a load
//! balancer or Kubernetes sends new traffic to other replicas; the first second
//! without shedding makes it ready again. Liveness is never touched.

use prometheus_client::metrics::counter::Counter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);

/// Watches `shed` (clients shed so far) until the task is dropped; `None` when
/// `after` is zero (readiness ignores load).
pub fn start(
    shed: Counter,
    after: Duration,
    overloaded: Arc<AtomicBool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if after.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        let mut last = shed.get();
        let mut since: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let now = shed.get();
            let shedding = now > last;
            last = now;
            since = match (shedding, since) {
                (true, None) => Some(tokio::time::Instant::now()),
                (true, s) => s,
                (false, _) => None,
            };
            let over = since.is_some_and(|s| s.elapsed() + EVERY >= after);
            if overloaded.swap(over, Ordering::Relaxed) != over {
                if over {
                    tracing::warn!(after = ?after, "overloaded: shedding clients for limits.unready_after; /readyz answers 503");
                } else {
                    tracing::info!("no longer shedding clients; /readyz is ready again");
                }
            }
        }
    }))
}
