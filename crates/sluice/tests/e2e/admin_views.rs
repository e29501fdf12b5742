//! The admin read API and `sluice check --diff`: `GET /pools` shows each backend's
//! servers with their pool (idle, in use, opened, reused) and health; `GET /config`
//! shows the effective canonical config with every default written out; `check
//! --diff` prints what a reload would change, or that nothing would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{get, scratch_dir, Certs, Origin, Sluice};
use std::process::Command;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn config(origin: &Origin, certs: &Certs, extra_route: &str) -> String {
    format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes: [{{host: "api.test", backend: app}}{extra_route}]
backends:
  - name: app
    servers: ["{}"]
    tls: {{ca_file: "{}"}}
"#,
        origin.server_spec(),
        certs.ca_file().display()
    )
}

#[tokio::test]
async fn pools_shows_each_server_with_its_pool_and_health() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = Origin::builder().tls(&certs).start().await;
    let sluice = Sluice::start(SLUICE, &config(&origin, &certs, "")).await;
    let egress = sluice.listener_addr("egress");
    for _ in 0..3 {
        assert_eq!(get(egress, "api.test", "/").await.status, 200);
    }
    let pools = sluice.admin_get_json("/pools").await;
    assert_eq!(pools["generation"], 1);
    let app = &pools["backends"]["app"];
    assert_eq!(app["queued"], 0);
    let servers = app["servers"].as_object().expect("servers by address");
    assert_eq!(servers.len(), 1);
    let (addr, s) = servers.iter().next().unwrap();
    assert_eq!(*addr, origin.server_spec());
    assert_eq!(s["health"], "up");
    assert_eq!(s["ejected_until"], serde_json::Value::Null);
    assert_eq!(s["in_flight"], 0);
    assert_eq!(
        s["opened_total"], 1,
        "three sequential requests, one connection"
    );
    assert_eq!(s["reused_total"], 2);
    assert_eq!(s["idle"], 1);
    let key = s["pool_key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("{addr}|tls;sni=127.0.0.1;verify=true")),
        "{key}"
    );
    assert!(key.contains("src=any"), "{key}");

    let config = sluice.admin_get_json("/config").await;
    assert_eq!(config["generation"], 1);
    assert_eq!(config["last_reload"], serde_json::Value::Null);
    let backend = &config["config"]["backends"][0];
    assert_eq!(backend["name"], "app");
    assert_eq!(
        backend["timeouts"]["connect"], "2s",
        "defaults are written out"
    );
}

#[tokio::test]
async fn check_diff_prints_what_a_reload_would_change() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = Origin::builder().tls(&certs).start().await;
    let dir = scratch_dir();
    let old = dir.path().join("old.yaml");
    let new = dir.path().join("new.yaml");
    std::fs::write(&old, config(&origin, &certs, "")).unwrap();
    std::fs::write(
        &new,
        config(&origin, &certs, r#", {host: "v2.test", backend: app}"#),
    )
    .unwrap();
    let run = |a: &std::path::Path, b: &std::path::Path| {
        let out = Command::new(SLUICE)
            .args(["check", "--config", a.to_str().unwrap(), "--diff"])
            .arg(b)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run(&new, &old);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("routes:    + v2.test/ -> app"), "{text}");
    assert!(
        text.contains("pools:     kept 1, new 0, closed 0"),
        "{text}"
    );
    let (code, text) = run(&old, &old);
    assert_eq!(code, Some(0));
    assert!(text.contains("no change (same canonical config)"), "{text}");
    std::fs::write(&new, "listeners: []\nnope: 1\n").unwrap();
    let (code, _) = run(&new, &old);
    assert_eq!(code, Some(1), "an invalid new config fails the check");
}
