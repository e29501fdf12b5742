//! The translation is deterministic, and a broken object only costs itself.

use crate::model::{Selector, Snapshot};
use crate::translate::translate;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::json;
use std::sync::Arc;

fn svc(ns: &str, name: &str, external: &str) -> Arc<Service> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "ExternalName", "externalName": external,
                     "ports": [{"port": 443}, {"name": "http", "port": 80}]}
        }))
        .unwrap(),
    )
}

fn ing(
    ns: &str,
    name: &str,
    host: &str,
    service: &str,
    annotations: serde_json::Value,
) -> Arc<Ingress> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"ingressClassName": "sluice", "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"number": 443}}}}]}}]}
        }))
        .unwrap(),
    )
}

fn sel() -> Selector {
    Selector {
        class: "sluice".into(),
        status_address: None,
        tls_listener: Some("https".into()),
        secrets_dir: "/run/sluice/kubernetes".into(),
    }
}

fn snapshot(n: usize) -> Snapshot {
    let mut s = Snapshot::default();
    for i in 0..n {
        let ns = format!("ns{}", i % 3);
        s.services
            .push(svc(&ns, &format!("s{i}"), &format!("api{i}.example.com")));
        s.ingresses.push(ing(
            &ns,
            &format!("i{i}"),
            &format!("API{i}.example.com"),
            &format!("s{i}"),
            json!({"haproxy.org/server-ssl": "true"}),
        ));
    }
    s
}

#[test]
fn any_order_gives_the_same_translation() {
    let s = snapshot(50);
    let base = translate(&s, &sel());
    assert_eq!(base.backends().len(), 50);
    assert_eq!(base.routes().len(), 50);
    assert!(base
        .routes()
        .iter()
        .all(|r| r.host == r.host.to_ascii_lowercase()));
    for seed in 0..20u64 {
        let mut shuffled = s.clone();
        fastrand::Rng::with_seed(seed).shuffle(&mut shuffled.ingresses);
        fastrand::Rng::with_seed(seed + 100).shuffle(&mut shuffled.services);
        assert_eq!(translate(&shuffled, &sel()), base, "seed {seed}");
    }
}

#[test]
fn a_broken_ingress_is_reported_and_skipped_alone() {
    let mut s = snapshot(3);
    s.ingresses
        .push(ing("ns0", "missing", "m.example.com", "nope", json!({})));
    s.ingresses.push(ing(
        "ns0",
        "bad",
        "b.example.com",
        "s0",
        json!({"sluice.dev/maxconn": "lots"}),
    ));
    let t = translate(&s, &sel());
    assert_eq!(t.routes().len(), 3, "{:?}", t.routes());
    let reasons: Vec<_> = t
        .reports
        .iter()
        .map(|r| (r.name.as_str(), r.reason))
        .collect();
    assert_eq!(
        reasons,
        [("bad", "BadAnnotation"), ("missing", "ServiceNotFound")]
    );
}

#[test]
fn annotations_become_backend_settings() {
    let mut s = snapshot(0);
    s.services.push(svc("ns0", "s", "api.example.com"));
    s.ingresses.push(ing(
        "ns0",
        "i",
        "api.example.com",
        "s",
        json!({
            "sluice.dev/backend-protocol": "h2",
            "sluice.dev/maxconn": "8",
            "haproxy.org/backend-config-snippet": "default-server sni str(sni.example.com)\nhttp-reuse never\n",
        }),
    ));
    let t = translate(&s, &sel());
    let b = t.backends()[0];
    assert_eq!(b.name, "k8s/ns0/i/s:443");
    assert_eq!(b.protocol, sluice_config::Protocol::Http2);
    assert_eq!(
        b.tls.as_ref().and_then(|t| t.sni.as_deref()),
        Some("sni.example.com")
    );
    assert_eq!(b.limits.maxconn_per_server, 8);
    assert_eq!(b.pool.max_idle_per_server, 0);
    assert!(t.reports.is_empty(), "{:?}", t.reports);
}

#[test]
fn other_classes_are_not_ours() {
    let mut s = snapshot(1);
    let mut other = (*ing("ns0", "x", "x.example.com", "s0", json!({}))).clone();
    if let Some(spec) = other.spec.as_mut() {
        spec.ingress_class_name = Some("nginx".into());
    }
    s.ingresses.push(Arc::new(other));
    assert_eq!(translate(&s, &sel()).routes().len(), 1);
}

fn cluster_ip_svc(ns: &str, name: &str) -> Arc<Service> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                     "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}
        }))
        .unwrap(),
    )
}

fn slice(ns: &str, service: &str, n: &str, eps: &[(&str, Option<bool>)]) -> Arc<EndpointSlice> {
    let endpoints: Vec<_> = eps
        .iter()
        .map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready}}))
        .collect();
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-{n}"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "https", "port": 8443}],
            "endpoints": endpoints
        }))
        .unwrap(),
    )
}

fn servers(t: &crate::Translation) -> Vec<String> {
    t.backends()[0]
        .servers
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn a_cluster_ip_service_is_served_by_its_ready_endpoints_in_any_order() {
    let mut s = snapshot(0);
    s.services.push(cluster_ip_svc("ns0", "s"));
    s.ingresses
        .push(ing("ns0", "i", "api.example.com", "s", json!({})));
    // No slice yet: the cluster IP (kube-proxy balances).
    assert_eq!(
        servers(&translate(&s, &sel())),
        ["10.96.0.10:443"],
        "no EndpointSlice"
    );
    s.endpoint_slices.push(slice(
        "ns0",
        "s",
        "a",
        &[("10.0.0.2", Some(true)), ("10.0.0.9", Some(false))],
    ));
    s.endpoint_slices.push(slice(
        "ns0",
        "s",
        "b",
        &[("10.0.0.1", None), ("10.0.0.3", Some(true))],
    ));
    s.endpoint_slices
        .push(slice("ns0", "other", "a", &[("10.0.9.9", Some(true))]));
    let base = translate(&s, &sel());
    assert_eq!(
        servers(&base),
        ["10.0.0.1:8443", "10.0.0.2:8443", "10.0.0.3:8443"],
        "the ready endpoints, on the target port, not-ready and other Services' left out"
    );
    for seed in 0..10u64 {
        let mut shuffled = s.clone();
        let mut rng = fastrand::Rng::with_seed(seed);
        rng.shuffle(&mut shuffled.endpoint_slices);
        for sl in shuffled.endpoint_slices.iter_mut() {
            let mut v = (**sl).clone();
            if let Some(eps) = v.endpoints.as_mut() {
                rng.shuffle(eps);
            }
            *sl = Arc::new(v);
        }
        assert_eq!(translate(&shuffled, &sel()), base, "seed {seed}");
    }
}

#[test]
fn each_ingress_is_its_own_group() {
    let t = translate(&snapshot(4), &sel());
    let names: Vec<_> = t
        .groups
        .iter()
        .map(|g| format!("{}/{}", g.namespace, g.name))
        .collect();
    assert_eq!(names, ["ns0/i0", "ns0/i3", "ns1/i1", "ns2/i2"]);
    assert!(t
        .groups
        .iter()
        .all(|g| g.backends.len() == 1 && g.routes.len() == 1));
}
