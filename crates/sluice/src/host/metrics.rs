//! `sluice_host_*` and `sluice_listener_accept_queue`: `sluice doctor`'s figures as
//! metrics, sampled every few seconds off the data path (a blocking-pool read of
//! `/proc`), so an alert fires before the ports or the accept queue run out.

use super::{facts, sockets};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

type Labels = Vec<(&'static str, String)>;

/// How often `/proc` is read: cheap, but tens of thousands of sockets take a few ms.
pub const EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
pub struct HostMetrics {
    local_ports: Gauge,
    ceiling: Gauge<f64, AtomicU64>,
    outgoing: Family<Labels, Gauge>,
    destination_ports: Family<Labels, Gauge>,
    destination_pressure: Family<Labels, Gauge<f64, AtomicU64>>,
    overflows: Counter,
    drops: Counter,
    accept_queue: Family<Labels, Gauge>,
    reuse: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl HostMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("sluice");
        r.register(
            "host_local_ports",
            "Local ports outgoing connections can take (net.ipv4.ip_local_port_range)",
            m.local_ports.clone(),
        );
        r.register("host_new_connections_per_second_ceiling", "New connections a second one destination can take at most: local ports / 60 s of TIME_WAIT", m.ceiling.clone());
        r.register(
            "host_outgoing_connections",
            "Outgoing TCP connections of this network namespace by state (established, time_wait)",
            m.outgoing.clone(),
        );
        r.register(
            "host_destination_ports_in_use",
            "Local ports held (established + time_wait) towards each backend server address",
            m.destination_ports.clone(),
        );
        r.register(
            "host_destination_port_pressure",
            "Share of the local ports held towards each backend server address (0-1)",
            m.destination_pressure.clone(),
        );
        r.register("host_listen_overflows", "Connections dropped because a listen (accept) queue was full, in this network namespace, since sluice started (TcpExt ListenOverflows)", m.overflows.clone());
        r.register("host_listen_drops", "SYNs dropped at a listening socket for any reason, since sluice started (TcpExt ListenDrops)", m.drops.clone());
        r.register(
            "listener_accept_queue",
            "Connections waiting in a listener's accept queue now",
            m.accept_queue.clone(),
        );
        r.register(
            "backend_reuse_ratio",
            "Requests per upstream connection opened, over the backend's current servers (1 = no reuse at all)",
            m.reuse.clone(),
        );
        m
    }
}

/// What one sample needs to know about sluice: its listeners' addresses, and the
/// addresses of its backends' servers.
pub struct Known {
    pub listeners: Vec<(String, SocketAddr)>,
    pub destinations: BTreeSet<SocketAddr>,
    /// Per backend: connections opened and requests that reused one.
    pub reuse: Vec<(String, u64, u64)>,
}

/// Kernel counters at the last sample, to count what happened since.
#[derive(Default)]
pub struct Sampler {
    last: Option<(u64, u64)>,
    shown: BTreeSet<SocketAddr>,
    backends: BTreeSet<String>,
}

impl Sampler {
    /// Reads `/proc` once and updates `m` (a blocking read: call it off the workers).
    pub fn sample(&mut self, m: &HostMetrics, known: &Known) {
        let host = facts::read();
        m.local_ports.set(host.local_ports as i64);
        m.ceiling.set(host.local_ports as f64 / 60.0);
        let all = sockets::all();
        let held = sockets::by_destination(&all, host.ip_local_port_range);
        let (mut est, mut tw) = (0, 0);
        for h in held.values() {
            est += h.established;
            tw += h.time_wait;
        }
        m.outgoing
            .get_or_create(&vec![("state", "established".into())])
            .set(est as i64);
        m.outgoing
            .get_or_create(&vec![("state", "time_wait".into())])
            .set(tw as i64);
        for gone in self.shown.difference(&known.destinations) {
            let l = vec![("destination", gone.to_string())];
            m.destination_ports.remove(&l);
            m.destination_pressure.remove(&l);
        }
        for d in &known.destinations {
            let ports = held.get(d).map_or(0, sockets::Held::ports);
            let l = vec![("destination", d.to_string())];
            m.destination_ports.get_or_create(&l).set(ports as i64);
            let pressure = ports as f64 / host.local_ports.max(1) as f64;
            m.destination_pressure.get_or_create(&l).set(pressure);
        }
        self.shown.clone_from(&known.destinations);
        for (name, addr) in &known.listeners {
            let queued = all
                .iter()
                .find(|s| s.state == sockets::LISTEN && s.local == *addr)
                .map_or(0, |s| s.queued);
            m.accept_queue
                .get_or_create(&vec![("listener", name.clone())])
                .set(queued as i64);
        }
        let now: BTreeSet<String> = known.reuse.iter().map(|(b, _, _)| b.clone()).collect();
        for gone in self.backends.difference(&now) {
            m.reuse.remove(&vec![("backend", gone.clone())]);
        }
        for (backend, opened, reused) in &known.reuse {
            if *opened > 0 {
                let ratio = (opened + reused) as f64 / *opened as f64;
                m.reuse
                    .get_or_create(&vec![("backend", backend.clone())])
                    .set(ratio);
            }
        }
        self.backends = now;
        if let Some((overflows, drops)) = listen_counters() {
            if let Some((o, d)) = self.last {
                m.overflows.inc_by(overflows.saturating_sub(o));
                m.drops.inc_by(drops.saturating_sub(d));
            }
            self.last = Some((overflows, drops));
        }
    }
}

/// `ListenOverflows` and `ListenDrops` of the `TcpExt` lines of `/proc/net/netstat`
/// (a header line of names, then a line of values).
fn listen_counters() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    parse_netstat(&text)
}

pub fn parse_netstat(text: &str) -> Option<(u64, u64)> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let get = |want: &str| {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == want)
            .and_then(|(_, v)| v.parse().ok())
    };
    Some((get("ListenOverflows")?, get("ListenDrops")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn netstat_listen_counters_parse() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 7 9\nIpExt: a\nIpExt: 1\n";
        assert_eq!(super::parse_netstat(text), Some((7, 9)));
    }
}
