//! Runtime DNS against a real DNS server on loopback (hickory, port 0): every A record
//! is a server, a changed answer moves traffic without errors, a failing resolver
//! keeps the last good addresses, and a name that never resolved is 502 dns_failed
//! (each failure explained in one human line).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{app_config, get, Origin, Sluice, TestDns};
use std::net::{IpAddr, SocketAddr};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn config(dns: &TestDns, port: u16, dns_opts: &str) -> String {
    format!(
        "resolver: {{nameservers: [\"{}\"], timeout: 500ms, attempts: 1}}\n{}",
        dns.addr(),
        app_config(
            &[format!("app.test:{port}")],
            &format!("    dns: {{{dns_opts}}}")
        )
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Two origins on 127.0.0.2 and 127.0.0.3 sharing one port (as behind one DNS name).
async fn two_origins() -> (Origin, Origin) {
    let a = Origin::builder().bind_ip(ip("127.0.0.2")).start().await;
    let port = a.addr().port();
    let b = Origin::builder()
        .bind_addr(SocketAddr::new(ip("127.0.0.3"), port))
        .start()
        .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_a_server_and_a_changed_answer_moves_traffic_without_errors() {
    let (a, b) = two_origins().await;
    let dns = TestDns::start().await;
    dns.set("app.test", &[ip("127.0.0.2"), ip("127.0.0.3")], 1);
    let yaml = config(&dns, a.addr().port(), "min_ttl: 1s, max_ttl: 1s");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    sluice
        .wait_for_metric(r#"sluice_backend_servers{backend="app"}"#, |v| v == 2.0)
        .await;
    for _ in 0..20 {
        assert_eq!(get(egress, "app.test", "/").await.status, 200);
    }
    assert!(a.requests() > 0 && b.requests() > 0, "both records serve");

    // The name now points at b only: traffic moves, and nothing fails meanwhile.
    dns.set("app.test", &[ip("127.0.0.3")], 1);
    let load = tokio::spawn(async move {
        let mut failures = 0;
        for _ in 0..200 {
            if get(egress, "app.test", "/").await.status != 200 {
                failures += 1;
            }
        }
        failures
    });
    sluice
        .wait_for_metric(r#"sluice_backend_servers{backend="app"}"#, |v| v == 1.0)
        .await;
    let a_before = a.requests();
    for _ in 0..20 {
        assert_eq!(get(egress, "app.test", "/").await.status, 200);
    }
    assert_eq!(a.requests(), a_before, "127.0.0.2 left the answer");
    assert_eq!(
        load.await.unwrap(),
        0,
        "no request failed during the change"
    );
    a.wait_until(|s| s.closed == s.accepted).await;
    let refreshes = sluice
        .metric(r#"sluice_dns_refreshes_total{backend="app"}"#)
        .await
        .unwrap();
    assert!(refreshes >= 2.0);
}

#[tokio::test]
async fn a_failing_resolver_keeps_the_last_good_addresses() {
    let origin = Origin::builder().bind_ip(ip("127.0.0.2")).start().await;
    let dns = TestDns::start().await;
    dns.set("app.test", &[ip("127.0.0.2")], 1);
    let yaml = config(
        &dns,
        origin.addr().port(),
        "min_ttl: 1s, max_ttl: 1s, retry_interval: 200ms",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    assert_eq!(get(egress, "app.test", "/").await.status, 200);

    dns.set_failing(true);
    sluice
        .wait_for_metric(r#"sluice_dns_failures_total{backend="app"}"#, |v| v >= 2.0)
        .await;
    for _ in 0..10 {
        assert_eq!(get(egress, "app.test", "/").await.status, 200);
    }
    assert_eq!(
        sluice
            .metric(r#"sluice_backend_servers{backend="app"}"#)
            .await,
        Some(1.0)
    );
    let line = sluice
        .wait_for_stderr(|l| l.contains("DNS lookup failed; keeping the last good addresses"))
        .await;
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("app.test: the name server failed (SERVFAIL)"),
        "the reason in one human line: {line}"
    );
}

#[tokio::test]
async fn a_name_that_never_resolved_is_502_dns_failed() {
    let dns = TestDns::start().await;
    let yaml = config(&dns, 443, "");
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let r = get(sluice.listener_addr("egress"), "app.test", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("sluice-error"), Some("dns_failed"));
    assert!(r.text().contains("app.test"), "{}", r.text());
    // The lookup error as a person reads it, not hickory's debug dump of the query.
    assert!(
        r.text().contains("app.test: no such host (NXDOMAIN)"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("Query {"), "{}", r.text());
}
