//! Secrets and ConfigMaps in the translation: listener certificates checked before
//! they are used, CA bundles by reference, files named by their content.

use crate::model::{Selector, Snapshot};
use crate::secrets::{strip_secret, CA_CRT};
use crate::translate::translate;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::ByteString;
use serde_json::json;
use std::sync::Arc;

fn leaf(name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

fn tls_secret(name: &str, crt: &str, key: &str) -> Arc<Secret> {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some("shop".into());
    s.type_ = Some("kubernetes.io/tls".into());
    s.data = Some(
        [("tls.crt", crt), ("tls.key", key)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    Arc::new(s)
}

fn snapshot(annotations: serde_json::Value, secret: &str) -> Snapshot {
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"ingressClassName": "sluice",
                 "tls": [{"hosts": ["shop.example.com"], "secretName": secret}],
                 "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/",
                     "pathType": "Prefix",
                     "backend": {"service": {"name": "api", "port": {"number": 443}}}}]}}]}
    }))
    .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "api.example.com", "ports": [{"port": 443}]}
    }))
    .unwrap();
    Snapshot {
        ingresses: vec![Arc::new(ingress)],
        services: vec![Arc::new(service)],
        ..Snapshot::default()
    }
}

fn sel(tls_listener: Option<&str>) -> Selector {
    Selector {
        class: "sluice".into(),
        status_address: None,
        tls_listener: tls_listener.map(str::to_string),
        secrets_dir: "/run/sluice/kubernetes".into(),
    }
}

#[test]
fn a_tls_secret_becomes_a_listener_certificate_in_content_named_files() {
    let (crt, key) = leaf("shop.example.com");
    let mut snap = snapshot(json!({}), "shop-tls");
    snap.secrets.push(tls_secret("shop-tls", &crt, &key));
    let t = translate(&snap, &sel(Some("https")));
    assert!(t.reports.is_empty(), "{:?}", t.reports);
    let certs = &t.groups[0].certificates;
    assert_eq!(certs.len(), 1);
    let c = &certs[0];
    assert!(c.cert_file.starts_with("/run/sluice/kubernetes"), "{c:?}");
    assert!(c
        .key_file
        .to_string_lossy()
        .starts_with("/run/sluice/kubernetes/shop.shop-tls."));
    assert_eq!(t.files[&c.cert_file].as_ref(), crt.as_bytes());
    assert_eq!(t.files[&c.key_file].as_ref(), key.as_bytes());

    // A renewal is a new path: a config change the reload sees.
    let (crt2, key2) = leaf("shop.example.com");
    let mut renewed = snapshot(json!({}), "shop-tls");
    renewed.secrets.push(tls_secret("shop-tls", &crt2, &key2));
    let t2 = translate(&renewed, &sel(Some("https")));
    assert_ne!(t2.groups[0].certificates[0].cert_file, c.cert_file);
    assert_eq!(
        translate(&renewed, &sel(Some("https"))),
        t2,
        "deterministic"
    );
}

#[test]
fn a_key_of_another_certificate_or_no_tls_listener_is_reported_and_routes_still_serve() {
    let (crt, _) = leaf("shop.example.com");
    let (_, other_key) = leaf("other.example.com");
    let mut snap = snapshot(json!({}), "shop-tls");
    snap.secrets.push(tls_secret("shop-tls", &crt, &other_key));
    let t = translate(&snap, &sel(Some("https")));
    assert_eq!(t.groups[0].routes.len(), 1, "the Ingress still routes");
    assert!(t.groups[0].certificates.is_empty());
    assert!(t.files.is_empty(), "nothing written for a broken Secret");
    let r = &t.reports[0];
    assert_eq!(r.reason, "BadCertificate");
    assert!(
        r.message.contains("tls.key") && r.message.contains("does not belong"),
        "{r:?}"
    );

    let missing = translate(&snapshot(json!({}), "nope"), &sel(Some("https")));
    assert!(missing.reports[0]
        .message
        .contains("Secret shop/nope: not found"));

    let (crt, key) = leaf("shop.example.com");
    let mut snap = snapshot(json!({}), "shop-tls");
    snap.secrets.push(tls_secret("shop-tls", &crt, &key));
    let t = translate(&snap, &sel(None));
    assert_eq!(t.reports[0].reason, "TLSNotServed");
    assert!(t.groups[0].certificates.is_empty());
}

#[test]
fn a_ca_configmap_verifies_the_backend_and_a_missing_one_skips_the_ingress() {
    let (ca, _) = leaf("Private CA");
    let annotations = json!({"sluice.dev/ca-configmap": "partner-ca"});
    let mut snap = snapshot(annotations.clone(), "");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("partner-ca".into());
    cm.metadata.namespace = Some("shop".into());
    cm.data = Some([(CA_CRT.to_string(), ca.clone())].into_iter().collect());
    snap.config_maps.push(Arc::new(cm));
    let t = translate(&snap, &sel(Some("https")));
    let tls = t.groups[0].backends[0].tls.as_ref().unwrap();
    let path = tls.ca_file.as_ref().unwrap();
    assert!(path.to_string_lossy().ends_with(".ca.crt"), "{path:?}");
    assert!(t.files[path].starts_with(ca.as_bytes()));

    let t = translate(&snapshot(annotations, ""), &sel(Some("https")));
    assert!(t.groups.is_empty(), "fails closed: not served unverified");
    assert_eq!(t.reports[0].reason, "InvalidCACertificateRef");
    assert!(t.reports[0]
        .message
        .contains("ConfigMap shop/partner-ca: not found"));
}

#[test]
fn watchers_keep_only_the_keys_sluice_reads() {
    let mut s = Secret::default();
    s.metadata.annotations = Some(
        [(
            "kubectl.kubernetes.io/last-applied-configuration".to_string(),
            "{...}".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    s.data = Some(
        ["tls.crt", "tls.key", "ca.crt", "release", "token"]
            .into_iter()
            .map(|k| (k.to_string(), ByteString(b"x".to_vec())))
            .collect(),
    );
    strip_secret(&mut s);
    assert!(s.metadata.annotations.is_none());
    let kept: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
    assert_eq!(kept, ["ca.crt", "tls.crt", "tls.key"]);
}
