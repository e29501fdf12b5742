//! The translation's types: what the watchers hold (`Snapshot`), what selects ours
//! (`Selector`), and what comes out (`Translation`: groups of routes and backends,
//! reports, statuses), with the small helpers every translator uses.

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use serde_json::Value;
use sluice_config::{Backend, Certificate, Route};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The `controllerName` of GatewayClasses sluice serves.
pub const GATEWAY_CONTROLLER: &str = "sluice.dev/gateway-controller";
pub(crate) const GROUP: &str = "gateway.networking.k8s.io";

/// The time conditions carry until written; the status writer puts the real one in.
pub const UNSET_TIME: &str = "1970-01-01T00:00:00Z";

/// What the watchers hold, in any order.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub ingresses: Vec<Arc<Ingress>>,
    pub services: Vec<Arc<Service>>,
    pub classes: Vec<Arc<IngressClass>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Only the keys sluice reads (`secrets::strip_secret`).
    pub secrets: Vec<Arc<Secret>>,
    pub config_maps: Vec<Arc<ConfigMap>>,
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
    /// The certificates, keys and CA bundles the groups name, to be written before
    /// the groups are applied.
    pub files: Files,
}

/// The whole `status` of one object, as a conformant controller writes it. Every
/// condition's `lastTransitionTime` is `crate::model::UNSET_TIME`, so that a
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
    /// For `sources.kubernetes.tls_listener` (Ingress `spec.tls`, Gateway HTTPS
    /// listeners).
    pub certificates: Vec<Certificate>,
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
    /// `sources.kubernetes.tls_listener`: `None`, certificates are not served.
    pub tls_listener: Option<String>,
    /// `sources.kubernetes.secrets_dir`: where the files the groups name go.
    pub secrets_dir: std::path::PathBuf,
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
    mut certificates: Vec<Certificate>,
) -> Option<Group> {
    if backends.is_empty() && routes.is_empty() && certificates.is_empty() {
        return None;
    }
    certificates.sort_by(|a, b| a.cert_file.cmp(&b.cert_file));
    certificates.dedup();
    Some(Group {
        kind,
        namespace,
        name,
        backends: backends.into_values().collect(),
        routes: routes
            .into_iter()
            .map(|(host, path_prefix, headers, backend)| Route {
                host,
                path_prefix,
                backend,
                client_identities: Vec::new(),
                headers,
                max_request_body: None,
            })
            .collect(),
        certificates,
    })
}

/// The files a translation needs (certificates, keys, CA bundles), by path.
pub type Files = BTreeMap<std::path::PathBuf, Arc<[u8]>>;

/// Header name (lower case) → the exact value a route requires.
pub(crate) type Headers = BTreeMap<String, String>;

/// (host, path prefix, header conditions, backend name).
pub(crate) type Routes = BTreeSet<(String, String, Headers, String)>;
