//! The host's limits that decide how many connections it can make: sysctls, open-file
//! limits and the cgroup's CPU and memory, read once into one value.

use super::{cgroup, sysctl};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// `net.ipv4.ip_local_port_range`: the ports outgoing connections take.
    pub ip_local_port_range: (u16, u16),
    pub local_ports: u64,
    /// 0 off, 1 on for outgoing connections, 2 (the default) loopback only.
    pub tcp_tw_reuse: Option<u64>,
    /// FIN_WAIT_2's timeout; TIME_WAIT is fixed at 60 s whatever this says.
    pub tcp_fin_timeout: Option<u64>,
    pub somaxconn: Option<u64>,
    pub tcp_max_syn_backlog: Option<u64>,
    /// Absent without the conntrack module (no NAT on this host).
    pub nf_conntrack_max: Option<u64>,
    pub nf_conntrack_count: Option<u64>,
    pub file_max: Option<u64>,
    pub open_files_soft: Option<u64>,
    pub open_files_hard: Option<u64>,
    pub cpus: usize,
    pub cgroup_cpus: Option<f64>,
    pub cgroup_memory_bytes: Option<u64>,
}

/// Linux's default range, where `/proc` does not say.
const DEFAULT_RANGE: (u16, u16) = (32768, 60999);

pub fn read() -> Facts {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or(DEFAULT_RANGE);
    let (soft, hard) = open_files();
    Facts {
        ip_local_port_range: range,
        local_ports: u64::from(range.1.saturating_sub(range.0)) + 1,
        tcp_tw_reuse: sysctl("net/ipv4/tcp_tw_reuse"),
        tcp_fin_timeout: sysctl("net/ipv4/tcp_fin_timeout"),
        somaxconn: sysctl("net/core/somaxconn"),
        tcp_max_syn_backlog: sysctl("net/ipv4/tcp_max_syn_backlog"),
        nf_conntrack_max: sysctl("net/netfilter/nf_conntrack_max"),
        nf_conntrack_count: sysctl("net/netfilter/nf_conntrack_count"),
        file_max: sysctl("fs/file-max"),
        open_files_soft: soft,
        open_files_hard: hard,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cgroup_cpus: cgroup::cpu_limit().map(|l| l.cpus),
        cgroup_memory_bytes: cgroup::memory_limit(),
    }
}

/// `Max open files` of `/proc/self/limits` (soft, hard); "unlimited" is `None`.
fn open_files() -> (Option<u64>, Option<u64>) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return (None, None);
    };
    let mut nums = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .map(|v| v.parse::<u64>().ok());
    (nums.next().flatten(), nums.next().flatten())
}
