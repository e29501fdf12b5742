//! What the host allows: the cgroup's CPU quota (how many workers), the kernel's
//! listen-backlog ceiling, and (for `sluice doctor` and the `sluice_host_*` metrics)
//! the limits that decide how many connections a destination can take.

pub mod cgroup;
pub mod facts;
pub mod metrics;
pub mod sockets;

/// How many worker threads the data plane runs, and why that many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workers {
    pub count: usize,
    pub source: String,
}

/// `configured` (`runtime.workers`) if set; else the cgroup's CPU quota rounded up
/// (a container with `cpu.max` 150000/100000 gets 2), never more than the host's
/// CPUs; else the host's CPUs.
pub fn workers(configured: usize) -> Workers {
    if configured > 0 {
        return Workers {
            count: configured,
            source: "runtime.workers".into(),
        };
    }
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    match cgroup::cpu_limit() {
        Some(l) => Workers {
            count: (l.cpus.ceil() as usize).clamp(1, host),
            source: format!("{} ({} CPUs)", l.source, l.cpus),
        },
        None => Workers {
            count: host,
            source: format!("the host's {host} CPUs (no cgroup CPU quota)"),
        },
    }
}

/// A `/proc/sys` value (`net/core/somaxconn`), if readable and a number.
pub fn sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The kernel's ceiling on a listen backlog: a larger one is silently cut to it.
pub fn somaxconn() -> Option<u32> {
    sysctl("net/core/somaxconn").and_then(|v| u32::try_from(v).ok())
}
