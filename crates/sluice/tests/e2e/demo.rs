//! `sluice demo`, the README's first command: offline, it prints calls straight to
//! its origin (one TLS connection each) and through sluice (a few pooled ones), then
//! keeps sluice running (here for a moment, with `--exit-after`) and exits 0.

use std::time::Duration;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

#[tokio::test]
async fn the_demo_shows_pooled_calls_reusing_a_few_connections() {
    let run = tokio::process::Command::new(SLUICE)
        .args(["demo", "--calls", "40", "--exit-after", "200ms"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the demo ends within 60 s")
        .expect("run sluice demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |label: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} row:\n{stdout}"));
        line.split("  ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    // label, p50, p99, connections, calls per connection
    let direct = row("direct (TLS/call)");
    let pooled = row("through sluice");
    assert_eq!(
        direct[3], "40",
        "one connection per direct call: {direct:?}"
    );
    let conns: u64 = pooled[3].parse().unwrap();
    assert!((1..=2).contains(&conns), "pooled: {pooled:?}\n{stdout}");
    assert!(
        stdout.contains("curl -H 'Host: demo.sluice.test'"),
        "{stdout}"
    );
    assert!(stdout.contains("/metrics"), "{stdout}");
}
