//! Upstream socket options, read back from the kernel with `ss` (iproute2): TCP
//! keepalive is on with the configured idle time, and off with `keepalive_idle: 0s`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, get, Origin, Sluice};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// The `ss -o` line of the established socket from sluice to `origin`.
fn upstream_socket(origin: &Origin) -> String {
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established", "dst"])
        .arg(origin.addr().to_string())
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one pooled connection to the origin:\n{text}"
    );
    lines[0].to_string()
}

async fn socket_with(tcp: &str) -> String {
    let origin = Origin::start().await;
    let yaml = app_config(&[origin.server_spec()], &format!("    tcp: {{{tcp}}}"));
    let sluice = Sluice::start(SLUICE, &yaml).await;
    assert_eq!(
        get(sluice.listener_addr("egress"), "api.test", "/")
            .await
            .status,
        200
    );
    upstream_socket(&origin)
}

#[tokio::test]
async fn tcp_keepalive_follows_the_config() {
    let on = socket_with("keepalive_idle: 37s").await;
    assert!(on.contains("timer:(keepalive,"), "{on}");
    // The first probe is due ~37 s after the last packet.
    let due: f64 = on
        .split("timer:(keepalive,")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|t| t.strip_suffix("sec"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("keepalive timer in {on}"));
    assert!((30.0..=37.0).contains(&due), "{on}");

    let off = socket_with("keepalive_idle: 0s").await;
    assert!(!off.contains("keepalive"), "{off}");
}
