//! Balancing: which server of a backend takes the next request (`balance`).

use crate::backend::{Backend, Server};
use sluice_config::Balance;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Backend {
    /// Chooses a server among those `usable`, by the backend's balancing rule.
    pub fn pick(
        &self,
        servers: &[Arc<Server>],
        usable: impl Fn(&Server) -> bool,
        hash: Option<u64>,
    ) -> Option<Arc<Server>> {
        let n = servers.len();
        match (self.settings.balance, hash) {
            _ if n == 0 => None,
            _ if n == 1 => servers.first().filter(|s| usable(s)).cloned(),
            (balance, hash) if self.weighted => {
                weighted(servers, &usable, balance, hash, &self.next)
            }
            (Balance::RoundRobin, _) => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &servers[(start + i) % n])
                    .find(|s| usable(s))
                    .cloned()
            }
            (Balance::Hash, Some(key)) => servers
                .iter()
                .filter(|s| usable(s))
                .max_by_key(|s| mix(key ^ s.hash_id))
                .cloned(),
            (Balance::LeastRequest, _) => self.least(servers, &usable),
            (Balance::P2c | Balance::Hash, _) => {
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let (sa, sb) = (&servers[a], &servers[b]);
                match (usable(sa), usable(sb)) {
                    (true, true) if sb.inflight() < sa.inflight() => Some(sb.clone()),
                    (true, _) => Some(sa.clone()),
                    (false, true) => Some(sb.clone()),
                    (false, false) => self.least(servers, &usable),
                }
            }
        }
    }

    /// The usable server with the fewest requests in flight; ties rotate.
    fn least(
        &self,
        servers: &[Arc<Server>],
        usable: &impl Fn(&Server) -> bool,
    ) -> Option<Arc<Server>> {
        let n = servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &servers[(start + i) % n])
            .filter(|s| usable(s))
            .min_by_key(|s| s.inflight())
            .cloned()
    }
}

/// Balancing by weight, where the weights are a traffic split (a canary's 10%
/// must stay 10% however loaded the servers are):
/// - `hash`: weighted rendezvous (a key's server scores `weight / -ln(u)`), so keys
///   move only when their server leaves, and in proportion to the weights;
/// - `round_robin`: each server in turn, `weight` times in a row;
/// - `least_request`, `p2c`: at random in proportion to the weights (comparing
///   requests in flight would even the servers out and undo the split).
fn weighted(
    servers: &[Arc<Server>],
    usable: &impl Fn(&Server) -> bool,
    balance: Balance,
    hash: Option<u64>,
    next: &std::sync::atomic::AtomicUsize,
) -> Option<Arc<Server>> {
    if let (Balance::Hash, Some(key)) = (balance, hash) {
        return servers
            .iter()
            .filter(|s| usable(s))
            .map(|s| (rendezvous(key, s), s))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, s)| s.clone());
    }
    let weight = |s: &Arc<Server>| u64::from(s.weight.max(1));
    let start = match balance {
        Balance::RoundRobin => {
            let total: u64 = servers.iter().map(weight).sum();
            next.fetch_add(1, Ordering::Relaxed) as u64 % total.max(1)
        }
        _ => {
            let total: u64 = servers.iter().filter(|s| usable(s)).map(weight).sum();
            if total == 0 {
                return None;
            }
            let mut r = fastrand::u64(..total);
            return servers
                .iter()
                .filter(|s| usable(s))
                .find(|s| {
                    let w = weight(s);
                    let hit = r < w;
                    r = r.saturating_sub(w);
                    hit
                })
                .cloned();
        }
    };
    // The server whose stretch of the rotation `start` falls in, else the next usable.
    let (mut at, mut first) = (0u64, 0);
    for (i, s) in servers.iter().enumerate() {
        at += weight(s);
        if start < at {
            first = i;
            break;
        }
    }
    let n = servers.len();
    (0..n)
        .map(|i| &servers[(first + i) % n])
        .find(|s| usable(s))
        .cloned()
}

/// A server's weighted rendezvous score for `key`.
fn rendezvous(key: u64, s: &Server) -> f64 {
    // 53 bits of the hash as a uniform number in (0, 1): never 0, so ln is finite.
    let u = ((mix(key ^ s.hash_id) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(s.weight.max(1)) / -u.ln()
}

/// A 64-bit finaliser (splitmix64), so rendezvous weights are well spread.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
