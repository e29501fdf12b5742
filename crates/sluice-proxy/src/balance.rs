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

/// A 64-bit finaliser (splitmix64), so rendezvous weights are well spread.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
