//! Kubernetes objects → the routes and backends they mean. A pure function of what
//! the watchers hold: everything is sorted and named from the objects, so the same
//! objects in any order (a re-list, a resync, reordered ports) give the same config,
//! which then compares `unchanged` and rebuilds nothing. Ingresses are read here,
//! Gateway API objects in `gateway`; both resolve Services the same way (`Refs`).

use crate::annotations;
use crate::model::{
    group, is_ip, key, Report, Routes, Selector, Snapshot, StatusPatch, Translation,
};
use crate::secrets::{Files, Material};
use crate::services::{backend, Refs};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressTLS};
use serde_json::{json, Value};
use sluice_config::{Backend, Certificate};
use std::collections::BTreeMap;
use std::sync::Arc;

const LEGACY_CLASS: &str = "kubernetes.io/ingress.class";
const DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";

pub fn translate(snap: &Snapshot, sel: &Selector) -> Translation {
    let class_is_default = snap.classes.iter().any(|c| {
        c.metadata.name.as_deref() == Some(sel.class.as_str())
            && c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS))
                .is_some_and(|v| v == "true")
    });
    let mut ingresses: Vec<&Ingress> = snap
        .ingresses
        .iter()
        .map(Arc::as_ref)
        .filter(|i| selected(i, sel, class_is_default))
        .collect();
    ingresses.sort_by_key(|i| key(&i.metadata));
    let refs = Refs::new(snap);
    let material = Material::new(snap, &sel.secrets_dir);
    let mut out = Translation::default();
    for ing in ingresses {
        let (namespace, name) = key(&ing.metadata);
        // Every Ingress of our class, served or broken: it is ours either way.
        if let Some(addr) = &sel.status_address {
            let field = if is_ip(addr) { "ip" } else { "hostname" };
            out.statuses.push(StatusPatch {
                api_version: "networking.k8s.io/v1".into(),
                kind: "Ingress".into(),
                namespace: Some(namespace.clone()),
                name: name.clone(),
                status: json!({"loadBalancer": {"ingress": [{field: addr}]}}),
            });
        }
        let mut parts = Parts::default();
        ingress(ing, &refs, &material, &mut parts, &mut out.reports);
        if !parts.routes.is_empty() {
            certificates(ing, &material, sel, &mut parts, &mut out.reports);
        }
        out.files.append(&mut parts.files);
        out.groups.extend(group(
            "Ingress",
            namespace,
            name,
            parts.backends,
            parts.routes,
            parts.certificates,
        ));
    }
    crate::gateway::translate(snap, &refs, &material, sel, &mut out);
    out.reports.sort();
    out.reports.dedup();
    out.statuses
        .sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    out
}

fn selected(i: &Ingress, sel: &Selector, class_is_default: bool) -> bool {
    let named = i
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    let legacy = i
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS))
        .map(String::as_str);
    match named.or(legacy) {
        Some(class) => class == sel.class,
        None => class_is_default,
    }
}

/// What one Ingress makes.
#[derive(Default)]
struct Parts {
    backends: BTreeMap<String, Backend>,
    routes: Routes,
    certificates: Vec<Certificate>,
    files: Files,
}

fn ingress(
    ing: &Ingress,
    refs: &Refs<'_>,
    material: &Material<'_>,
    parts: &mut Parts,
    reports: &mut Vec<Report>,
) {
    let id = key(&ing.metadata);
    let (ns, name) = &id;
    let report = |reason, message: String| Report::new("Ingress", &id, reason, message);
    let empty = BTreeMap::new();
    let mut applied = annotations::apply(ing.metadata.annotations.as_ref().unwrap_or(&empty));
    if !applied.ca_refs.is_empty() {
        let tls = applied.fields.entry("tls").or_insert_with(|| json!({}));
        if tls.get("ca_file").is_some() {
            let why = "sluice.dev/ca-file and sluice.dev/ca-secret or ca-configmap: set one";
            applied.errors.push(why.into());
        } else {
            match material.ca_bundle(ns, &applied.ca_refs, &mut parts.files) {
                Ok(path) => {
                    if let Value::Object(t) = tls {
                        t.insert("ca_file".into(), json!(path));
                    }
                }
                Err((reason, why)) => {
                    reports.push(report(reason, format!("{why}; Ingress skipped")));
                    return;
                }
            }
        }
    }
    for line in &applied.ignored {
        reports.push(report(
            "IgnoredSnippet",
            format!("{}: not applied: {line}", annotations::HAPROXY_SNIPPET),
        ));
    }
    if !applied.errors.is_empty() {
        for e in &applied.errors {
            reports.push(report("BadAnnotation", format!("{e}; Ingress skipped")));
        }
        return;
    }
    let Some(spec) = &ing.spec else { return };
    let mut paths: Vec<(String, String, &IngressBackend)> = Vec::new();
    if let Some(b) = &spec.default_backend {
        paths.push(("*".into(), "/".into(), b));
    }
    for rule in spec.rules.iter().flatten() {
        let host = rule
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "*".into())
            .to_ascii_lowercase();
        for p in rule.http.iter().flat_map(|h| &h.paths) {
            let path = p
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into());
            paths.push((host.clone(), path, &p.backend));
        }
    }
    for (host, path, target) in paths {
        let Some(svc) = &target.service else {
            let why = "only Service backends are supported";
            reports.push(report("UnsupportedBackend", why.into()));
            continue;
        };
        let built = refs
            .service(ns, &svc.name, svc.port.as_ref())
            .and_then(|r| {
                let backend_name = format!("k8s/{ns}/{name}/{}:{}", svc.name, r.port);
                backend(backend_name, r.servers, &applied.fields)
                    .map_err(|e| ("BadAnnotation", format!("{e}; Ingress path skipped")))
            });
        match built {
            Ok(b) => {
                let headers = crate::model::Headers::new();
                parts.routes.insert((host, path, headers, b.name.clone()));
                parts.backends.entry(b.name.clone()).or_insert(b);
            }
            Err((reason, message)) => reports.push(report(reason, message)),
        }
    }
}

/// The certificates of `spec.tls`, for the TLS listener. A Secret that is missing
/// or broken is reported and left out: its hosts are served with the listener's
/// other certificates (whose names a client will likely refuse), never with a key
/// that does not match.
fn certificates(
    ing: &Ingress,
    material: &Material<'_>,
    sel: &Selector,
    parts: &mut Parts,
    reports: &mut Vec<Report>,
) {
    let id = key(&ing.metadata);
    let tls: &[IngressTLS] = ing
        .spec
        .as_ref()
        .and_then(|s| s.tls.as_deref())
        .unwrap_or(&[]);
    if tls.is_empty() {
        return;
    }
    if sel.tls_listener.is_none() {
        let why = "spec.tls is not served: sluice's sources.kubernetes.tls_listener is not set";
        reports.push(Report::new("Ingress", &id, "TLSNotServed", why));
        return;
    }
    for t in tls {
        let Some(secret) = t.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        match material.certificate(&id.0, secret, &mut parts.files) {
            Ok(c) => parts.certificates.push(c),
            Err((_, why)) => {
                let why = format!("spec.tls: {why}; the certificate is not served");
                reports.push(Report::new("Ingress", &id, "BadCertificate", why));
            }
        }
    }
}
