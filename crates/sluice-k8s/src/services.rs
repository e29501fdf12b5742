//! What routes refer to, resolved: a Service (ExternalName, EndpointSlices, cluster
//! IP) and its port become a backend's servers. Shared by the Ingress and the
//! HTTPRoute translations.

use crate::endpoints::{server, SliceIndex};
use crate::model::{key, Snapshot};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::ServiceBackendPort;
use serde_json::{json, Map, Value};
use sluice_config::Backend;
use std::collections::BTreeMap;

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
    pub(crate) fn new(snap: &'a Snapshot) -> Self {
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
