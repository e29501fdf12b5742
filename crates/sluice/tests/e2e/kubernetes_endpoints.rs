//! A ClusterIP Service is served by the endpoints of its EndpointSlices (the ingress
//! case), a reordered slice rebuilds nothing, and an Ingress that conflicts with
//! another is skipped alone with a Warning Event. Against the real API server. It
//! runs no controller-manager, so the test writes the EndpointSlice itself, as the
//! endpoint-slice controller would.

use crate::kubernetes::{assert_nothing_forbidden, create, eventually};
use crate::kubernetes::{namespace_and_class, warning_event};
use sluice_testkit::k8s_openapi::api::core::v1::{Event, Service};
use sluice_testkit::k8s_openapi::api::discovery::v1::EndpointSlice;
use sluice_testkit::k8s_openapi::api::networking::v1::Ingress;
use sluice_testkit::kube::api::{Api, Patch, PatchParams};
use sluice_testkit::serde_json::{json, Value};
use sluice_testkit::{get, KubeApi, Origin, Sluice, Veth};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const NS: &str = "shop";

fn ingress(name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS,
                     "annotations": {"sluice.dev/backend-protocol": "http"}},
        "spec": {"ingressClassName": "sluice", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
        ]}}]}
    })
}

/// The endpoints in `order`: the origin's (ready) and one not ready.
fn endpoints(order: &[&str], ready: &str) -> Value {
    order
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": *ip == ready}}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_services_use_endpoint_slices_and_a_conflict_costs_only_itself() {
    let api = KubeApi::start();
    let client = api.client().await;
    namespace_and_class(&client, NS).await;
    // The API server refuses loopback endpoint addresses: the origin listens on a
    // veth's address instead.
    let veth = Veth::create().expect("a veth pair (the Kubernetes tests need root)");
    let origin = Origin::builder().bind_ip(veth.ip).start().await;
    let port = origin.addr().port();
    let (live, dead) = (veth.ip.to_string(), "198.19.255.254");
    // The cluster IP (assigned by the API server) is unreachable here: only the
    // endpoints lead to the origin.
    create(
        &Api::<Service>::namespaced(client.clone(), NS),
        json!({"metadata": {"name": "web", "namespace": NS},
               "spec": {"type": "ClusterIP",
                        "ports": [{"name": "http", "port": 80, "targetPort": port}]}}),
    )
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    create(
        &slices,
        json!({"metadata": {"name": "web-1", "namespace": NS,
                            "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
               "endpoints": endpoints(&[&live, dead], &live)}),
    )
    .await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), NS);
    create(&ingresses, ingress("web", "web.example.com")).await;
    // Same host and path as `web`: after it in name order, so this one is left out.
    create(&ingresses, ingress("web-copy", "web.example.com")).await;

    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: ingress, bind: "127.0.0.1:0"}}]
sources: {{kubernetes: {{kubeconfig: "{kc}", namespaces: [{NS}], lease_namespace: sluice-system}}}}
"#,
        kc = api.chart_kubeconfig().await.display(),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("ingress");
    eventually(
        "the ClusterIP Service serves through its endpoint",
        || async { get(addr, "web.example.com", "/").await.status == 200 },
    )
    .await;
    for _ in 0..10 {
        let r = get(addr, "web.example.com", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(origin.requests() >= 11, "the ready endpoint took them");

    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    warning_event(
        &events,
        "web-copy",
        "InvalidConfig",
        "another route already matches",
    )
    .await;

    let unchanged = "sluice_kubernetes_translations_total{result=\"unchanged\"}";
    let (before, unchanged_before) = (
        sluice.reload_counts().await.applied,
        sluice.metric(unchanged).await.unwrap(),
    );
    // The endpoint controller rewrites slices in any order: nothing to rebuild.
    for i in 0..20 {
        let order = if i % 2 == 0 {
            [dead, live.as_str()]
        } else {
            [live.as_str(), dead]
        };
        let patch = json!({"metadata": {"annotations": {"resync": i.to_string()}},
                           "endpoints": endpoints(&order, &live)});
        slices
            .patch("web-1", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    eventually(
        "the reordered slices count as unchanged translations",
        || async { sluice.metric(unchanged).await.unwrap() > unchanged_before },
    )
    .await;
    // Then a real change, to know the source has seen all of them.
    create(&ingresses, ingress("web2", "web2.example.com")).await;
    eventually("the new Ingress serves", || async {
        get(addr, "web2.example.com", "/").await.status == 200
    })
    .await;
    assert_eq!(
        sluice.reload_counts().await.applied - before,
        1.0,
        "20 reordered slices rebuilt nothing; the new Ingress applied once"
    );
    assert_eq!(get(addr, "web.example.com", "/").await.status, 200);
    assert_nothing_forbidden(&sluice);
}
