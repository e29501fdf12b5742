//! What sluice takes from the host: workers from the cgroup's CPU quota (not the
//! host's cores), and the listen backlog from `net.core.somaxconn` (a configured one
//! above it is warned about, naming the sysctl). The backlog a socket really got is
//! read back with `ss` (its Send-Q column on a listening socket).

use sluice_testkit::Sluice;
use std::path::PathBuf;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

const CONFIG: &str = r#"
log: {format: json}
admin: {bind: "127.0.0.1:0"}
listeners: [{name: egress, bind: "127.0.0.1:0"}]
"#;

/// A CPU cgroup (v2 if the unified hierarchy has the cpu controller, else v1) with a
/// quota of `cpus`, removed on drop (once empty).
struct CpuCgroup(PathBuf);

impl CpuCgroup {
    fn new(cpus: f64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("sluice-test-{}-{nanos}", std::process::id());
        let period = 100_000u64;
        let quota = (cpus * period as f64) as u64;
        let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"));
        let dir = if v2 {
            PathBuf::from("/sys/fs/cgroup").join(&name)
        } else {
            PathBuf::from("/sys/fs/cgroup/cpu").join(&name)
        };
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "this test needs a writable CPU cgroup (root, cgroup v1 cpu or v2): {}: {e}",
                dir.display()
            )
        });
        if v2 {
            std::fs::write(dir.join("cpu.max"), format!("{quota} {period}")).unwrap();
        } else {
            std::fs::write(dir.join("cpu.cfs_period_us"), period.to_string()).unwrap();
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()).unwrap();
        }
        Self(dir)
    }

    /// A script that joins the cgroup and then becomes sluice.
    fn wrapper(&self, scratch: &std::path::Path) -> PathBuf {
        let script = scratch.join("in-cgroup.sh");
        let body = format!(
            "#!/bin/sh\necho $$ > {}/cgroup.procs\nexec {SLUICE} \"$@\"\n",
            self.0.display()
        );
        std::fs::write(&script, body).unwrap();
        std::process::Command::new("chmod")
            .args(["+x", script.to_str().unwrap()])
            .status()
            .unwrap();
        script
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

async fn started(sluice: &Sluice) -> sluice_testkit::serde_json::Value {
    sluice.wait_for_log("sluice started", |_| true).await
}

#[tokio::test]
async fn workers_follow_the_cgroup_cpu_quota_and_say_so() {
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        host >= 2,
        "the quota must be below the host's {host} CPUs to show"
    );
    let scratch = sluice_testkit::scratch_dir();
    let cgroup = CpuCgroup::new(1.0);
    let mut sluice = Sluice::start(cgroup.wrapper(scratch.path()), CONFIG).await;
    let line = started(&sluice).await;
    assert_eq!(line["fields"]["workers"], 1, "{line}");
    let from = line["fields"]["workers_from"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(from.contains("cgroup") && from.contains("1 CPUs"), "{from}");
    let config = sluice.admin_get_json("/config").await;
    assert_eq!(config["process"]["workers"], 1, "{config}");
    assert_eq!(config["process"]["workers_from"], from.as_str());
    sluice.terminate();
    sluice.wait_exit().await;

    // runtime.workers wins over the quota.
    let set = format!("{CONFIG}runtime: {{workers: 2}}\n");
    let mut sluice = Sluice::start(cgroup.wrapper(scratch.path()), &set).await;
    assert_eq!(
        started(&sluice).await["fields"]["workers_from"],
        "runtime.workers"
    );
    // Exited, so the cgroup is empty and can go.
    sluice.terminate();
    sluice.wait_exit().await;
}

/// The backlog `ss` shows for the listening socket on `port`.
fn backlog_of(port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let send_q = text.split_whitespace().nth(2).unwrap_or_default();
    send_q
        .parse()
        .unwrap_or_else(|_| panic!("no listening socket on {port}: {text:?}"))
}

#[tokio::test]
async fn the_backlog_defaults_to_somaxconn_and_one_above_it_is_warned_about() {
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sluice = Sluice::start(SLUICE, CONFIG).await;
    let port = sluice.listener_addr("egress").port();
    assert_eq!(backlog_of(port), somaxconn);

    let above = somaxconn + 1000;
    let yaml = CONFIG.replace(
        r#"bind: "127.0.0.1:0"}]"#,
        &format!(r#"bind: "127.0.0.1:0", backlog: {above}}}]"#),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let warned = sluice
        .wait_for_stderr(|l| l.contains("above net.core.somaxconn"))
        .await;
    assert!(warned.contains("sysctl -w net.core.somaxconn"), "{warned}");
    assert_eq!(
        backlog_of(sluice.listener_addr("egress").port()),
        somaxconn,
        "the kernel cut it"
    );
}

/// `sluice_host_*`: after traffic to an origin, its address is a destination with
/// ports in use; the listener's accept queue and the kernel's counters are exported;
/// and every metric family sluice exports is in the README's metrics table.
#[tokio::test]
async fn host_metrics_show_ports_per_destination_and_every_metric_is_documented() {
    let origin = sluice_testkit::Origin::start().await;
    let yaml = sluice_testkit::app_config(&[origin.server_spec()], "");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    for _ in 0..3 {
        let r = sluice_testkit::get(egress, "api.test", "/").await;
        assert_eq!(r.status, 200);
    }
    // Three requests over one pooled upstream connection.
    sluice
        .wait_for_metric(r#"sluice_backend_reuse_ratio{backend="app"}"#, |v| v == 3.0)
        .await;
    let destination = format!(
        r#"sluice_host_destination_ports_in_use{{destination="{}"}}"#,
        origin.addr()
    );
    sluice.wait_for_metric(&destination, |v| v >= 1.0).await;
    let ports: f64 = {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let r: Vec<f64> = range
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        r[1] - r[0] + 1.0
    };
    sluice
        .wait_for_metric("sluice_host_local_ports", |v| v == ports)
        .await;
    let text = sluice.metrics().await;
    for series in [
        r#"sluice_listener_accept_queue{listener="egress"}"#,
        "sluice_host_listen_overflows_total",
        r#"sluice_host_outgoing_connections{state="time_wait"}"#,
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    let readme = include_str!("../../../../README.md");
    let undocumented: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            !readme.contains(&format!("`{name}`")) && !readme.contains(&format!("`{name}_total`"))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in the README's metrics table: {undocumented:?}"
    );
}
