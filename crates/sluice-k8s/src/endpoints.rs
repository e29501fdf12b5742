//! A ClusterIP Service's servers, from its EndpointSlices: sluice balances and pools
//! per pod itself instead of through kube-proxy's virtual IP, as an ingress should.
//! Sorted and deduplicated, so a slice that lists the same endpoints in another order
//! (or splits them differently) gives the same servers and rebuilds nothing.

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The label EndpointSlices carry to name their Service.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// EndpointSlices by (namespace, Service name).
#[derive(Debug, Default)]
pub struct SliceIndex<'a> {
    by_service: BTreeMap<(String, String), Vec<&'a EndpointSlice>>,
}

impl<'a> SliceIndex<'a> {
    pub fn new(slices: &'a [Arc<EndpointSlice>]) -> Self {
        let mut by_service: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for s in slices {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME)) else {
                continue;
            };
            by_service
                .entry((ns, svc.clone()))
                .or_default()
                .push(s.as_ref());
        }
        Self { by_service }
    }

    /// `None`: the Service has no EndpointSlice at all (no endpoint controller, or a
    /// Service without a selector and no slices written for it). `Some(empty)`: slices
    /// exist but no endpoint is ready on this port.
    pub fn servers(&self, ns: &str, service: &str, port: &ServicePort) -> Option<Vec<String>> {
        let slices = self
            .by_service
            .get(&(ns.to_string(), service.to_string()))?;
        let mut out = BTreeSet::new();
        for slice in slices {
            if slice.address_type == "FQDN" {
                continue;
            }
            // The slice's port of the same name is the Service port's target port.
            let Some(number) = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or("") == port.name.as_deref().unwrap_or(""))
                .and_then(|p| p.port)
            else {
                continue;
            };
            for ep in slice.endpoints.iter().flatten() {
                // An absent `ready` means unknown, which consumers treat as ready.
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                // The first address is the endpoint's; the others are the same pod.
                if let (true, Some(ip)) = (ready, ep.addresses.first()) {
                    out.insert(server(ip, number));
                }
            }
        }
        Some(out.into_iter().collect())
    }
}

/// `host:port`, with an IPv6 address bracketed.
pub fn server(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
