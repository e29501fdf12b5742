//! The Kubernetes translation (objects → routes and backends). The input is a JSON
//! list of Ingress, Service, EndpointSlice, IngressClass, Secret and ConfigMap
//! objects. Invariants: no panic; the order of the objects (distinct, as in the
//! watchers' stores) does not change the result; every route host is lower-case.
#![no_main]

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use libfuzzer_sys::fuzz_target;
use sluice_k8s::{translate, Selector, Snapshot};
use std::sync::Arc;

fn snapshot(objects: &[serde_json::Value]) -> Snapshot {
    let mut s = Snapshot::default();
    for o in objects {
        let kind = o.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let v = o.clone();
        match kind {
            "Ingress" => s
                .ingresses
                .extend(serde_json::from_value::<Ingress>(v).ok().map(Arc::new)),
            "Service" => s
                .services
                .extend(serde_json::from_value::<Service>(v).ok().map(Arc::new)),
            "EndpointSlice" => s.endpoint_slices.extend(
                serde_json::from_value::<EndpointSlice>(v)
                    .ok()
                    .map(Arc::new),
            ),
            "IngressClass" => s
                .classes
                .extend(serde_json::from_value::<IngressClass>(v).ok().map(Arc::new)),
            "Secret" => s
                .secrets
                .extend(serde_json::from_value::<Secret>(v).ok().map(Arc::new)),
            "ConfigMap" => s
                .config_maps
                .extend(serde_json::from_value::<ConfigMap>(v).ok().map(Arc::new)),
            _ => {}
        }
    }
    s
}

/// What a reflector store can hold: one object per kind, namespace and name (the
/// first here). Two objects with one key never reach the translation: the store is
/// keyed by them, and the config refuses a namespace listed twice.
fn distinct(objects: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let field = |o: &serde_json::Value, f: &str| {
        o.pointer(f)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let mut seen = std::collections::HashSet::new();
    objects
        .into_iter()
        .filter(|o| {
            seen.insert((
                field(o, "/kind"),
                field(o, "/metadata/namespace"),
                field(o, "/metadata/name"),
            ))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Array(objects)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return;
    };
    let objects = distinct(objects);
    let sel = Selector {
        class: "sluice".into(),
        status_address: None,
        tls_listener: Some("https".into()),
        secrets_dir: "/run/sluice/kubernetes".into(),
    };
    let forward = translate(&snapshot(&objects), &sel);
    let mut reversed = objects.clone();
    reversed.reverse();
    assert_eq!(
        translate(&snapshot(&reversed), &sel),
        forward,
        "order changed the result"
    );
    for r in forward.groups.iter().flat_map(|g| g.routes.iter()) {
        assert_eq!(r.host, r.host.to_ascii_lowercase());
    }
});
