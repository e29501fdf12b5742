//! Kubernetes objects → the routes and backends they mean. A pure function of what
//! the watchers hold: everything is sorted and named from the objects, so the same
//! objects in any order (a re-list, a resync, reordered ports) give the same config,
//! which then compares `unchanged` and rebuilds nothing.

use crate::annotations;
use crate::endpoints::{server, SliceIndex};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use serde_json::{json, Value};
use sluice_config::{Backend, Route};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the watchers hold, in any order.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub ingresses: Vec<Arc<Ingress>>,
    pub services: Vec<Arc<Service>>,
    pub classes: Vec<Arc<IngressClass>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
}

/// A problem with one object, reported on it (a Warning Event) and in the log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Report {
    pub namespace: String,
    pub name: String,
    /// CamelCase, as Events want it (`BadAnnotation`).
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Translation {
    /// One per Ingress that contributes anything, sorted by namespace and name: the
    /// unit the reload validates on its own, so one bad Ingress is skipped alone.
    pub groups: Vec<Group>,
    /// Sorted; an object with reports may still serve (ignored snippet lines) or not
    /// (a missing Service).
    pub reports: Vec<Report>,
}

/// What one object (an Ingress) contributes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Group {
    pub namespace: String,
    pub name: String,
    pub backends: Vec<Backend>,
    pub routes: Vec<Route>,
}

impl Translation {
    pub fn backends(&self) -> Vec<&Backend> {
        self.groups.iter().flat_map(|g| &g.backends).collect()
    }

    pub fn routes(&self) -> Vec<&Route> {
        self.groups.iter().flat_map(|g| &g.routes).collect()
    }
}

/// Which Ingresses are ours.
#[derive(Debug, Clone)]
pub struct Selector {
    pub class: String,
}

const LEGACY_CLASS: &str = "kubernetes.io/ingress.class";
const DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";

pub fn translate(snap: &Snapshot, sel: &Selector) -> Translation {
    let services: BTreeMap<(String, String), &Service> = snap
        .services
        .iter()
        .map(|s| (key(&s.metadata), s.as_ref()))
        .collect();
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
    let refs = Refs {
        services,
        slices: SliceIndex::new(&snap.endpoint_slices),
    };
    let mut out = Translation::default();
    for ing in ingresses {
        let mut backends = BTreeMap::new();
        let mut routes = BTreeSet::new();
        ingress(ing, &refs, &mut backends, &mut routes, &mut out.reports);
        if backends.is_empty() && routes.is_empty() {
            continue;
        }
        let (namespace, name) = key(&ing.metadata);
        out.groups.push(Group {
            namespace,
            name,
            backends: backends.into_values().collect(),
            routes: routes
                .into_iter()
                .map(|(host, path_prefix, backend)| Route {
                    host,
                    path_prefix,
                    backend,
                    client_identities: Vec::new(),
                })
                .collect(),
        });
    }
    out.reports.sort();
    out.reports.dedup();
    out
}

fn key(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
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

type Routes = BTreeSet<(String, String, String)>;

/// What Ingress paths refer to.
struct Refs<'a> {
    services: BTreeMap<(String, String), &'a Service>,
    slices: SliceIndex<'a>,
}

fn ingress(
    ing: &Ingress,
    refs: &Refs<'_>,
    backends: &mut BTreeMap<String, Backend>,
    routes: &mut Routes,
    reports: &mut Vec<Report>,
) {
    let (ns, name) = key(&ing.metadata);
    let report = |reason: &'static str, message: String| Report {
        namespace: ns.clone(),
        name: name.clone(),
        reason,
        message,
    };
    let empty = BTreeMap::new();
    let applied = annotations::apply(ing.metadata.annotations.as_ref().unwrap_or(&empty));
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
        match backend(&ns, &name, target, refs, &applied.fields) {
            Ok(b) => {
                routes.insert((host, path, b.name.clone()));
                backends.entry(b.name.clone()).or_insert(b);
            }
            Err((reason, message)) => reports.push(report(reason, message)),
        }
    }
}

/// The backend of one Ingress path: its Service's address and port (an
/// ExternalName's DNS name, else the ready endpoints of its EndpointSlices, else its
/// cluster IP), with the Ingress's annotations.
fn backend(
    ns: &str,
    ingress: &str,
    target: &IngressBackend,
    refs: &Refs<'_>,
    fields: &serde_json::Map<String, Value>,
) -> Result<Backend, (&'static str, String)> {
    let Some(svc_ref) = &target.service else {
        return Err((
            "UnsupportedBackend",
            "only Service backends are supported".into(),
        ));
    };
    let svc = refs
        .services
        .get(&(ns.to_string(), svc_ref.name.clone()))
        .ok_or_else(|| {
            (
                "ServiceNotFound",
                format!("Service {ns}/{} not found", svc_ref.name),
            )
        })?;
    let spec = svc
        .spec
        .as_ref()
        .ok_or(("ServiceNotFound", "Service has no spec".to_string()))?;
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    let wanted = svc_ref.port.as_ref();
    let port = ports.iter().find(|p| match wanted {
        Some(w) => w.number == Some(p.port) || (w.name.is_some() && w.name == p.name),
        None => ports.len() == 1,
    });
    let port = match (port, wanted.and_then(|w| w.number)) {
        (Some(p), _) => {
            if spec.type_.as_deref() != Some("ExternalName") {
                if let Some(servers) = refs.slices.servers(ns, &svc_ref.name, p) {
                    if !servers.is_empty() {
                        let name = format!("k8s/{ns}/{ingress}/{}:{}", svc_ref.name, p.port);
                        return with_annotations(name, servers, fields);
                    }
                }
            }
            p.port
        }
        // An ExternalName Service need not list ports: the Ingress's number is the port.
        (None, Some(n)) if spec.type_.as_deref() == Some("ExternalName") => n,
        _ => {
            return Err((
                "ServicePortNotFound",
                format!("Service {ns}/{} has no such port", svc_ref.name),
            ))
        }
    };
    let host = match spec.type_.as_deref() {
        Some("ExternalName") => spec.external_name.clone().unwrap_or_default(),
        _ => spec
            .cluster_ip
            .clone()
            .filter(|ip| !ip.is_empty() && ip != "None")
            .unwrap_or_default(),
    };
    if host.is_empty() {
        return Err((
            "ServiceUnsupported",
            format!(
                "Service {ns}/{} has no externalName or cluster IP",
                svc_ref.name
            ),
        ));
    }
    let name = format!("k8s/{ns}/{ingress}/{}:{port}", svc_ref.name);
    with_annotations(name, vec![server(&host, port)], fields)
}

fn with_annotations(
    name: String,
    servers: Vec<String>,
    fields: &serde_json::Map<String, Value>,
) -> Result<Backend, (&'static str, String)> {
    let mut json = fields.clone();
    json.insert("name".into(), json!(name));
    json.insert("servers".into(), json!(servers));
    serde_json::from_value::<Backend>(Value::Object(json))
        .map_err(|e| ("BadAnnotation", format!("{e}; Ingress path skipped")))
}
