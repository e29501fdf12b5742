//! Two replicas against one API server: both serve, only the holder of the status
//! Lease writes Ingress status (the status subresource's field manager names it),
//! and when the holder dies the other takes the Lease and writes.

use crate::kubernetes::{assert_nothing_forbidden, create, eventually, namespace_and_class};
use sluice_testkit::k8s_openapi::api::coordination::v1::Lease;
use sluice_testkit::k8s_openapi::api::core::v1::Service;
use sluice_testkit::k8s_openapi::api::networking::v1::Ingress;
use sluice_testkit::kube::api::Api;
use sluice_testkit::serde_json::{json, Value};
use sluice_testkit::{get, KubeApi, Origin, Sluice, TestDns};
use std::time::Duration;
use tokio::time::Instant;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const NS: &str = "team";
const ADDRESS: &str = "10.1.2.3";

fn ingress(name: &str, host: &str, port: u16) -> Value {
    json!({
        "metadata": {"name": name, "namespace": NS,
                     "annotations": {"sluice.dev/backend-protocol": "http"}},
        "spec": {"ingressClassName": "sluice", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "app", "port": {"number": port}}}}]}}]}
    })
}

/// sluice's Lease identity without `$POD_NAME`: host name and pid.
fn identity(s: &Sluice) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    format!("{}-{}", host.trim(), s.pid())
}

/// The field managers that wrote the Ingress's status subresource.
async fn status_managers(api: &Api<Ingress>, name: &str) -> Vec<String> {
    let ing = api.get(name).await.unwrap();
    ing.metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager)
        .collect()
}

async fn status_ip(api: &Api<Ingress>, name: &str) -> Option<String> {
    let ing = api.get(name).await.ok()?;
    ing.status?.load_balancer?.ingress?.first()?.ip.clone()
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get("sluice-status")
        .await
        .ok()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_and_only_the_lease_holder_writes_status() {
    let api = KubeApi::start();
    let client = api.client().await;
    namespace_and_class(&client, NS).await;
    let origin = Origin::builder().start().await;
    let port = origin.addr().port();
    let dns = TestDns::start().await;
    dns.set("app.internal.example", &[origin.addr().ip()], 1);
    create(
        &Api::<Service>::namespaced(client.clone(), NS),
        json!({"metadata": {"name": "app", "namespace": NS},
               "spec": {"type": "ExternalName", "externalName": "app.internal.example"}}),
    )
    .await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), NS);
    create(&ingresses, ingress("app1", "app1.example.com", port)).await;

    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
resolver: {{nameservers: ["{dns}"], timeout: 500ms, attempts: 1}}
listeners: [{{name: ingress, bind: "127.0.0.1:0"}}]
sources: {{kubernetes: {{kubeconfig: "{kc}", namespaces: [{NS}], status_address: "{ADDRESS}",
  lease_namespace: sluice-system, lease_duration: 3s}}}}
"#,
        dns = dns.addr(),
        kc = api.chart_kubeconfig().await.display(),
    );
    let replicas = [
        Sluice::start(SLUICE, &yaml).await,
        Sluice::start(SLUICE, &yaml).await,
    ];
    for r in &replicas {
        let addr = r.listener_addr("ingress");
        eventually("each replica serves", || async {
            get(addr, "app1.example.com", "/").await.status == 200
        })
        .await;
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), "sluice-system");
    eventually("one replica holds the Lease", || async {
        holder(&leases).await.is_some()
    })
    .await;
    let first = holder(&leases).await.unwrap();
    let (held, other) = if first == identity(&replicas[0]) {
        (&replicas[0], &replicas[1])
    } else {
        assert_eq!(first, identity(&replicas[1]), "the holder is one of ours");
        (&replicas[1], &replicas[0])
    };
    eventually("the holder writes status.loadBalancer", || async {
        status_ip(&ingresses, "app1").await.as_deref() == Some(ADDRESS)
    })
    .await;
    assert_eq!(
        status_managers(&ingresses, "app1").await,
        [format!("sluice-{first}")],
        "only the Lease holder wrote status"
    );

    // The holder dies without releasing the Lease: the other replica takes it once
    // it expires (3 s), and writes the status of what changes after.
    held.signal("KILL");
    let second = identity(other);
    let start = Instant::now();
    eventually("the other replica takes the Lease", || async {
        holder(&leases).await.as_deref() == Some(second.as_str())
    })
    .await;
    let took = start.elapsed();
    create(&ingresses, ingress("app2", "app2.example.com", port)).await;
    eventually("the new holder writes status", || async {
        status_ip(&ingresses, "app2").await.as_deref() == Some(ADDRESS)
    })
    .await;
    assert_eq!(
        status_managers(&ingresses, "app2").await,
        [format!("sluice-{second}")]
    );
    // The status is written from the translation, which the replica applies as a
    // reload of its own: the route may serve a moment after the status is out.
    let addr = other.listener_addr("ingress");
    eventually("the new holder serves app2", || async {
        get(addr, "app2.example.com", "/").await.status == 200
    })
    .await;
    assert!(took < Duration::from_secs(15), "takeover took {took:?}");
    assert_nothing_forbidden(other);
}
