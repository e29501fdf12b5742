//! Gateway API against the real API server with the standard CRDs installed:
//! GatewayClass + Gateway + HTTPRoute + BackendTLSPolicy route to an in-process TLS
//! origin with the policy's SNI, verified with the CA of the policy's ConfigMap; the
//! Gateway's HTTPS listener serves its Secret's certificate; the conditions are
//! written, and a backendRef to a missing Service is `ResolvedRefs=False`.

use crate::kubernetes::{assert_nothing_forbidden, create, eventually};
use crate::kubernetes_tls::{https_get, partner, tls_secret};
use sluice_testkit::k8s_openapi::api::core::v1::{Namespace, Secret};
use sluice_testkit::kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use sluice_testkit::serde_json::{json, Value};
use sluice_testkit::{get, Certs, KubeApi, Sluice};

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
    let scratch = sluice_testkit::scratch_dir();
    api_server.install_gateway_crds().await;
    let client = api_server.client().await;
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": NS}}),
    )
    .await;

    let (_partner, origin, dns) = partner(&client, NS).await;
    let port = origin.addr().port();
    let front = Certs::new(&["partner.example.com"]);
    create(
        &Api::<Secret>::namespaced(client.clone(), NS),
        tls_secret("front", NS, &front),
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
                        "listeners": [{"name": "http", "protocol": "HTTP", "port": 80},
                            {"name": "https", "protocol": "HTTPS", "port": 443,
                             "tls": {"certificateRefs": [{"name": "front"}]}},
                            {"name": "broken", "protocol": "HTTPS", "port": 8443,
                             "tls": {"certificateRefs": [{"name": "missing"}]}}]}}),
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
                                       "caCertificateRefs": [{"group": "", "kind": "ConfigMap",
                                                              "name": "partner-ca"}]}}}),
    )
    .await;

    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
resolver: {{nameservers: ["{dns}"], timeout: 500ms, attempts: 1}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}},
  {{name: https, bind: "127.0.0.1:0", tls: {{certificates: []}}}}]
sources: {{kubernetes: {{kubeconfig: "{kc}", namespaces: [{NS}], lease_namespace: sluice-system,
  lease_duration: 3s, tls_listener: https, secrets_dir: "{dir}"}}}}
"#,
        dns = dns.addr(),
        kc = api_server.chart_kubeconfig().await.display(),
        dir = scratch.path().join("secrets").display(),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
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
    let https = sluice.listener_addr("https");
    eventually(
        "the HTTPS listener serves its Secret's certificate",
        || async {
            https_get(https, "partner.example.com", front.client_config()).await
                == Some((200, front.leaf_der().as_ref().to_vec()))
        },
    )
    .await;

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
    let listeners = status(&gateways, "egress").await["listeners"].clone();
    let https_listener = &listeners[1]["conditions"];
    assert_eq!(
        condition(https_listener, "Programmed"),
        Some(("True".into(), "Programmed".into())),
        "{listeners}"
    );
    assert_eq!(
        condition(&listeners[2]["conditions"], "ResolvedRefs"),
        Some(("False".into(), "InvalidCertificateRef".into())),
        "{listeners}"
    );
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
