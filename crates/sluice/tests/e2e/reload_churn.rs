//! Many reloads of a backend that has background work: each replaced version's health
//! check loop stops, the server's state carries over, and nothing piles up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::reload_support;

use reload_support::{backend, config, reload_expecting, tls_origin, EGRESS, SLUICE};
use sluice_testkit::{get, Certs, Sluice};
use std::time::Duration;
use tokio::time::Instant;

const CHECKS: &str =
    "health: {check: {path: /health, interval: 100ms, timeout: 1s, rise: 1, fall: 3}}";

/// Fifty reloads, each changing a backend with active checks every 100 ms (its response
/// timeout alternates). Were the old versions' loops left running, the origin would see
/// up to fifty checks per interval; it sees one: twelve checks take over a second. The
/// server stays up throughout (its state is carried over, so requests never fail), and
/// the runtime's task count ends where it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_versions_of_a_checked_backend_leave_one_check_loop_and_no_tasks() {
    let certs = Certs::new(&["127.0.0.1"]);
    let origin = tls_origin(&certs).await;
    let version = |i: u32| {
        let extra = format!("{CHECKS}\ntimeouts: {{response: {}s}}", 10 + i % 2);
        config(
            "",
            &[EGRESS],
            &[r#"{host: "app.test", backend: app}"#],
            &[backend("app", &[&origin], &certs, &extra)],
        )
    };
    let sluice = Sluice::start(SLUICE, &version(0)).await;
    let egress = sluice.listener_addr("egress");
    origin.wait_until(|s| s.health_checks >= 2).await;
    assert_eq!(get(egress, "app.test", "/").await.status, 200);
    sluice
        .wait_for_metric("sluice_runtime_tasks", |n| n > 0.0)
        .await;
    let tasks_before = sluice.metric("sluice_runtime_tasks").await.unwrap();

    for i in 1..=50 {
        sluice.write_config(&version(i));
        let answer = reload_expecting(&sluice, 200, "applied").await;
        assert_eq!(
            answer["changes"]["backends"]["changed"][0], "app",
            "{answer}"
        );
        assert_eq!(get(egress, "app.test", "/").await.status, 200);
    }

    let checks = origin.health_checks();
    let start = Instant::now();
    origin.wait_until(|s| s.health_checks >= checks + 12).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "12 checks in {took:?} at one per 100 ms: more than one check loop is running"
    );
    // The task gauge is sampled every second: the 1.1 s above saw a sample taken after
    // the last reload.
    let tasks_after = sluice.metric("sluice_runtime_tasks").await.unwrap();
    assert!(
        tasks_after <= tasks_before + 8.0,
        "tasks {tasks_before} -> {tasks_after} over 50 reloads"
    );
}
