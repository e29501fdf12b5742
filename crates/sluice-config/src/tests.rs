//! Loading and parsing as a whole: files that are not files, deep nesting, large
//! valid configs, and serde's messages naming each field once.

// The time bounds here are on real CPU work, which a paused clock could not shorten,
// and this crate has no tokio.
#![allow(clippy::disallowed_types)]

use crate::{limits, load, parse, ConfigError};
use std::time::{Duration, Instant};

const BASE: &str = "listeners: [{name: e, bind: '127.0.0.1:0'}]\n";

fn reject(text: &str) -> ConfigError {
    match parse("t.yaml", text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    }
}

#[test]
fn serde_errors_name_the_field_once_and_keep_the_reason_and_location() {
    let b = |extra: &str| format!("{BASE}backends: [{{name: a, servers: ['x:1'], {extra}}}]");
    let cases = [
        (
            "listeners: [{name: e, bind: nonsense}]".to_string(),
            "listeners[0].bind",
            "invalid bind address \"nonsense\"",
        ),
        (
            "listeners:\n  - name: e\n    bind: unix:/x\n    mode: '999'\n".into(),
            "listeners[0].mode",
            "invalid mode \"999\"",
        ),
        (
            format!("{BASE}admin: {{bind: nonsense}}"),
            "admin.bind",
            "invalid bind address",
        ),
        (
            format!("{BASE}backends: [{{name: a, servers: ['nonsense']}}]"),
            "backends[0].servers[0]",
            "invalid server \"nonsense\"",
        ),
        (
            b("balance: hash, hash_on: 'cookie:x'"),
            "backends[0].hash_on",
            "invalid hash_on",
        ),
        (
            b("timeouts: {connect: 5x}"),
            "backends[0].timeouts.connect",
            "invalid duration \"5x\"",
        ),
        (
            b("health: {check: {interval: 400d}}"),
            "backends[0].health.check.interval",
            "invalid duration \"400d\": at most 365d",
        ),
        (
            b("pool: {max_idel: 1}"),
            "backends[0].pool.max_idel",
            "unknown field `max_idel`",
        ),
    ];
    for (text, field, why) in cases {
        let e = reject(&text);
        assert_eq!(e.field, field, "{text}: {e}");
        assert!(e.reason.starts_with(why), "{text}: {e}");
        assert!(e.reason.contains(" at line "), "the location stays: {e}");
        let shown = e.to_string();
        assert_eq!(shown.matches(field).count(), 1, "path once: {shown}");
        let parent = field.rsplit_once(['.', '[']).map_or(field, |(p, _)| p);
        assert!(!e.reason.contains(&format!("{parent}:")), "{shown}");
    }
}

#[test]
fn a_reason_that_only_looks_like_a_path_is_kept() {
    assert_eq!(
        super::without_yaml_path("backends[0].tls.verify", "invalid type: string"),
        "invalid type: string"
    );
    assert_eq!(
        super::without_yaml_path("backends[0].tls", "backends[0].tlsx: y"),
        "backends[0].tlsx: y"
    );
}

#[test]
fn deep_flow_nesting_is_rejected_quickly_naming_the_line() {
    let n = 100_000;
    let text = format!("{BASE}routes: {}{}\n", "[".repeat(n), "]".repeat(n));
    let started = Instant::now();
    let e = reject(&text);
    let took = started.elapsed();
    assert_eq!(e.field, "");
    assert_eq!(
        e.reason,
        format!(
            "[ ] or {{ }} nested more than {} levels deep at line 2 column 73",
            limits::MAX_FLOW_DEPTH
        )
    );
    // Before the pre-scan this took ~19 s (release) to ~30 s (debug).
    assert!(took < Duration::from_secs(2), "took {took:?}");
    eprintln!("100,000 levels rejected in {took:?}");

    let text = format!("{BASE}routes: {}1{}\n", "{a: ".repeat(n), "}".repeat(n));
    assert!(reject(&text).reason.contains("nested more than"));
}

#[test]
fn a_large_valid_config_parses_in_well_under_a_second() -> Result<(), ConfigError> {
    let mut text = format!("{BASE}backends:\n");
    for i in 0..500 {
        text.push_str(&format!(
            "  - name: b{i}\n    servers: [\"b{i}.example.com:443\", \"10.0.{}.{}:443\"]\n    tls: {{sni: b{i}.example.com}}\n    pool: {{max_idle_per_server: 8, idle_timeout: 30s}}\n    health: {{check: {{path: '/health?x=[1]', interval: 5s}}, passive: {{}}}}\n",
            i / 256,
            i % 256
        ));
    }
    text.push_str("routes:\n");
    for i in 0..5000 {
        text.push_str(&format!(
            "  - {{host: \"h{i}.example.com\", path_prefix: \"/v{}\", backend: b{}}} # route {i} [[[\n",
            i % 7,
            i % 500
        ));
    }
    let started = Instant::now();
    let c = parse("t.yaml", &text)?;
    let took = started.elapsed();
    assert_eq!((c.routes.len(), c.backends.len()), (5000, 500));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    eprintln!(
        "{} bytes, 5,000 routes, 500 backends parsed in {took:?}",
        text.len()
    );
    Ok(())
}

#[test]
fn the_bundled_examples_are_far_from_the_nesting_limit() -> std::io::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    // Only the sluice configs at the top; subdirectories hold other
    // formats (Kubernetes manifests).
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(
            crate::nesting::too_deep(&text, 3),
            None,
            "{}",
            path.display()
        );
    }
    Ok(())
}

#[test]
fn load_refuses_what_is_not_a_bounded_regular_file() -> std::io::Result<()> {
    let e = load(std::path::Path::new("/dev/zero")).err();
    let e = e.map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("/dev/zero: cannot read file: not a regular file (a character device)")
    );

    let dir = std::env::temp_dir().join(format!("sluice-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let big = dir.join("big.yaml");
    let mut text = BASE.to_string();
    text.push_str(&"# padding\n".repeat(limits::MAX_FILE_BYTES as usize / 10));
    std::fs::write(&big, &text)?;
    let e = load(&big).err().map(|e| e.reason);
    assert_eq!(
        e.as_deref(),
        Some("cannot read file: larger than 16 MiB (the limit)")
    );
    let latin1 = dir.join("latin1.yaml");
    std::fs::write(&latin1, b"listeners: [{name: \xe9, bind: '127.0.0.1:0'}]\n")?;
    let e = load(&latin1).err().map(|e| e.reason);
    assert_eq!(
        e.as_deref(),
        Some("cannot read file: not UTF-8 text (byte 19)")
    );
    let ok = dir.join("ok.yaml");
    std::fs::write(&ok, BASE)?;
    assert!(load(&ok).is_ok());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn kubernetes_source_fields_are_checked_with_the_field_named() {
    let base = "listeners: [{name: a, bind: \"127.0.0.1:0\"}]\nsources:\n  kubernetes: ";
    for (value, field, why) in [
        (
            "{namespaces: [Shop]}",
            "sources.kubernetes.namespaces[0]",
            "not a namespace name",
        ),
        (
            "{namespaces: [shop, team-a, shop]}",
            "sources.kubernetes.namespaces[2]",
            "\"shop\" is listed twice",
        ),
        (
            "{ingress_class: \"\"}",
            "sources.kubernetes.ingress_class",
            "not an IngressClass",
        ),
        (
            "{lease_name: -x}",
            "sources.kubernetes.lease_name",
            "not a Lease name",
        ),
        (
            "{lease_namespace: a.b}",
            "sources.kubernetes.lease_namespace",
            "not a namespace",
        ),
        (
            "{debounce: 0s}",
            "sources.kubernetes.debounce",
            "greater than zero",
        ),
        (
            "{debounce: 1m}",
            "sources.kubernetes.debounce",
            "at most 10s",
        ),
        (
            "{lease_duration: 1s}",
            "sources.kubernetes.lease_duration",
            "between 2s and 300s",
        ),
        (
            "{status_address: \"a b\"}",
            "sources.kubernetes.status_address",
            "neither an IP",
        ),
        (
            "{secrets_dir: run/x}",
            "sources.kubernetes.secrets_dir",
            "not an absolute path",
        ),
        (
            "{tls_listener: egress}",
            "sources.kubernetes.tls_listener",
            "no listener named \"egress\" with tls",
        ),
    ] {
        let e = reject(&format!("{base}{value}\n"));
        assert_eq!(e.field, field, "{value}: {e}");
        assert!(e.reason.contains(why), "{value}: {e}");
    }
    let ok = format!("{base}{{namespaces: [shop, team-a], status_address: 10.0.0.1, lease_namespace: sluice-system}}\n");
    assert!(parse("t.yaml", &ok).is_ok(), "{ok}");
}

#[test]
fn only_the_kubernetes_tls_listener_may_start_without_certificates() {
    let listener = "listeners: [{name: https, bind: \"127.0.0.1:0\", tls: {certificates: []}}]\n";
    let e = reject(listener);
    assert_eq!(e.field, "listeners[0].tls.certificates", "{e}");
    assert!(e.reason.contains("sources.kubernetes.tls_listener"), "{e}");
    let filled = format!("{listener}sources: {{kubernetes: {{tls_listener: https}}}}\n");
    assert!(parse("t.yaml", &filled).is_ok(), "{filled}");
}

#[test]
fn weights_name_listed_servers_within_range_and_weight_one_is_no_weight() {
    let b =
        |w: &str| format!("{BASE}backends: [{{name: a, servers: ['x:1', 'y:1'], weights: {w}}}]");
    let e = reject(&b("{'z:1': 2}"));
    assert_eq!(e.field, "backends[0].weights", "{e}");
    assert!(e.reason.contains("z:1 is not one of servers"), "{e}");
    for w in ["0", "1001"] {
        let e = reject(&b(&format!("{{'y:1': {w}}}")));
        assert!(e.reason.contains("between 1 and 1000"), "{w}: {e}");
    }
    let ones = parse("t.yaml", &b("{'x:1': 1, 'y:1': 1}")).unwrap();
    let none = parse("t.yaml", &b("{}")).unwrap();
    assert_eq!(crate::canonical(&ones), crate::canonical(&none));
    let three = parse("t.yaml", &b("{'Y:1': 3}")).unwrap();
    assert_ne!(crate::canonical(&three), crate::canonical(&none));
}

#[test]
fn route_headers_are_checked_and_part_of_a_routes_identity() {
    let r =
        |routes: &str| format!("{BASE}backends: [{{name: a, servers: ['x:1']}}]\nroutes: {routes}");
    let e = reject(&r("[{host: h, backend: a, headers: {'bad name': v}}]"));
    assert_eq!(e.field, "routes[0].headers", "{e}");
    let e = reject(&r("[{host: h, backend: a, headers: {X-A: '1', x-a: '2'}}]"));
    assert!(e.reason.contains("listed twice"), "{e}");
    let same =
        "[{host: h, backend: a, headers: {x-a: '1'}}, {host: h, backend: a, headers: {X-A: '1'}}]";
    assert!(reject(&r(same)).reason.contains("same headers"));
    let differ = "[{host: h, backend: a}, {host: h, backend: a, headers: {x-a: '1'}}]";
    assert!(parse("t.yaml", &r(differ)).is_ok());
}

#[test]
fn unready_after_needs_shedding_to_count() {
    for limits in [
        "{unready_after: 5s}",
        "{max_client_connections: 10, when_full: wait, unready_after: 5s}",
    ] {
        let e = reject(&format!("{BASE}limits: {limits}\n"));
        assert_eq!(e.field, "limits.unready_after", "{limits}: {e}");
    }
    let ok = format!("{BASE}limits: {{max_client_connections: 10, unready_after: 5s}}\n");
    assert!(parse("t.yaml", &ok).is_ok());
}
