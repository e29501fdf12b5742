//! Secrets and ConfigMaps, as the translation reads them: listener certificates
//! (`kubernetes.io/tls` Secrets) and CA bundles (the `ca.crt` key of a Secret or a
//! ConfigMap). Their bytes become files named by their content in
//! `sources.kubernetes.secrets_dir`, so the loaders that read certificate files read
//! these too, and a changed Secret is a changed path: a config change like any other.
//!
//! Everything is checked here, before it reaches a reload: a Secret whose key does
//! not match its certificate is reported on the object that names it and left out,
//! instead of failing the reload that would also carry everyone else's changes.

pub(crate) use crate::model::Files;
use crate::model::{key, Snapshot};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use sluice_config::Certificate;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys sluice reads; watchers drop every other (`strip_secret`).
pub(crate) const TLS_CRT: &str = "tls.crt";
pub(crate) const TLS_KEY: &str = "tls.key";
pub(crate) const CA_CRT: &str = "ca.crt";

/// A problem with a reference: a condition reason and a message.
pub(crate) type Problem = (&'static str, String);

/// The Secrets and ConfigMaps of a snapshot, and where their files go.
pub(crate) struct Material<'a> {
    secrets: BTreeMap<(String, String), &'a Secret>,
    maps: BTreeMap<(String, String), &'a ConfigMap>,
    dir: &'a Path,
}

impl<'a> Material<'a> {
    pub(crate) fn new(snap: &'a Snapshot, dir: &'a Path) -> Self {
        Self {
            secrets: snap
                .secrets
                .iter()
                .map(|s| (key(&s.metadata), s.as_ref()))
                .collect(),
            maps: snap
                .config_maps
                .iter()
                .map(|m| (key(&m.metadata), m.as_ref()))
                .collect(),
            dir,
        }
    }

    /// A `kubernetes.io/tls` Secret as a listener certificate, its chain and key
    /// checked to belong together. Reasons are Gateway API's `InvalidCertificateRef`.
    pub(crate) fn certificate(
        &self,
        ns: &str,
        name: &str,
        files: &mut Files,
    ) -> Result<Certificate, Problem> {
        let bad = |why: String| {
            (
                "InvalidCertificateRef",
                format!("Secret {ns}/{name}: {why}"),
            )
        };
        let secret = self
            .secrets
            .get(&(ns.to_string(), name.to_string()))
            .ok_or_else(|| bad("not found".into()))?;
        let data = secret.data.as_ref();
        let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
        let (Some(crt), Some(pem_key)) = (get(TLS_CRT), get(TLS_KEY)) else {
            return Err(bad(format!("has no {TLS_CRT} and {TLS_KEY}")));
        };
        sluice_net::key_pair(crt, pem_key).map_err(|(part, why)| {
            let k = match part {
                sluice_net::Part::Chain => TLS_CRT,
                sluice_net::Part::Key => TLS_KEY,
            };
            bad(format!("{k}: {why}"))
        })?;
        Ok(Certificate {
            cert_file: self.file(ns, name, TLS_CRT, crt, files),
            key_file: self.file(ns, name, TLS_KEY, pem_key, files),
            ocsp_file: None,
            default: false,
        })
    }

    /// The `ca.crt` of each `(kind, name)` (kind `Secret` or `ConfigMap`), in one
    /// PEM bundle file. Reasons are Gateway API's `InvalidCACertificateRef`.
    pub(crate) fn ca_bundle(
        &self,
        ns: &str,
        refs: &[(String, String)],
        files: &mut Files,
    ) -> Result<PathBuf, Problem> {
        let mut bundle = Vec::new();
        for (kind, name) in refs {
            let bad = |why: &str| {
                (
                    "InvalidCACertificateRef",
                    format!("{kind} {ns}/{name}: {why}"),
                )
            };
            let at = (ns.to_string(), name.clone());
            let pem: Option<Vec<u8>> = match kind.as_str() {
                "Secret" => {
                    let s = self.secrets.get(&at).ok_or_else(|| bad("not found"))?;
                    s.data
                        .as_ref()
                        .and_then(|d| d.get(CA_CRT))
                        .map(|b| b.0.clone())
                }
                "ConfigMap" => {
                    let m = self.maps.get(&at).ok_or_else(|| bad("not found"))?;
                    m.data
                        .as_ref()
                        .and_then(|d| d.get(CA_CRT))
                        .map(|s| s.clone().into_bytes())
                }
                _ => return Err(bad("only Secrets and ConfigMaps hold CA bundles")),
            };
            let pem = pem.ok_or_else(|| bad("has no ca.crt"))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(&format!("ca.crt is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(bad("ca.crt holds no certificate"));
            }
            bundle.extend_from_slice(&pem);
            bundle.push(b'\n');
        }
        let Some((_, first)) = refs.first() else {
            return Err(("InvalidCACertificateRef", "no CA reference".into()));
        };
        Ok(self.file(ns, first, CA_CRT, &bundle, files))
    }

    /// `<ns>.<name>.<content hash>.<key>`: names are DNS subdomains, so the path
    /// stays in the directory; the hash makes a changed Secret a new file, written
    /// whole before any config names it.
    fn file(&self, ns: &str, name: &str, k: &str, bytes: &[u8], files: &mut Files) -> PathBuf {
        let mut h = DefaultHasher::new();
        h.write(bytes);
        let path = self
            .dir
            .join(format!("{ns}.{name}.{:016x}.{k}", h.finish()));
        files
            .entry(path.clone())
            .or_insert_with(|| Arc::from(bytes));
        path
    }
}

/// What the watchers keep of a Secret: its type and the keys sluice reads. A
/// cluster's Secrets (Helm releases, tokens) would otherwise all sit in memory, and
/// `kubectl apply`'s last-applied annotation carries a second copy of each.
pub(crate) fn strip_secret(s: &mut Secret) {
    strip_meta(&mut s.metadata);
    if let Some(d) = s.data.as_mut() {
        d.retain(|k, _| k == TLS_CRT || k == TLS_KEY || k == CA_CRT);
    }
    s.string_data = None;
}

pub(crate) fn strip_config_map(m: &mut ConfigMap) {
    strip_meta(&mut m.metadata);
    if let Some(d) = m.data.as_mut() {
        d.retain(|k, _| k == CA_CRT);
    }
    m.binary_data = None;
}

fn strip_meta(m: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    m.annotations = None;
    m.labels = None;
    m.managed_fields = None;
}
