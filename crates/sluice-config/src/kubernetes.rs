//! `sources.kubernetes`: sluice configured by the cluster (Ingress, Services).

use crate::duration::HumanDuration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Config sources besides this file.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// Routes and backends from the Kubernetes API (see [`KubernetesSource`]);
    /// absent = none. `sluice run --kubernetes` turns it on with the defaults.
    #[serde(default)]
    pub kubernetes: Option<KubernetesSource>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSource {
    /// A kubeconfig file; absent = the pod's service account (in-cluster), else
    /// `$KUBECONFIG`, else `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces to watch; empty (default) = all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The IngressClass sluice serves: Ingresses whose `spec.ingressClassName` (or
    /// legacy `kubernetes.io/ingress.class` annotation) names it, and those with no
    /// class when that IngressClass is marked default.
    #[serde(default = "default_ingress_class")]
    pub ingress_class: String,
    /// Changes arriving within this of each other are translated once.
    #[serde(default = "default_debounce")]
    pub debounce: HumanDuration,
}

impl Default for KubernetesSource {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            namespaces: Vec::new(),
            ingress_class: default_ingress_class(),
            debounce: default_debounce(),
        }
    }
}

/// The `spec.controller` of IngressClasses sluice serves.
pub const INGRESS_CONTROLLER: &str = "sluice.dev/ingress-controller";

fn default_ingress_class() -> String {
    "sluice".into()
}

fn default_debounce() -> HumanDuration {
    HumanDuration::millis(100)
}
