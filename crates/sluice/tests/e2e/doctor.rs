//! `sluice doctor` in a network namespace of its own, with a port range narrowed to
//! 100 ports and a known number of connections to one destination: 25 closed ones
//! (their client sides in TIME_WAIT) and 5 open. What it prints must be those figures.

use sluice_testkit::serde_json::{self, Value};
use std::process::Command;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("sluice-doctor-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "delete", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "this test needs root and iproute2 (ip netns add {name})"
        );
        let ns = Self(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40099"]);
        ns
    }

    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// Inside the namespace: a listener, 25 connections closed by the client first (so
/// the client side waits in TIME_WAIT) and 5 kept open while `sluice doctor` runs
/// with the given arguments (`{port}` replaced by the listener's port).
const SCRIPT: &str = r#"
import socket, subprocess, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
port = srv.getsockname()[1]
for _ in range(25):
    c = socket.create_connection(("127.0.0.1", port)); s, _ = srv.accept()
    c.close(); s.recv(1); s.close()
kept = []
for _ in range(5):
    c = socket.create_connection(("127.0.0.1", port)); s, _ = srv.accept(); kept += [c, s]
args = [a.replace("{port}", str(port)) for a in sys.argv[1:]]
out = subprocess.run(args, capture_output=True, text=True)
sys.stderr.write(out.stderr)
print(port)
print(out.stdout)
"#;

fn run(ns: &Netns, args: &[&str]) -> (u16, String) {
    let mut cmd = vec!["python3", "-c", SCRIPT, SLUICE, "doctor"];
    cmd.extend_from_slice(args);
    let out = ns.exec(&cmd);
    let (port, rest) = out
        .split_once('\n')
        .expect("the port, then doctor's output");
    (port.trim().parse().expect("a port"), rest.to_string())
}

#[test]
fn doctor_counts_time_wait_and_established_per_destination_and_the_ceiling() {
    let ns = Netns::new();
    let (port, out) = run(&ns, &["--json", "--destination", "127.0.0.1:{port}"]);
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(r["host"]["local_ports"], 100, "{r}");
    assert_eq!(
        r["host"]["ip_local_port_range"],
        serde_json::json!([40000, 40099])
    );
    let d = &r["destinations"][0];
    assert_eq!(d["destination"], format!("127.0.0.1:{port}"));
    assert_eq!(
        (d["time_wait"].as_u64(), d["established"].as_u64()),
        (Some(25), Some(5)),
        "{d}"
    );
    assert_eq!(d["ports_free"], 70);
    // The listener's port is in the range too: what it accepted is not outgoing.
    assert_eq!(
        r["outgoing"],
        serde_json::json!({"established": 5, "time_wait": 25})
    );
    let ceiling = r["new_connections_per_second_per_destination"]
        .as_f64()
        .unwrap();
    assert!((ceiling - 100.0 / 60.0).abs() < 1e-9, "{ceiling}");
    let advice: Vec<&str> = r["advice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["change"].as_str().unwrap())
        .collect();
    assert!(advice[0].contains("sluice's pool"), "{advice:?}");
    assert!(
        advice.iter().any(|a| a.contains("ip_local_port_range")),
        "{advice:?}"
    );

    // The text form, for people: the same figures.
    let (port, text) = run(&ns, &[]);
    assert!(text.contains("40000-40099 (100 ports)"), "{text}");
    assert!(text.contains("2 new connections/s"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("127.0.0.1:{port} ")))
        .unwrap_or_else(|| panic!("no row for the destination:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["5", "25", "70"], "{row}");
}
