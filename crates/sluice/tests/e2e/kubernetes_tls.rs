//! Certificates and CA bundles from the cluster, against the real API server: an
//! Ingress's `spec.tls` Secret is served by SNI on `sources.kubernetes.tls_listener`
//! and swapped when the Secret changes; a ConfigMap's `ca.crt` named by
//! `sluice.dev/ca-configmap` verifies the backend; a Secret whose key does not match
//! its certificate costs only the Ingress naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::kubernetes::{
    assert_nothing_forbidden, create, eventually, namespace_and_class, warning_event,
};
use sluice_testkit::k8s_openapi::api::core::v1::{ConfigMap, Event, Secret, Service};
use sluice_testkit::k8s_openapi::api::networking::v1::Ingress;
use sluice_testkit::kube::api::{Api, DeleteParams, Patch, PatchParams};
use sluice_testkit::serde_json::{json, Value};
use sluice_testkit::{Certs, KubeApi, Origin, Sluice, TestDns, TlsConn};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const NS: &str = "tls";

pub(crate) fn tls_secret(name: &str, ns: &str, certs: &Certs) -> Value {
    let (crt, key) = certs.leaf_pem();
    json!({"metadata": {"name": name, "namespace": ns}, "type": "kubernetes.io/tls",
           "stringData": {"tls.crt": crt, "tls.key": key}})
}

/// The leaf sluice presents for `sni` and the status of a GET through it, if the
/// handshake (verified with `client`) and the request succeed.
pub(crate) async fn https_get(
    addr: SocketAddr,
    sni: &str,
    client: Arc<rustls::ClientConfig>,
) -> Option<(u16, Vec<u8>)> {
    let mut conn = TlsConn::connect(addr, Some(sni), client, &["http/1.1"])
        .await
        .ok()?;
    let r = conn.get(sni, "/").await.ok()?;
    Some((r.status.as_u16(), conn.peer_leaf.as_ref().to_vec()))
}

/// An in-process TLS origin for `api.partner.example` (on 127.0.0.2, found through
/// the returned DNS server) whose certificate is from a private CA that only the
/// ConfigMap `partner-ca` of `ns` holds, and the ExternalName Service `partner`.
pub(crate) async fn partner(
    client: &sluice_testkit::kube::Client,
    ns: &str,
) -> (Certs, Origin, TestDns) {
    let certs = Certs::new(&["api.partner.example"]);
    let origin = Origin::builder()
        .bind_ip("127.0.0.2".parse().unwrap())
        .tls(&certs)
        .start()
        .await;
    let dns = TestDns::start().await;
    dns.set("api.partner.example", &["127.0.0.2".parse().unwrap()], 1);
    create(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        json!({"metadata": {"name": "partner-ca", "namespace": ns},
               "data": {"ca.crt": certs.ca_pem()}}),
    )
    .await;
    create(
        &Api::<Service>::namespaced(client.clone(), ns),
        json!({"metadata": {"name": "partner", "namespace": ns},
               "spec": {"type": "ExternalName", "externalName": "api.partner.example",
                        "ports": [{"name": "https", "port": origin.addr().port()}]}}),
    )
    .await;
    (certs, origin, dns)
}

fn ingress(name: &str, host: &str, secret: &str, port: u16) -> Value {
    json!({
        "metadata": {"name": name, "namespace": NS,
                     "annotations": {"sluice.dev/ca-configmap": "partner-ca"}},
        "spec": {"ingressClassName": "sluice",
                 "tls": [{"hosts": [host], "secretName": secret}],
                 "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "partner", "port": {"number": port}}}}]}}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_tls_secrets_serve_by_sni_renew_live_and_a_configmap_ca_verifies_the_backend() {
    let api = KubeApi::start();
    let client = api.client().await;
    namespace_and_class(&client, NS).await;

    // The backend's certificate is from a private CA only the ConfigMap holds.
    let (_partner, origin, dns) = partner(&client, NS).await;
    let port = origin.addr().port();
    let site = Certs::new(&["app1.example.com"]);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    create(&secrets, tls_secret("app1-tls", NS, &site)).await;
    // bad.example.com's certificate with app1's key: they do not belong together.
    let other = Certs::new(&["bad.example.com"]);
    create(
        &secrets,
        json!({"metadata": {"name": "bad-tls", "namespace": NS}, "type": "kubernetes.io/tls",
               "stringData": {"tls.crt": other.leaf_pem().0, "tls.key": site.leaf_pem().1}}),
    )
    .await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), NS);
    create(
        &ingresses,
        ingress("app1", "app1.example.com", "app1-tls", port),
    )
    .await;
    create(
        &ingresses,
        ingress("bad", "bad.example.com", "bad-tls", port),
    )
    .await;

    let scratch = sluice_testkit::scratch_dir();
    let secrets_dir = scratch.path().join("secrets");
    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
resolver: {{nameservers: ["{dns}"], timeout: 500ms, attempts: 1}}
listeners: [{{name: https, bind: "127.0.0.1:0", tls: {{certificates: []}}}}]
sources: {{kubernetes: {{kubeconfig: "{kc}", namespaces: [{NS}], lease_namespace: sluice-system,
  tls_listener: https, secrets_dir: "{dir}"}}}}
"#,
        dns = dns.addr(),
        kc = api.chart_kubeconfig().await.display(),
        dir = secrets_dir.display(),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("https");
    eventually(
        "app1's Secret serves its host, the backend verified by the ConfigMap's CA",
        || async {
            https_get(addr, "app1.example.com", site.client_config()).await
                == Some((200, site.leaf_der().as_ref().to_vec()))
        },
    )
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    warning_event(&events, "bad", "BadCertificate", "does not belong").await;

    // The private key sits only in the 0700 directory, readable by sluice alone.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets_dir), 0o700);
    let written: Vec<_> = std::fs::read_dir(&secrets_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        written
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".tls.key")),
        "{written:?}"
    );
    assert!(written.iter().all(|p| mode(p) == 0o600), "{written:?}");

    // A renewal (cert-manager rewriting the Secret): the next handshake gets it, and
    // a connection opened before keeps working.
    let mut kept = TlsConn::connect(
        addr,
        Some("app1.example.com"),
        site.client_config(),
        &["h2"],
    )
    .await
    .unwrap();
    let renewed = site.expiring_in(90);
    let (crt, key) = renewed.leaf_pem();
    secrets
        .patch(
            "app1-tls",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"tls.crt": crt, "tls.key": key}})),
        )
        .await
        .unwrap();
    eventually(
        "the renewed certificate serves the next handshake",
        || async {
            https_get(addr, "app1.example.com", site.client_config()).await
                == Some((200, renewed.leaf_der().as_ref().to_vec()))
        },
    )
    .await;
    assert_eq!(
        kept.get("app1.example.com", "/again").await.unwrap().status,
        200,
        "the open connection lives on"
    );

    // Without the Ingress there is no certificate left: handshakes are refused.
    ingresses
        .delete("app1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("no certificate, no handshake", || async {
        TlsConn::connect(
            addr,
            Some("app1.example.com"),
            site.client_config(),
            &["h2"],
        )
        .await
        .is_err()
    })
    .await;
    assert!(origin.accepted() <= 2, "pooled: {}", origin.accepted());
    assert_nothing_forbidden(&sluice);
}
