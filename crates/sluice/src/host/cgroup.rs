//! The CPU (and memory) limits of the cgroup sluice runs in, v2 (`cpu.max`) or v1
//! (`cpu.cfs_quota_us` / `cpu.cfs_period_us`): a container's share, which the host's
//! core count (what NGINX's `worker_processes auto` sees) overstates.

use std::path::{Path, PathBuf};

/// A CPU quota: `cpus` cores' worth of time, and where that was read.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuLimit {
    pub cpus: f64,
    pub source: String,
}

/// The tightest CPU quota on the way from sluice's cgroup to the root, if any.
pub fn cpu_limit() -> Option<CpuLimit> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found: Option<CpuLimit> = None;
    for dir in cpu_dirs(&cgroups, &mounts) {
        let limit = match dir.version {
            2 => read(&dir.path.join("cpu.max")).and_then(|s| parse_v2(&s)),
            _ => {
                let quota = read(&dir.path.join("cpu.cfs_quota_us"));
                let period = read(&dir.path.join("cpu.cfs_period_us"));
                quota.zip(period).and_then(|(q, p)| parse_v1(&q, &p))
            }
        };
        if let Some(cpus) = limit {
            if found.as_ref().is_none_or(|f| cpus < f.cpus) {
                let file = if dir.version == 2 {
                    "cpu.max"
                } else {
                    "cpu.cfs_quota_us"
                };
                let source = format!("cgroup v{} {}", dir.version, dir.path.join(file).display());
                found = Some(CpuLimit { cpus, source });
            }
        }
    }
    found
}

/// The memory limit of sluice's cgroup, in bytes (v2 `memory.max`, v1
/// `memory.limit_in_bytes`; a v1 "no limit" is a huge number, not reported).
pub fn memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    controller_dirs(&cgroups, &mounts, "memory")
        .into_iter()
        .filter_map(|d| {
            let file = if d.version == 2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            read(&d.path.join(file))?.trim().parse::<u64>().ok()
        })
        .filter(|b| *b < (1 << 60))
        .min()
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// `cpu.max`: `"max 100000"` (no limit) or `"<quota> <period>"` in microseconds.
pub fn parse_v2(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let (quota, period) = (it.next()?, it.next().unwrap_or("100000"));
    cpus(quota.parse().ok()?, period.parse().ok()?)
}

/// v1: a quota of -1 is no limit.
pub fn parse_v1(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    cpus(u64::try_from(quota).ok()?, period.trim().parse().ok()?)
}

fn cpus(quota: u64, period: u64) -> Option<f64> {
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

pub struct Dir {
    pub version: u8,
    pub path: PathBuf,
}

/// The directories of sluice's cgroup and its ancestors that hold CPU settings.
fn cpu_dirs(cgroups: &str, mounts: &str) -> Vec<Dir> {
    controller_dirs(cgroups, mounts, "cpu")
}

/// For `controller`: sluice's cgroup directory and each ancestor's, under every
/// mount that serves it (a v1 hierarchy naming the controller, or the v2 one).
pub fn controller_dirs(cgroups: &str, mounts: &str, controller: &str) -> Vec<Dir> {
    let mut out = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(names), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let version = if names.is_empty() { 2 } else { 1 };
        if version == 1 && !names.split(',').any(|n| n == controller) {
            continue;
        }
        let Some((root, mount)) = mount_of(mounts, version, controller) else {
            continue;
        };
        // Inside a container the mount's root is often the container's own cgroup.
        let rel = path.strip_prefix(root.as_str()).unwrap_or(path);
        let mut dir = mount.join(rel.trim_start_matches('/'));
        loop {
            out.push(Dir {
                version,
                path: dir.clone(),
            });
            if dir == mount || !dir.pop() || !dir.starts_with(&mount) {
                break;
            }
        }
    }
    out
}

/// (root, mount point) of the cgroup hierarchy for `controller`, from mountinfo.
fn mount_of(mounts: &str, version: u8, controller: &str) -> Option<(String, PathBuf)> {
    mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let (root, point) = (fields.get(3)?, fields.get(4)?);
        let mut r = right.split(' ');
        let (fstype, _, options) = (r.next()?, r.next()?, r.next()?);
        let ours = match version {
            2 => fstype == "cgroup2",
            _ => fstype == "cgroup" && options.split(',').any(|o| o == controller),
        };
        ours.then(|| (root.to_string(), PathBuf::from(point)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_and_no_limit_is_none() {
        assert_eq!(parse_v2("max 100000\n"), None);
        assert_eq!(parse_v2("150000 100000\n"), Some(1.5));
        assert_eq!(parse_v1("-1", "100000"), None);
        assert_eq!(parse_v1("50000\n", "100000\n"), Some(0.5));
    }

    #[test]
    fn the_cgroup_and_its_ancestors_are_found_under_their_mounts() {
        let mounts = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                      40 31 0:35 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let v1 = controller_dirs("1:cpu:/kubepods/pod1\n", mounts, "cpu");
        let paths: Vec<_> = v1.iter().map(|d| d.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/sys/fs/cgroup/cpu/kubepods/pod1",
                "/sys/fs/cgroup/cpu/kubepods",
                "/sys/fs/cgroup/cpu"
            ]
        );
        let v2 = controller_dirs("0::/a\n", mounts, "cpu");
        assert_eq!(v2[0].version, 2);
        assert_eq!(v2[0].path, PathBuf::from("/sys/fs/cgroup/unified/a"));
        // A container whose mount root is its own cgroup.
        let inside = "32 31 0:29 /kubepods/pod1 /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let d = controller_dirs("1:cpu:/kubepods/pod1\n", inside, "cpu");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, PathBuf::from("/sys/fs/cgroup/cpu"));
    }
}
