//! Kubernetes objects → the routes and backends they mean. A pure function of what
//! the watchers hold: everything is sorted and named from the objects, so the same
//! objects in any order (a re-list, a resync, reordered ports) give the same config,
//! which then compares `unchanged` and rebuilds nothing. Ingresses are read here,
//! Gateway API objects in `gateway`; both resolve Services the same way (`Refs`).

use crate::annotations;
use crate::endpoints::{server, SliceIndex};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass, ServiceBackendPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use serde_json::{json, Map, Value};
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
    /// `gateway.networking.k8s.io/v1` objects, untyped: no crate in the tree has
    /// their types, and only a few fields of each are read.
    pub gateway_classes: Vec<Arc<DynamicObject>>,
    pub gateways: Vec<Arc<DynamicObject>>,
    pub http_routes: Vec<Arc<DynamicObject>>,
    pub backend_tls_policies: Vec<Arc<DynamicObject>>,
}

/// A problem with one object, reported on it (a Warning Event) and in the log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Report {
    /// `Ingress`, `Gateway`, `HTTPRoute` or `BackendTLSPolicy`: the Event's object.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// CamelCase, as Events want it (`BadAnnotation`).
    pub reason: &'static str,
    pub message: String,
}

impl Report {
    pub(crate) fn new(
        kind: &'static str,
        (namespace, name): &(String, String),
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let (namespace, name, message) = (namespace.clone(), name.clone(), message.into());
        Self {
            kind,
            namespace,
            name,
            reason,
            message,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Translation {
    /// One per object that contributes anything: Ingresses by namespace and name,
    /// then HTTPRoutes oldest first (Gateway API's precedence: when two conflict,
    /// the reload keeps the earlier group). The unit the reload validates on its
    /// own, so one bad object is skipped alone.
    pub groups: Vec<Group>,
    /// Sorted; an object with reports may still serve (ignored snippet lines) or not
    /// (a missing Service).
    pub reports: Vec<Report>,
    /// Sorted by kind, namespace and name: the status each served object should have.
    pub statuses: Vec<StatusPatch>,
}

/// The whole `status` of one object, as a conformant controller writes it. Every
/// condition's `lastTransitionTime` is `crate::status::UNSET_TIME`, so that a
/// re-list translates equal: the status writer puts in the real time, and writes
/// only when the status differs from what it wrote last (times aside).
///
/// `parents` (HTTPRoute) and `ancestors` (BackendTLSPolicy) hold only sluice's
/// entries; other controllers' entries of the same object are theirs to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPatch {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects (GatewayClass).
    pub namespace: Option<String>,
    pub name: String,
    pub status: Value,
}

/// What one object (an Ingress, an HTTPRoute) contributes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Group {
    pub kind: &'static str,
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

/// Which Ingresses are ours, and what their status says.
#[derive(Debug, Clone)]
pub struct Selector {
    pub class: String,
    /// Where clients reach sluice (an IP, else a host name): written to our
    /// Ingresses' `status.loadBalancer` and our Gateways' `status.addresses`.
    /// `None`: no Ingress status, and Gateways list no address.
    pub status_address: Option<String>,
}

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
        let mut backends = BTreeMap::new();
        let mut routes = BTreeSet::new();
        ingress(ing, &refs, &mut backends, &mut routes, &mut out.reports);
        out.groups
            .extend(group("Ingress", namespace, name, backends, routes));
    }
    crate::gateway::translate(snap, &refs, sel, &mut out);
    out.reports.sort();
    out.reports.dedup();
    out.statuses
        .sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    out
}

pub(crate) fn is_ip(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>().is_ok()
}

pub(crate) fn key(m: &ObjectMeta) -> (String, String) {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// `None` when the object contributes nothing.
pub(crate) fn group(
    kind: &'static str,
    namespace: String,
    name: String,
    backends: BTreeMap<String, Backend>,
    routes: Routes,
) -> Option<Group> {
    if backends.is_empty() && routes.is_empty() {
        return None;
    }
    Some(Group {
        kind,
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
    })
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

/// (host, path prefix, backend name).
pub(crate) type Routes = BTreeSet<(String, String, String)>;

fn ingress(
    ing: &Ingress,
    refs: &Refs<'_>,
    backends: &mut BTreeMap<String, Backend>,
    routes: &mut Routes,
    reports: &mut Vec<Report>,
) {
    let id = key(&ing.metadata);
    let (ns, name) = &id;
    let report = |reason, message: String| Report::new("Ingress", &id, reason, message);
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
                routes.insert((host, path, b.name.clone()));
                backends.entry(b.name.clone()).or_insert(b);
            }
            Err((reason, message)) => reports.push(report(reason, message)),
        }
    }
}

/// What routes refer to: Services, and their EndpointSlices.
pub(crate) struct Refs<'a> {
    services: BTreeMap<(String, String), &'a Service>,
    slices: SliceIndex<'a>,
}

/// One Service port's servers.
pub(crate) struct Resolved {
    pub servers: Vec<String>,
    /// The Service's port number (not the target port): part of backend names.
    pub port: i32,
    /// What a BackendTLSPolicy's `sectionName` names.
    pub port_name: Option<String>,
}

impl<'a> Refs<'a> {
    fn new(snap: &'a Snapshot) -> Self {
        Self {
            services: snap
                .services
                .iter()
                .map(|s| (key(&s.metadata), s.as_ref()))
                .collect(),
            slices: SliceIndex::new(&snap.endpoint_slices),
        }
    }

    /// A Service's address and port: an ExternalName's DNS name, else the ready
    /// endpoints of its EndpointSlices, else its cluster IP. `wanted` absent: the
    /// Service's only port.
    pub(crate) fn service(
        &self,
        ns: &str,
        name: &str,
        wanted: Option<&ServiceBackendPort>,
    ) -> Result<Resolved, (&'static str, String)> {
        let svc = self
            .services
            .get(&(ns.to_string(), name.to_string()))
            .ok_or_else(|| ("ServiceNotFound", format!("Service {ns}/{name} not found")))?;
        let spec = svc
            .spec
            .as_ref()
            .ok_or(("ServiceNotFound", "Service has no spec".to_string()))?;
        let external = spec.type_.as_deref() == Some("ExternalName");
        let ports = spec.ports.as_deref().unwrap_or(&[]);
        let found = ports.iter().find(|p| match wanted {
            Some(w) => w.number == Some(p.port) || (w.name.is_some() && w.name == p.name),
            None => ports.len() == 1,
        });
        let (port, port_name) = match (found, wanted.and_then(|w| w.number)) {
            (Some(p), _) => (p.port, p.name.clone()),
            // An ExternalName Service need not list ports: the route's number is the port.
            (None, Some(n)) if external => (n, None),
            _ => {
                let why = format!("Service {ns}/{name} has no such port");
                return Err(("ServicePortNotFound", why));
            }
        };
        let ready = found
            .filter(|_| !external)
            .and_then(|p| self.slices.servers(ns, name, p));
        if let Some(servers) = ready.filter(|s| !s.is_empty()) {
            return Ok(Resolved {
                servers,
                port,
                port_name,
            });
        }
        let host = match external {
            true => spec.external_name.clone(),
            false => spec.cluster_ip.clone().filter(|ip| ip != "None"),
        };
        match host.filter(|h| !h.is_empty()) {
            Some(host) => {
                let servers = vec![server(&host, port)];
                Ok(Resolved {
                    servers,
                    port,
                    port_name,
                })
            }
            None => {
                let why = format!("Service {ns}/{name} has no externalName or cluster IP");
                Err(("ServiceUnsupported", why))
            }
        }
    }
}

/// A backend from its JSON form, so sluice-config's own parsing (and defaults)
/// apply to the fields annotations and policies set (`tls`, `pool`, ...).
pub(crate) fn backend(
    name: String,
    servers: Vec<String>,
    fields: &Map<String, Value>,
) -> Result<Backend, serde_json::Error> {
    let mut json = fields.clone();
    json.insert("name".into(), json!(name));
    json.insert("servers".into(), json!(servers));
    serde_json::from_value::<Backend>(Value::Object(json))
}
