//! What the admin plane shows of the data path: `GET /pools`, per backend, server and
//! pool key. Read from the live state (atomics, short locks); never blocks requests.

use crate::clock::now_ms;
use crate::proxy::Proxy;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `GET /pools`: every backend of the current generation, its queue, and each server
/// with its pool (idle, in use, HTTP/2 connections and streams, totals) and health.
pub fn pools(proxy: &Proxy) -> Value {
    let rt = proxy.runtime();
    let pools = proxy.pools();
    let now = now_ms();
    // Wall-clock time of the monotonic `epoch`, to show ejections as Unix times.
    let wall_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(Duration::from_millis(now))
        .as_secs_f64();
    let mut backends = Map::new();
    for b in &rt.backends {
        let mut servers = Map::new();
        for s in b.servers().iter() {
            let until = s.health.ejected_until_ms.load(Ordering::Relaxed);
            let health = if s.removed.load(Ordering::Relaxed) {
                "removed"
            } else if s.health.active_down.load(Ordering::Relaxed) {
                "down"
            } else if until > now {
                "ejected"
            } else {
                "up"
            };
            let h2_streams = pools.h2.streams(&s.key);
            servers.insert(
                s.label.as_str().to_string(),
                json!({
                    "pool_key": s.key.identity(),
                    "health": health,
                    "ejected_until": (until > now).then(|| wall_epoch + until as f64 / 1000.0),
                    "in_flight": s.inflight(),
                    // HTTP/1.1 connections in use: one per request not on an h2 stream.
                    "in_use": s.inflight().saturating_sub(h2_streams),
                    "idle": s.idle.len(),
                    "h2_connections": pools.h2.count(&s.key),
                    "h2_streams": h2_streams,
                    "opened_total": s.opened.load(Ordering::Relaxed),
                    "reused_total": s.reused.load(Ordering::Relaxed),
                }),
            );
        }
        backends.insert(
            b.name.as_str().to_string(),
            json!({ "queued": b.limiter.waiting(), "servers": servers }),
        );
    }
    json!({ "generation": rt.generation, "backends": backends })
}
