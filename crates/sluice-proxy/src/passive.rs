//! Passive health: consecutive failures of live traffic on a server eject it for a
//! back-off time (doubled on each ejection in a row, up to the maximum); a success
//! resets the count. Only failures the server caused are fed here (see
//! [`crate::cause::Party`]): a client cannot get a healthy server ejected.

use crate::backend::{Backend, Server};
use crate::clock::now_ms;
use crate::metrics::{Metrics, ServerLabels};
use std::sync::atomic::Ordering;

/// Records the outcome of one exchange with `server`. `forget` closes the server's
/// idle connections when it is ejected.
pub fn record(
    metrics: &Metrics,
    backend: &Backend,
    server: &Server,
    ok: bool,
    forget: impl FnOnce(),
) {
    let Some(p) = &backend.settings.passive else {
        return;
    };
    let h = &server.health;
    if ok {
        if h.failures.load(Ordering::Relaxed) != 0 {
            h.failures.store(0, Ordering::Relaxed);
        }
        if h.ejections.load(Ordering::Relaxed) != 0
            && h.ejected_until_ms.load(Ordering::Relaxed) <= now_ms()
        {
            h.ejections.store(0, Ordering::Relaxed);
        }
        return;
    }
    let failures = h.failures.fetch_add(1, Ordering::Relaxed) + 1;
    if failures < p.consecutive_failures {
        return;
    }
    h.failures.store(0, Ordering::Relaxed);
    let n = h.ejections.fetch_add(1, Ordering::Relaxed).min(16);
    let max = p.max_ejection_time.get();
    let time = p
        .ejection_time
        .get()
        .checked_mul(1u32 << n)
        .unwrap_or(max)
        .min(max);
    h.ejected_until_ms.store(
        now_ms().saturating_add(u64::try_from(time.as_millis()).unwrap_or(u64::MAX)),
        Ordering::Relaxed,
    );
    server.metrics.healthy.set(0);
    metrics
        .ejections
        .get_or_create(&ServerLabels {
            backend: backend.name.clone(),
            server: server.label.clone(),
        })
        .inc();
    forget();
    tracing::warn!(backend = %backend.name.as_str(), server = %server.label.as_str(), failures, ejected_for = ?time, "server ejected after consecutive failures");
}
