//! Active health checks end to end: over the backend's TLS, a failing server goes
//! down after `fall` checks (503 no_healthy_server when it was the last), and comes
//! back after `rise` passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, get, Certs, Origin, Sluice};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

#[tokio::test]
async fn a_server_failing_its_tls_checks_goes_down_and_comes_back() {
    let certs = Certs::new(&["origin.test"]);
    let origin = Origin::builder().tls(&certs).start().await;
    let yaml = app_config(
        &[origin.server_spec()],
        &format!(
            "    tls: {{sni: origin.test, ca_file: \"{}\"}}\n    health: {{check: {{path: /health, interval: 100ms, timeout: 1s, rise: 2, fall: 2}}}}",
            certs.ca_file().display()
        ),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    let server = origin.addr().to_string();
    let healthy = format!(r#"sluice_server_healthy{{backend="app",server="{server}"}}"#);
    let passes =
        format!(r#"sluice_health_checks_total{{backend="app",server="{server}",result="pass"}}"#);

    sluice.wait_for_metric(&passes, |v| v >= 1.0).await;
    assert_eq!(get(egress, "api.test", "/").await.status, 200);
    assert!(
        origin.health_checks() >= 1,
        "checks reach the origin over TLS"
    );

    origin.set_healthy(false);
    sluice.wait_for_metric(&healthy, |v| v == 0.0).await;
    // The pooled connection to the down server is closed, not kept for later.
    origin.wait_until(|s| s.closed == s.accepted).await;
    let requests = origin.requests();
    let r = get(egress, "api.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("sluice-error"), Some("no_healthy_server"));
    assert_eq!(
        origin.requests(),
        requests,
        "nothing is sent to a down server"
    );

    origin.set_healthy(true);
    sluice.wait_for_metric(&healthy, |v| v == 1.0).await;
    assert_eq!(get(egress, "api.test", "/").await.status, 200);
    sluice
        .wait_for_stderr(|l| l.contains("health check passed; server is up"))
        .await;
}

#[tokio::test]
async fn consecutive_5xx_eject_the_server_when_on_5xx_is_set() {
    let origin = Origin::start().await;
    let yaml = app_config(
        &[origin.server_spec()],
        "    health: {passive: {consecutive_failures: 3, on_5xx: true, ejection_time: 30s}}",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    // A success in between resets the count: 2 failures, 1 success, 2 failures.
    for path in [
        "/status/500",
        "/status/502",
        "/",
        "/status/500",
        "/status/503",
    ] {
        let r = get(egress, "api.test", path).await;
        assert!(
            r.header("sluice-error").is_none(),
            "{path}: the origin answered"
        );
    }
    let ejections = format!(
        r#"sluice_server_ejections_total{{backend="app",server="{}"}}"#,
        origin.addr()
    );
    assert_eq!(sluice.metric(&ejections).await.unwrap_or(0.0), 0.0);
    // The third 5xx in a row ejects it; with no other server, sluice answers itself.
    assert_eq!(get(egress, "api.test", "/status/500").await.status, 500);
    assert_eq!(sluice.metric(&ejections).await, Some(1.0));
    let requests = origin.requests();
    let r = get(egress, "api.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("sluice-error"), Some("no_healthy_server"));
    assert_eq!(origin.requests(), requests);
}
