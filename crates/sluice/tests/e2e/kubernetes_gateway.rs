//! Gateway API against the real API server with the standard CRDs installed:
//! GatewayClass + Gateway + HTTPRoute + BackendTLSPolicy route to an in-process TLS
//! origin with the policy's SNI and verification, the conditions are written, and a
//! backendRef to a missing Service is `ResolvedRefs=False`.

use crate::kubernetes::{assert_nothing_forbidden, create, eventually};
use sluice_testkit::k8s_openapi::api::core::v1::{Namespace, Service};
use sluice_testkit::kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use sluice_testkit::serde_json::{json, Value};
use sluice_testkit::{get, Certs, KubeApi, Origin, Sluice, TestDns};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const NS: &str = "egress";
const GROUP: &str = "gateway.networking.k8s.io";

fn api(client: &sluice_testkit::kube::Client, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let r = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, "v1", kind));
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r),
        None => Api::all_with(client.clone(), &r),
    }
}

async fn apply(api: &Api<DynamicObject>, kind: &str, v: Value) {
    let mut v = v;
    v["apiVersion"] = json!(format!("{GROUP}/v1"));
    v["kind"] = json!(kind);
    let obj: DynamicObject = sluice_testkit::serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// `status` of `kind/name`, as the API server holds it.
async fn status(api: &Api<DynamicObject>, name: &str) -> Value {
    api.get_status(name)
        .await
        .map(|o| o.data["status"].clone())
        .unwrap_or(Value::Null)
}

/// The status of condition `ty` in `conditions` (e.g. "True"), with its reason.
fn condition(conditions: &Value, ty: &str) -> Option<(String, String)> {
    conditions
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
}

fn route(name: &str, host: &str, service: &str, port: u16) -> Value {
    json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"parentRefs": [{"name": "egress"}], "hostnames": [host],
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": [{"name": service, "port": port}]}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_routes_with_backend_tls_and_writes_conditions() {
    let api_server = KubeApi::start();
    api_server.install_gateway_crds().await;
    let client = api_server.client().await;
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": NS}}),
    )
    .await;

    let certs = Certs::new(&["api.partner.example"]);
    let origin = Origin::builder()
        .bind_ip("127.0.0.2".parse().unwrap())
        .tls(&certs)
        .start()
        .await;
    let port = origin.addr().port();
    let dns = TestDns::start().await;
    dns.set("api.partner.example", &["127.0.0.2".parse().unwrap()], 1);
    create(
        &Api::<Service>::namespaced(client.clone(), NS),
        json!({"metadata": {"name": "partner", "namespace": NS},
               "spec": {"type": "ExternalName", "externalName": "api.partner.example",
                        "ports": [{"name": "https", "port": port}]}}),
    )
    .await;
    let classes = api(&client, "GatewayClass", None);
    apply(
        &classes,
        "GatewayClass",
        json!({"metadata": {"name": "sluice"},
               "spec": {"controllerName": "sluice.dev/gateway-controller"}}),
    )
    .await;
    let gateways = api(&client, "Gateway", Some(NS));
    apply(
        &gateways,
        "Gateway",
        json!({"metadata": {"name": "egress", "namespace": NS},
               "spec": {"gatewayClassName": "sluice",
                        "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}}),
    )
    .await;
    let routes = api(&client, "HTTPRoute", Some(NS));
    apply(
        &routes,
        "HTTPRoute",
        route("partner", "partner.example.com", "partner", port),
    )
    .await;
    apply(
        &routes,
        "HTTPRoute",
        route("broken", "broken.example.com", "missing", port),
    )
    .await;
    apply(
        &api(&client, "BackendTLSPolicy", Some(NS)),
        "BackendTLSPolicy",
        json!({"metadata": {"name": "partner", "namespace": NS},
               "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "partner"}],
                        "validation": {"hostname": "api.partner.example",
                                       "wellKnownCACertificates": "System"}}}),
    )
    .await;

    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
resolver: {{nameservers: ["{dns}"], timeout: 500ms, attempts: 1}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
sources: {{kubernetes: {{kubeconfig: "{kc}", namespaces: [{NS}], lease_namespace: sluice-system,
  lease_duration: 3s}}}}
"#,
        dns = dns.addr(),
        kc = api_server.chart_kubeconfig().await.display(),
    );
    // The test CA stands in for the system trust store ("wellKnownCACertificates:
    // System"): rustls-native-certs reads SSL_CERT_FILE.
    let ca = certs.ca_file();
    let sluice = Sluice::start_env(SLUICE, &yaml, &[("SSL_CERT_FILE", ca.to_str().unwrap())]).await;
    let egress = sluice.listener_addr("egress");
    eventually("the HTTPRoute serves over the policy's TLS", || async {
        get(egress, "partner.example.com", "/v1").await.status == 200
    })
    .await;
    for _ in 0..10 {
        let r = get(egress, "partner.example.com", "/v1").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        origin.accepted() <= 2,
        "pooled: {} connections",
        origin.accepted()
    );
    assert_eq!(get(egress, "broken.example.com", "/").await.status, 404);

    eventually("the GatewayClass is Accepted", || async {
        condition(&status(&classes, "sluice").await["conditions"], "Accepted")
            == Some(("True".into(), "Accepted".into()))
    })
    .await;
    eventually("the Gateway is Programmed", || async {
        condition(
            &status(&gateways, "egress").await["conditions"],
            "Programmed",
        )
        .is_some_and(|(s, _)| s == "True")
    })
    .await;
    eventually("the route is Accepted with its refs resolved", || async {
        let parents = &status(&routes, "partner").await["parents"][0]["conditions"];
        condition(parents, "Accepted").is_some_and(|(s, _)| s == "True")
            && condition(parents, "ResolvedRefs").is_some_and(|(s, _)| s == "True")
    })
    .await;
    eventually(
        "a missing Service is ResolvedRefs=False/BackendNotFound",
        || async {
            let parents = &status(&routes, "broken").await["parents"][0]["conditions"];
            condition(parents, "ResolvedRefs") == Some(("False".into(), "BackendNotFound".into()))
        },
    )
    .await;
    let t = &status(&routes, "partner").await["parents"][0]["conditions"][0]["lastTransitionTime"];
    assert_ne!(t, "1970-01-01T00:00:00Z", "the writer stamps real times");
    assert_nothing_forbidden(&sluice);
}
