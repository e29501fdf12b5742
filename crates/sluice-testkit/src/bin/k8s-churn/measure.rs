//! sluice's figures: its metrics, and its CPU and memory from /proc.

use super::*;

// ---------------------------------------------------------------------------------------
// sluice's figures: metrics and /proc
// ---------------------------------------------------------------------------------------

#[derive(Default, Clone, Copy, Debug)]
pub(super) struct Counters {
    pub(super) applied: f64,
    pub(super) unchanged: f64,
    pub(super) rejected: f64,
    pub(super) changed: f64,
    pub(super) same: f64,
}

/// The sum of `name`'s samples whose labels contain `label`.
pub(super) fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (labels, v) = r.split_once('}')?;
                    (labels, v)
                }
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            if !labels.contains(label) {
                return None;
            }
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

pub(super) async fn counters(admin: SocketAddr) -> Result<Counters, BoxError> {
    let (status, body) = KeepAlive::new(admin).get("sluice", "/metrics").await?;
    if status != 200 {
        return Err(format!("admin /metrics: {status}").into());
    }
    let text = String::from_utf8_lossy(&body);
    let reloads = "sluice_config_reloads_total";
    let translations = "sluice_kubernetes_translations_total";
    Ok(Counters {
        applied: metric(&text, reloads, "result=\"applied\""),
        unchanged: metric(&text, reloads, "result=\"unchanged\""),
        rejected: metric(&text, reloads, "result=\"rejected\""),
        changed: metric(&text, translations, "result=\"changed\""),
        same: metric(&text, translations, "result=\"unchanged\""),
    })
}

/// utime + stime of `pid`, in clock ticks.
pub(super) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces), from field 3 (state) on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `VmHWM`).
pub(super) fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub(super) fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Nearest-rank percentile of sorted `v` (`q` in 0..=1).
pub(super) fn pct(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}
