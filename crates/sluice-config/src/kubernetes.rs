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
    /// Written to served Ingresses' `status.loadBalancer` (an IP, else a hostname);
    /// absent = Ingress status is left alone.
    #[serde(default)]
    pub status_address: Option<String>,
    /// Status is written by one replica: the holder of this `coordination.k8s.io`
    /// Lease. Absent namespace = `$POD_NAMESPACE`, else `default`.
    #[serde(default)]
    pub lease_namespace: Option<String>,
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// How long a holder that stopped renewing keeps the Lease.
    #[serde(default = "default_lease_duration")]
    pub lease_duration: HumanDuration,
    /// The TLS listener of this file that serves the certificates of Ingress
    /// `spec.tls` and of Gateway HTTPS listeners, picked by SNI after its own. Its
    /// `tls.certificates` may be empty: until a certificate arrives, its handshakes
    /// are refused. Absent: those certificates are not served (said on the objects).
    #[serde(default)]
    pub tls_listener: Option<String>,
    /// Where the certificates, keys and CA bundles read from Secrets and ConfigMaps
    /// are written (mode 0600, in a 0700 directory; named by their content, so a
    /// change is a new file) for the loaders to read. Use a memory-backed directory
    /// (the chart mounts an `emptyDir` with `medium: Memory`): keys never touch a disk.
    #[serde(default = "default_secrets_dir")]
    pub secrets_dir: PathBuf,
}

impl Default for KubernetesSource {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            namespaces: Vec::new(),
            ingress_class: default_ingress_class(),
            debounce: default_debounce(),
            status_address: None,
            lease_namespace: None,
            lease_name: default_lease_name(),
            lease_duration: default_lease_duration(),
            tls_listener: None,
            secrets_dir: default_secrets_dir(),
        }
    }
}

fn default_secrets_dir() -> PathBuf {
    PathBuf::from("/run/sluice/kubernetes")
}

/// The `spec.controller` of IngressClasses sluice serves.
pub const INGRESS_CONTROLLER: &str = "sluice.dev/ingress-controller";

fn default_ingress_class() -> String {
    "sluice".into()
}

fn default_debounce() -> HumanDuration {
    HumanDuration::millis(100)
}

fn default_lease_name() -> String {
    "sluice-status".into()
}

fn default_lease_duration() -> HumanDuration {
    HumanDuration::secs(15)
}

/// A DNS-1123 label (namespaces) or subdomain (object names), as the API server
/// checks them: a name it would refuse is better refused when the file is read.
fn dns_name(s: &str, max: usize, dots: bool) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
        && (dots || !s.contains('.'))
}

/// Checks serde cannot express; `Err((field, reason))`.
pub(crate) fn validate(k: &KubernetesSource) -> Result<(), (String, String)> {
    let field = |f: &str| format!("sources.kubernetes.{f}");
    let bad = |f: &str, why: String| Err((field(f), why));
    for (i, ns) in k.namespaces.iter().enumerate() {
        if !dns_name(ns, 63, false) {
            return bad(
                &format!("namespaces[{i}]"),
                format!("{ns:?} is not a namespace name (a DNS-1123 label: lower-case letters, digits and '-', at most 63)"),
            );
        }
        // Each entry starts its own watchers, so a repeated one would show every
        // object in it twice.
        if k.namespaces[..i].contains(ns) {
            return bad(
                &format!("namespaces[{i}]"),
                format!("{ns:?} is listed twice"),
            );
        }
    }
    if !dns_name(&k.ingress_class, 253, true) {
        return bad(
            "ingress_class",
            format!(
                "{:?} is not an IngressClass name (a DNS-1123 subdomain)",
                k.ingress_class
            ),
        );
    }
    if let Some(ns) = &k.lease_namespace {
        if !dns_name(ns, 63, false) {
            return bad("lease_namespace", format!("{ns:?} is not a namespace name"));
        }
    }
    if !dns_name(&k.lease_name, 253, true) {
        return bad(
            "lease_name",
            format!(
                "{:?} is not a Lease name (a DNS-1123 subdomain)",
                k.lease_name
            ),
        );
    }
    let debounce = k.debounce.get();
    if debounce.is_zero() || debounce > std::time::Duration::from_secs(10) {
        return bad(
            "debounce",
            "must be greater than zero and at most 10s (a steady stream of changes waits up to 4x this)".into(),
        );
    }
    let lease = k.lease_duration.get();
    if lease < std::time::Duration::from_secs(2) || lease > std::time::Duration::from_secs(300) {
        return bad(
            "lease_duration",
            "must be between 2s and 300s (the holder renews at a third of it)".into(),
        );
    }
    if !k.secrets_dir.is_absolute() {
        return bad(
            "secrets_dir",
            format!("{} is not an absolute path", k.secrets_dir.display()),
        );
    }
    if let Some(a) = &k.status_address {
        if a.parse::<std::net::IpAddr>().is_err() && !dns_name(a, 253, true) {
            return bad(
                "status_address",
                format!("{a:?} is neither an IP address nor a DNS name"),
            );
        }
    }
    Ok(())
}
