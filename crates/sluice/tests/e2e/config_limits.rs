//! Whatever `sluice check` accepts must also run: values that used to pass `check` and
//! then panic or fail at run time (huge durations and counts, health checks that
//! cannot form a request, CA or config files that never end, deep YAML nesting) are
//! rejected as `error: FILE: field.path: why`, naming the path once; and a config at
//! every limit passes `check`, starts and serves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{get, scratch_dir, Origin, Sluice, TestDns};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tokio::time::Instant;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// How long one `sluice check` may take; the hangs fixed here never ended.
const CHECK_DEADLINE: Duration = Duration::from_secs(20);

const LISTENER: &str = "listeners: [{name: egress, bind: \"127.0.0.1:0\"}]\n";

/// `sluice check --config <path>`, killed and failed if it outlives [`CHECK_DEADLINE`].
fn check(path: &Path) -> (Output, Duration) {
    let child = Command::new(SLUICE)
        .args(["check", "--config"])
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice check");
    let pid = child.id();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(CHECK_DEADLINE) {
        Ok(out) => (out.expect("wait for sluice check"), started.elapsed()),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "sluice check {} still running after {CHECK_DEADLINE:?}",
                path.display()
            );
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// Asserts `check` exits 1 with the one line `error: <path>: <field>: <reason>` (the
/// field named once), and returns the reason.
fn assert_rejected_file(path: &Path, field: &str) -> String {
    let (out, _) = check(path);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "should be rejected: {stderr}");
    let prefix = if field.is_empty() {
        format!("error: {}: ", path.display())
    } else {
        format!("error: {}: {field}: ", path.display())
    };
    let reason = stderr
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected a line starting {prefix:?}, got {stderr:?}"))
        .to_owned();
    assert!(!reason.is_empty() && !reason.contains('\n'), "{stderr:?}");
    // Neither the path nor a parent of it again (`listeners[0]: invalid bind …`).
    let ends = field.match_indices(['.', '[']).chain([(field.len(), "")]);
    for (i, _) in ends.filter(|(i, _)| *i > 0) {
        let parent = &field[..i];
        assert!(
            !reason.contains(&format!("{parent}: ")),
            "path said twice: {stderr:?}"
        );
    }
    assert!(out.stdout.is_empty());
    reason
}

fn assert_rejected(yaml: &str, field: &str) -> String {
    let dir = scratch_dir();
    assert_rejected_file(&write(dir.path(), "bad.yaml", yaml), field)
}

/// One backend `app` with `extra` settings in its flow mapping.
fn backend(extra: &str) -> String {
    format!("{LISTENER}backends: [{{name: app, servers: [\"127.0.0.1:9\"], {extra}}}]\n")
}

#[test]
fn durations_longer_than_365d_are_rejected() {
    for (yaml, field) in [
        (
            backend("timeouts: {connect: 10000000000000000000s}"),
            "backends[0].timeouts.connect",
        ),
        (
            backend("health: {check: {interval: 10000000000000000000s}}"),
            "backends[0].health.check.interval",
        ),
        (
            "listeners: [{name: egress, bind: \"127.0.0.1:0\", keepalive_timeout: 366d}]\n"
                .to_string(),
            "listeners[0].keepalive_timeout",
        ),
        (
            format!("{LISTENER}shutdown: {{drain_timeout: 2years}}\n"),
            "shutdown.drain_timeout",
        ),
    ] {
        let reason = assert_rejected(&yaml, field);
        assert!(reason.starts_with("invalid duration \""), "{reason}");
        assert!(reason.contains("at most 365d"), "{reason}");
    }
}

#[test]
fn counts_that_panic_or_fail_at_run_time_are_rejected_naming_the_limit() {
    let top = |s: &str| format!("{LISTENER}{s}\n");
    for (yaml, field, why) in [
        (
            top("runtime: {workers: 1000000}"),
            "runtime.workers",
            "1024",
        ),
        (
            top("limits: {max_client_connections: 4611686018427387904}"),
            "limits.max_client_connections",
            "10000000",
        ),
        (
            top("resolver: {nameservers: [\"127.0.0.1:53\"], attempts: 1000}"),
            "resolver.attempts",
            "10",
        ),
        (
            backend("tcp: {keepalive_count: 128}"),
            "backends[0].tcp.keepalive_count",
            "127",
        ),
        (
            backend("tcp: {keepalive_idle: 32768s}"),
            "backends[0].tcp.keepalive_idle",
            "32767s",
        ),
        (
            backend("tcp: {keepalive_interval: 100ms}"),
            "backends[0].tcp.keepalive_interval",
            "between 1s and 32767s",
        ),
        (
            backend("pool: {min_idle_per_server: 1000000, max_idle_per_server: 1000000}"),
            "backends[0].pool.min_idle_per_server",
            "1000",
        ),
        (
            backend("retries: {attempts: 4000000000}"),
            "backends[0].retries.attempts",
            "10",
        ),
    ] {
        let reason = assert_rejected(&yaml, field);
        assert!(reason.contains(why), "{field}: {reason}");
    }
}

#[test]
fn health_checks_that_cannot_form_a_request_are_rejected() {
    for (check, field) in [
        ("{path: \"/a b\"}", "backends[0].health.check.path"),
        ("{path: \"/a\\tb\"}", "backends[0].health.check.path"),
        ("{host: \"a\\nb\"}", "backends[0].health.check.host"),
        (
            "{host: \"api example.com\"}",
            "backends[0].health.check.host",
        ),
    ] {
        let reason = assert_rejected(&backend(&format!("health: {{check: {check}}}")), field);
        assert!(reason.contains("not a"), "{reason}");
    }
}

#[test]
fn files_that_never_end_are_refused_at_once() {
    // The config itself.
    let zero = Path::new("/dev/zero");
    let reason = assert_rejected_file(zero, "");
    assert_eq!(
        reason,
        "cannot read file: not a regular file (a character device)"
    );
    // A CA bundle (used to grow by ~800 MB/s until killed).
    let yaml = backend("tls: {ca_file: /dev/zero}");
    let reason = assert_rejected(&yaml, "backends[0].tls.ca_file");
    assert_eq!(reason, "cannot read /dev/zero: not a regular file");

    let dir = scratch_dir();
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'\n'; 16 * 1024 * 1024 + 1]).unwrap();
    let yaml = backend(&format!("tls: {{ca_file: \"{}\"}}", big.display()));
    let reason = assert_rejected(&yaml, "backends[0].tls.ca_file");
    assert!(
        reason.ends_with("larger than 16 MiB (the limit)"),
        "{reason}"
    );
}

#[test]
fn deep_nesting_is_rejected_quickly_and_a_large_valid_config_is_not() {
    let dir = scratch_dir();
    let n = 100_000;
    let deep = format!("{LISTENER}routes: {}{}\n", "[".repeat(n), "]".repeat(n));
    let path = write(dir.path(), "deep.yaml", &deep);
    let started = Instant::now();
    let reason = assert_rejected_file(&path, "");
    let took = started.elapsed();
    assert_eq!(
        reason,
        "[ ] or { } nested more than 64 levels deep at line 2 column 73"
    );
    // Was ~19 s; the bound is generous for a loaded debug build.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    eprintln!("check rejected {} bytes of nesting in {took:?}", deep.len());

    let mut big = format!("{LISTENER}backends:\n");
    for b in 0..50 {
        big.push_str(&format!(
            "  - {{name: b{b}, servers: [\"127.0.0.1:{}\"], health: {{check: {{path: \"/h?x=[1]\"}}}}}}\n",
            1000 + b
        ));
    }
    big.push_str("routes:\n");
    for r in 0..5000 {
        big.push_str(&format!(
            "  - {{host: \"r{r}.example.com\", path_prefix: \"/v{}\", backend: b{}}}  # [[[[\n",
            r % 3,
            r % 50
        ));
    }
    let (out, took) = check(&write(dir.path(), "big.yaml", &big));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5000 routes, 50 backends"), "{stdout}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    eprintln!(
        "check accepted {} bytes, 5,000 routes, in {took:?}",
        big.len()
    );
}

#[test]
fn serde_errors_say_the_field_path_once() {
    for (yaml, field, why) in [
        (
            "listeners: [{name: e, bind: \"nonsense\"}]\n".to_string(),
            "listeners[0].bind",
            "invalid bind address \"nonsense\"",
        ),
        (
            "listeners: [{name: e, bind: \"unix:/tmp/x.sock\", mode: \"999\"}]\n".into(),
            "listeners[0].mode",
            "invalid mode \"999\"",
        ),
        (
            format!("{LISTENER}backends: [{{name: app, servers: [\"nonsense\"]}}]\n"),
            "backends[0].servers[0]",
            "invalid server \"nonsense\"",
        ),
        (
            backend("balance: hash, hash_on: \"cookie:x\""),
            "backends[0].hash_on",
            "invalid hash_on \"cookie:x\"",
        ),
        (
            format!("{LISTENER}backends:\n  - name: app\n    servers: [\"127.0.0.1:9\"]\n    health:\n      passive: {{ejection_time: 10 s x}}\n"),
            "backends[0].health.passive.ejection_time",
            "invalid duration \"10 s x\"",
        ),
    ] {
        let reason = assert_rejected(&yaml, field);
        assert!(reason.starts_with(why), "{reason}");
        assert!(reason.contains(" at line "), "the location is kept: {reason}");
    }
}

/// The largest value of every bounded setting (durations of 365d, TCP keepalive at the
/// kernel's limits, ...) passes `check`, and `sluice run` starts with it, resolves,
/// health-checks, proxies a request and drains on SIGTERM.
#[tokio::test]
async fn a_config_at_every_limit_passes_check_and_runs() {
    let origin = Origin::start().await;
    let dns = TestDns::start().await;
    dns.set("app.test", &["127.0.0.1".parse().unwrap()], 1);
    let year = "365d";
    let yaml = format!(
        r#"
runtime: {{workers: 4}}
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
shutdown: {{drain_timeout: {year}}}
limits: {{max_client_connections: 10000000}}
resolver: {{nameservers: ["{dns}"], timeout: {year}, attempts: 10}}
listeners:
  - {{name: egress, bind: "127.0.0.1:0", keepalive_timeout: {year}, request_header_timeout: {year}, request_body_idle_timeout: {year}}}
routes: [{{host: "*", backend: app}}]
backends:
  - name: app
    servers: ["app.test:{port}"]
    tcp: {{keepalive_idle: 32767s, keepalive_interval: 32767s, keepalive_count: 127}}
    dns: {{min_ttl: {year}, max_ttl: {year}, retry_interval: {year}}}
    pool: {{idle_timeout: {year}, max_lifetime: {year}, min_idle_per_server: 2, h2_ping_interval: {year}, h2_ping_timeout: {year}}}
    timeouts: {{connect: {year}, response: {year}, queue: {year}, response_body_idle: {year}}}
    health:
      check: {{path: "/health", host: "app.test:{port}", interval: {year}, timeout: {year}}}
      passive: {{ejection_time: {year}, max_ejection_time: {year}}}
    retries: {{attempts: 10}}
"#,
        dns = dns.addr(),
        port = origin.addr().port(),
    );
    let dir = scratch_dir();
    let (out, _) = check(&write(dir.path(), "max.yaml", &yaml));
    assert!(
        out.status.success(),
        "check: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut sluice = Sluice::start(SLUICE, &yaml).await;
    let r = get(sluice.listener_addr("egress"), "app.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(origin.requests(), 1);
    // The first check runs at once; the next one is a year away.
    origin.wait_until(|s| s.health_checks >= 1).await;
    let passed = format!(
        r#"sluice_health_checks_total{{backend="app",server="{}",result="pass"}}"#,
        origin.addr()
    );
    sluice.wait_for_metric(&passed, |v| v >= 1.0).await;
    // Warm pool: two idle connections (each with the maximal keepalive options).
    sluice
        .wait_for_metric(r#"sluice_upstream_idle_connections{backend="app"}"#, |v| {
            v >= 2.0
        })
        .await;
    sluice.terminate();
    let status = sluice.wait_exit().await;
    assert!(status.success(), "{status}\n{}", sluice.logs());
    assert!(!sluice.stderr_contains("panicked"), "{}", sluice.logs());
}
