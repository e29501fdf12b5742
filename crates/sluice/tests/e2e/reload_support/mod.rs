//! Shared by `reload.rs` and `reload_live.rs`: building the configs a reload test swaps
//! between, and reading a reload's outcome.

#![allow(dead_code)] // each test binary uses a different part

use sluice_testkit::{serde_json::Value as Json, Certs, Origin, Sluice};

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A config with JSON logs and an admin listener: `top` (top-level sections, e.g.
/// `config: {watch: true}`), then the listeners, routes (flow-style YAML maps, one per
/// item) and backends (from [`backend`]).
pub fn config(top: &str, listeners: &[&str], routes: &[&str], backends: &[String]) -> String {
    let items = |xs: &[&str]| xs.iter().map(|x| format!("  - {x}\n")).collect::<String>();
    format!(
        "log: {{format: json}}\nadmin: {{bind: \"127.0.0.1:0\"}}\n{top}\nlisteners:\n{}routes:\n{}backends:\n{}",
        items(listeners),
        items(routes),
        backends.concat()
    )
}

/// The usual single listener.
pub const EGRESS: &str = r#"{name: egress, bind: "127.0.0.1:0"}"#;

/// A backend `name` over TLS to `origins` (started with `.tls(certs)`), with `extra`
/// lines (indented by four spaces) appended.
pub fn backend(name: &str, origins: &[&Origin], certs: &Certs, extra: &str) -> String {
    let servers = origins
        .iter()
        .map(|o| format!("\"{}\"", o.server_spec()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!(
        "  - name: {name}\n    servers: [{servers}]\n    tls: {{ca_file: \"{}\"}}\n",
        certs.ca_file().display()
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str("    ");
        out.push_str(line.trim_start());
        out.push('\n');
    }
    out
}

/// A TLS origin for `certs` (issued for 127.0.0.1).
pub async fn tls_origin(certs: &Certs) -> Origin {
    Origin::builder().tls(certs).start().await
}

/// Admin `POST /reload`, expecting `status` and `result`; returns the answer.
pub async fn reload_expecting(sluice: &Sluice, status: u16, result: &str) -> Json {
    let (got, answer) = sluice.reload_admin().await;
    assert_eq!(
        (got, answer["result"].as_str()),
        (status, Some(result)),
        "POST /reload answered {got}: {answer}"
    );
    assert_eq!(answer["trigger"], "admin", "{answer}");
    answer
}

/// `answer["changes"][kind][what]` as a list of strings (e.g. `("routes", "changed")`).
pub fn changed(answer: &Json, kind: &str, what: &str) -> Vec<String> {
    let list = &answer["changes"][kind][what];
    list.as_array()
        .unwrap_or_else(|| panic!("no changes.{kind}.{what} list in {answer}"))
        .iter()
        .map(|v| v.as_str().expect("ids are strings").to_owned())
        .collect()
}

/// The `generation` of `GET /config`.
pub async fn generation(sluice: &Sluice) -> u64 {
    let config = sluice.admin_get_json("/config").await;
    config["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("GET /config has no numeric generation: {config}"))
}

/// The sum over every series of `metric` on `/metrics` (e.g. every backend's
/// `sluice_upstream_connections_opened_total`).
pub async fn metric_sum(sluice: &Sluice, metric: &str) -> f64 {
    sluice
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
