//! sluice configured by a real Kubernetes API server (kube-apiserver + etcd built from
//! their Go modules, RBAC on; see sluice-testkit's `KubeApi`): the seed's egress
//! manifests (an Ingress and an `ExternalName` Service with haproxy.org annotations)
//! route `Host: app1.example.com` over pooled, verified TLS to an in-process origin.
//! sluice authenticates as the Helm chart's ServiceAccount, bound to exactly the
//! chart's Roles.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::k8s_openapi::api::core::v1::{Event, Namespace, Service};
use sluice_testkit::k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use sluice_testkit::kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use sluice_testkit::serde_json::{json, Value};
use sluice_testkit::{get, Certs, KubeApi, Origin, Sluice, TestDns};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const NS: &str = "egress";
const DEADLINE: Duration = Duration::from_secs(20);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) async fn create<K>(api: &Api<K>, v: Value) -> K
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = sluice_testkit::serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

fn service(external_name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "app1", "namespace": NS},
        "spec": {"type": "ExternalName", "externalName": external_name,
                 "ports": [{"name": "https", "protocol": "TCP", "port": port, "targetPort": port}]}
    })
}

/// The seed's Ingress as networking.k8s.io/v1, plus a forbidden snippet line and the
/// CA the test origin's certificate is signed by.
fn ingress(name: &str, host: &str, port: u16, ca: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS, "annotations": {
            "haproxy.org/server-ssl": "true",
            "haproxy.org/backend-config-snippet":
                "# enforce SNI\ndefault-server check-sni app1.example.com sni str(app1.example.com) resolvers mydns resolve-prefer ipv4\nhttp-reuse always\nhttp-request set-header X-Evil 1\n",
            "sluice.dev/ca-file": ca,
        }},
        "spec": {"ingressClassName": "sluice", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "app1", "port": {"number": port}}}}
        ]}}]}
    })
}

/// sluice ran with the chart's ServiceAccount and Roles (`KubeApi::chart_kubeconfig`):
/// no watch, list or Event write was refused.
pub(crate) fn assert_nothing_forbidden(sluice: &Sluice) {
    let refused: Vec<String> = sluice
        .stderr_lines()
        .into_iter()
        // The API server's refusal always says so ("... is forbidden: User ...").
        .filter(|l| l.to_ascii_lowercase().contains("forbidden"))
        .collect();
    assert!(
        refused.is_empty(),
        "the chart's RBAC refused sluice: {refused:#?}"
    );
}

/// A namespace and sluice's IngressClass, as every Kubernetes test starts.
pub(crate) async fn namespace_and_class(client: &sluice_testkit::kube::Client, ns: &str) {
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": ns}}),
    )
    .await;
    create(
        &Api::<IngressClass>::all(client.clone()),
        json!({"metadata": {"name": "sluice"},
               "spec": {"controller": "sluice.dev/ingress-controller"}}),
    )
    .await;
}

/// Waits for a Warning Event on object `name` whose reason is `reason` (any, if
/// empty) and whose message contains `text`.
pub(crate) async fn warning_event(events: &Api<Event>, name: &str, reason: &str, text: &str) {
    eventually(&format!("a Warning Event on {name}: {text}"), || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.type_.as_deref() == Some("Warning")
                    && (reason.is_empty() || e.reason.as_deref() == Some(reason))
                    && e.message.as_deref().unwrap_or("").contains(text)
            })
    })
    .await;
}

/// Polls `ok` until it holds (each poll is a real request), or fails at the deadline.
pub(crate) async fn eventually<F, Fut>(what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ok().await {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_egress_manifests_route_pool_move_and_report() {
    let api = KubeApi::start();
    let client = api.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    create(&namespaces, json!({"metadata": {"name": NS}})).await;

    // Two origins behind two DNS names on one port, both with app1.example.com's
    // certificate: the Service's externalName moves traffic between them.
    let certs = Certs::new(&["app1.example.com"]);
    let a = Origin::builder()
        .bind_ip(ip("127.0.0.2"))
        .tls(&certs)
        .start()
        .await;
    let port = a.addr().port();
    let b = Origin::builder()
        .bind_addr(SocketAddr::new(ip("127.0.0.3"), port))
        .tls(&certs)
        .start()
        .await;
    let dns = TestDns::start().await;
    dns.set("app1.example.com", &[ip("127.0.0.2")], 1);
    dns.set("app1-new.example.com", &[ip("127.0.0.3")], 1);
    let ca = certs.ca_file();

    let classes: Api<IngressClass> = Api::all(client.clone());
    create(
        &classes,
        json!({"metadata": {"name": "sluice"},
        "spec": {"controller": "sluice.dev/ingress-controller"}}),
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    create(&services, service("app1.example.com", port)).await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), NS);
    create(
        &ingresses,
        ingress("app1", "app1.example.com", port, ca.to_str().unwrap()),
    )
    .await;

    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
resolver: {{nameservers: ["{dns}"], timeout: 500ms, attempts: 1}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
sources: {{kubernetes: {{kubeconfig: "{kc}", namespaces: [{NS}], lease_namespace: sluice-system}}}}
"#,
        dns = dns.addr(),
        kc = api.chart_kubeconfig().await.display(),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    eventually("the Ingress serves", || async {
        get(egress, "app1.example.com", "/api").await.status == 200
    })
    .await;
    for _ in 0..20 {
        let r = get(egress, "app1.example.com", "/api").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        a.accepted() <= 2,
        "pooled: {} upstream connections for 21 requests",
        a.accepted()
    );

    // The forbidden snippet line was not run: it is a Warning Event on the Ingress.
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    warning_event(&events, "app1", "", "http-request set-header X-Evil 1").await;
    let (applied_before, unchanged_before) = {
        let c = sluice.reload_counts().await;
        (c.applied, c.unchanged)
    };

    // 100 changes that mean nothing to the config (labels on the Service): no rebuild.
    for i in 0..100 {
        let patch = json!({"metadata": {"labels": {"touch": i.to_string()}}});
        services
            .patch("app1", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    // Then a real change, to know the source has seen all of them: the ExternalName
    // moves to b while traffic runs, and no request fails.
    let load = tokio::spawn(async move {
        let mut failed = Vec::new();
        for _ in 0..300 {
            let r = get(egress, "app1.example.com", "/api").await;
            if r.status != 200 {
                failed.push(format!("{} {}", r.status, r.text()));
            }
        }
        failed
    });
    let patch = json!({"spec": {"externalName": "app1-new.example.com"}});
    services
        .patch("app1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("traffic moves to the new externalName", || async {
        b.requests() > 0
    })
    .await;
    let failed = load.await.unwrap();
    assert!(failed.is_empty(), "failed during the move: {failed:?}");
    let c = sluice.reload_counts().await;
    assert_eq!(
        c.applied - applied_before,
        1.0,
        "100 label changes rebuilt nothing; the ExternalName change applied once"
    );
    assert_eq!(
        c.unchanged, unchanged_before,
        "no-op changes never reach a reload"
    );
    let a_after = a.requests();
    for _ in 0..10 {
        assert_eq!(get(egress, "app1.example.com", "/api").await.status, 200);
    }
    assert_eq!(a.requests(), a_after, "the old name takes no more requests");

    // An Ingress of another class is not ours; deleting ours ends the route.
    let mut other = ingress("other", "other.example.com", port, ca.to_str().unwrap());
    other["spec"]["ingressClassName"] = json!("nginx");
    create(&ingresses, other).await;
    ingresses
        .delete("app1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("a deleted Ingress stops routing", || async {
        get(egress, "app1.example.com", "/api").await.status == 404
    })
    .await;
    assert_eq!(get(egress, "other.example.com", "/api").await.status, 404);
    assert_nothing_forbidden(&sluice);
}
