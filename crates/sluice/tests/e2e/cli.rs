//! The command line and the admin plane: `sluice check` rejects bad configs naming the
//! file, the field and why (and accepts the bundled examples), `sluice run` refuses to
//! start on a bad config, `--version`/`--help` work, and the admin listener answers
//! `/healthz`, `/readyz` and `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{get, scratch_dir, Certs, Origin, Sluice};
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A valid start for configs: one listener on a free port.
const LISTENER: &str = "listeners: [{name: egress, bind: \"127.0.0.1:0\"}]\n";

/// Runs the binary with `args` to completion.
fn sluice(args: &[&str]) -> Output {
    Command::new(SLUICE)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {SLUICE} {args:?}: {e}"))
}

/// `sluice check --config <path>`.
fn check(path: &Path) -> Output {
    sluice(&["check", "--config", path.to_str().expect("utf-8 path")])
}

/// Writes `yaml` to `name` in `dir` and returns the path.
fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// Asserts `sluice check` rejects `yaml` with exit code 1 and a single line
/// `error: <file>: <field>: <reason>` on stderr, and returns the reason.
fn assert_rejected(yaml: &str, field: &str) -> String {
    let dir = scratch_dir();
    let path = write(dir.path(), "bad.yaml", yaml);
    let out = check(&path);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "sluice check should reject this config (stderr: {stderr})\n{yaml}"
    );
    let prefix = format!("error: {}: {field}: ", path.display());
    let reason = stderr
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected a line starting {prefix:?}, got {stderr:?}"));
    assert!(!reason.is_empty(), "the error should say why: {stderr:?}");
    assert!(!reason.contains('\n'), "one line: {stderr:?}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for a rejected config"
    );
    reason.to_owned()
}

/// A typo in a field name is an error naming the full path of the field, not ignored.
#[test]
fn check_rejects_an_unknown_field_naming_its_path() {
    let reason = assert_rejected(
        &format!(
            "{LISTENER}backends:\n  - name: api\n    servers: [\"api.test:443\"]\n    pool: {{max_idel: 3}}\n"
        ),
        "backends[0].pool.max_idel",
    );
    assert!(reason.contains("unknown field"), "{reason}");
    assert!(
        reason.contains("max_idle_per_server"),
        "the error should list the valid fields: {reason}"
    );
}

/// A duration without a unit (`5` rather than `5s`) is ambiguous and rejected, and the
/// message says how to write it.
#[test]
fn check_rejects_a_duration_without_a_unit() {
    let reason = assert_rejected(
        &format!(
            "{LISTENER}backends:\n  - name: api\n    servers: [\"api.test:443\"]\n    timeouts: {{connect: 5}}\n"
        ),
        "backends[0].timeouts.connect",
    );
    assert!(
        reason.contains("5s"),
        "the error should suggest a unit: {reason}"
    );

    let reason = assert_rejected(
        &format!(
            "{LISTENER}backends:\n  - name: api\n    servers: [\"api.test:443\"]\n    pool: {{idle_timeout: \"90\"}}\n"
        ),
        "backends[0].pool.idle_timeout",
    );
    assert!(reason.contains("90"), "{reason}");
}

/// A route naming a backend that does not exist is rejected at the route, listing the
/// backends that do exist.
#[test]
fn check_rejects_a_route_to_an_unknown_backend() {
    let reason = assert_rejected(
        &format!(
            "{LISTENER}routes: [{{host: api.test, backend: apii}}]\nbackends:\n  - name: api\n    servers: [\"api.test:443\"]\n"
        ),
        "routes[0].backend",
    );
    assert!(reason.contains("apii"), "{reason}");
    assert!(reason.contains("api"), "{reason}");
}

/// A CA file that does not exist is caught by `check`, at `tls.ca_file`, before any
/// traffic would fail on it.
#[test]
fn check_rejects_a_missing_ca_file() {
    let dir = scratch_dir();
    let missing = dir.path().join("no-such-ca.pem");
    let reason = assert_rejected(
        &format!(
            "{LISTENER}backends:\n  - name: api\n    servers: [\"api.test:443\"]\n    tls: {{ca_file: \"{}\"}}\n",
            missing.display()
        ),
        "backends[0].tls.ca_file",
    );
    assert!(reason.contains("no-such-ca.pem"), "{reason}");
}

/// A CA file that exists but cannot be used (not readable as a file, or holding no
/// certificate) is also reported at `tls.ca_file`, the field the user has to fix.
#[test]
fn check_rejects_an_unreadable_ca_file_at_its_field() {
    let dir = scratch_dir();
    let not_pem = write(dir.path(), "garbage.pem", "this is not a certificate\n");
    let a_directory = dir.path().join("ca-dir");
    std::fs::create_dir(&a_directory).unwrap();
    let mut unusable = vec![a_directory, not_pem];
    // Without root, a mode-000 file is unreadable too (root reads it anyway).
    let locked = write(dir.path(), "locked.pem", Certs::new(&["x.test"]).ca_pem());
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&locked).is_err() {
        unusable.push(locked);
    }
    for ca in unusable {
        let reason = assert_rejected(
            &format!(
                "{LISTENER}backends:\n  - name: api\n    servers: [\"api.test:443\"]\n    tls: {{ca_file: \"{}\"}}\n",
                ca.display()
            ),
            "backends[0].tls.ca_file",
        );
        assert!(reason.contains(&ca.display().to_string()), "{reason}");
    }
}

/// Every config shipped in `examples/` is valid: `sluice check` exits 0 for each.
#[test]
fn check_accepts_every_bundled_example() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).expect("read examples/") {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            continue;
        }
        let out = check(&path);
        assert!(
            out.status.success(),
            "sluice check {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(": ok"), "{}: {stdout}", path.display());
        checked += 1;
    }
    assert!(checked > 0, "no example configs found in {examples}");
}

/// `sluice run` validates exactly like `check`: a bad config prints the same
/// `error: file: field: reason` line and exits non-zero without binding anything.
#[tokio::test]
async fn run_refuses_a_bad_config_with_the_same_message_and_binds_nothing() {
    let dir = scratch_dir();
    let socket = dir.path().join("never").join("egress.sock");
    let yaml = format!(
        "log: {{format: json}}\nlisteners: [{{name: egress, bind: \"unix:{}\"}}]\nroutes: [{{host: api.test, backend: apii}}]\nbackends:\n  - name: api\n    servers: [\"api.test:443\"]\n",
        socket.display()
    );
    let mut sluice = Sluice::spawn(SLUICE, &yaml);
    let status = sluice.wait_exit().await;
    assert!(!status.success(), "sluice run must fail: {status}");

    let expected = check(sluice.config_path());
    let expected = String::from_utf8_lossy(&expected.stderr);
    let expected = expected.trim_end();
    assert!(
        expected.starts_with(&format!(
            "error: {}: routes[0].backend: ",
            sluice.config_path().display()
        )),
        "{expected}"
    );
    let stderr = sluice.stderr_lines();
    assert!(
        stderr.iter().any(|l| l == expected),
        "sluice run should print {expected:?}; printed {stderr:?}"
    );
    assert!(
        !sluice.stderr_contains("listening"),
        "nothing may be bound: {stderr:?}"
    );
    assert!(
        !socket.exists() && !socket.parent().unwrap().exists(),
        "the listener's socket must not be created"
    );
    assert!(sluice.stdout_lines().is_empty());
}

/// `--version` prints the version; `--help` lists the `run` and `check` commands.
#[test]
fn version_and_help() {
    let out = sluice(&["--version"]);
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        version.trim(),
        format!("sluice {}", env!("CARGO_PKG_VERSION"))
    );

    let out = sluice(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["run", "check"] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "--help should list `{command}`:\n{help}"
        );
    }
    assert!(help.contains("--version"), "{help}");
}

/// The admin listener: `/healthz` and `/readyz` are 200 once sluice has started, and after one
/// request through a TLS backend `/metrics` shows the request, the connection it opened,
/// the pool's idle gauge and the connect and TLS handshake timings.
#[tokio::test]
async fn admin_serves_health_readiness_and_metrics() {
    let certs = Certs::new(&["origin.test"]);
    let origin = Origin::builder().tls(&certs).start().await;
    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes: [{{host: origin.test, backend: app}}]
backends:
  - name: app
    servers: ["{}"]
    tls: {{sni: origin.test, ca_file: "{}"}}
"#,
        origin.server_spec(),
        certs.ca_file().display()
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let admin = sluice.admin_addr();

    let health = get(admin, "admin", "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.text());
    // Readiness flips once the accept loops run, which sluice announces as
    // "sluice started" (a moment after the listeners report their addresses).
    sluice
        .wait_for_stderr(|l| l.contains(r#""message":"sluice started""#))
        .await;
    let ready = get(admin, "admin", "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(get(admin, "admin", "/nope").await.status, 404);

    let response = get(sluice.listener_addr("egress"), "origin.test", "/").await;
    assert_eq!(response.status, 200, "{}", response.text());
    // The request counter moves when the response is finished, just before the access
    // log line is written: wait for that line rather than polling.
    sluice.wait_for_access_log(1).await;

    let metrics = get(admin, "admin", "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        metrics.header("content-type")
    );
    let text = metrics.text();
    let has = |line: &str| text.lines().any(|l| l == line);
    let has_series = |prefix: &str| text.lines().any(|l| l.starts_with(prefix));
    for expected in [
        r#"sluice_requests_total{listener="egress",route="origin.test/",backend="app",status="200"} 1"#,
        r#"sluice_upstream_connections_opened_total{backend="app"} 1"#,
        r#"sluice_upstream_connect_duration_seconds_count{backend="app"} 1"#,
        r#"sluice_upstream_tls_handshake_duration_seconds_count{backend="app"} 1"#,
        r#"sluice_request_duration_seconds_count{backend="app"} 1"#,
    ] {
        assert!(has(expected), "/metrics lacks {expected}:\n{text}");
    }
    let build_info = format!(
        r#"sluice_build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    );
    assert!(has(&build_info), "/metrics lacks {build_info}:\n{text}");
    assert!(
        has_series(r#"sluice_upstream_idle_connections{backend="app"} "#),
        "/metrics lacks the idle gauge:\n{text}"
    );
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
}
