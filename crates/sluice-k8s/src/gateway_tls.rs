//! A Gateway's HTTPS listeners: their `tls.certificateRefs` become certificates of
//! `sources.kubernetes.tls_listener` (picked by SNI like the file's own), and their
//! conditions say whether that happened and, if not, why.

use crate::conditions::{no, yes};
use crate::secrets::{Files, Material, Problem};
use serde::Deserialize;
use serde_json::Value;
use sluice_config::Certificate;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct TlsConfig {
    mode: Option<String>,
    certificate_refs: Vec<CertificateRef>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CertificateRef {
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
}

/// What became of one HTTPS listener's TLS.
pub(crate) enum State {
    /// Its certificates are served.
    Served,
    /// `Accepted=False` with this reason: it asks for what sluice does not do.
    Refused(&'static str, String),
    /// Accepted, but not programmed: a reference that does not resolve (the
    /// `ResolvedRefs` reason), or sluice has no TLS listener to serve it on.
    Unresolved(Problem),
    NoTlsListener,
}

/// Resolves the listener's certificates into `certs` (and their files).
pub(crate) fn resolve(
    tls: Option<&TlsConfig>,
    gateway_ns: &str,
    material: &Material<'_>,
    tls_listener: bool,
    certs: &mut Vec<Certificate>,
    files: &mut Files,
) -> State {
    let Some(tls) = tls else {
        return State::Unresolved((
            "InvalidCertificateRef",
            "an HTTPS listener needs tls.certificateRefs".into(),
        ));
    };
    if tls.mode.as_deref().unwrap_or("Terminate") != "Terminate" {
        let why = "tls.mode Passthrough is not supported: sluice terminates TLS";
        return State::Refused("UnsupportedValue", why.into());
    }
    if !tls_listener {
        return State::NoTlsListener;
    }
    if tls.certificate_refs.is_empty() {
        let why = "tls.certificateRefs is empty".to_string();
        return State::Unresolved(("InvalidCertificateRef", why));
    }
    let mut found = Vec::new();
    for r in &tls.certificate_refs {
        let core = r.group.as_deref().is_none_or(str::is_empty);
        if !core || r.kind.as_deref().is_some_and(|k| k != "Secret") {
            let why = format!("certificateRef {}: only Secrets are supported", r.name);
            return State::Unresolved(("InvalidCertificateRef", why));
        }
        if let Some(other) = r.namespace.as_deref().filter(|n| *n != gateway_ns) {
            let why = format!("certificateRef to Secret {other}/{}: ReferenceGrants are not supported, only Secrets in the Gateway's namespace", r.name);
            return State::Unresolved(("RefNotPermitted", why));
        }
        match material.certificate(gateway_ns, &r.name, files) {
            Ok(c) => found.push(c),
            Err(p) => return State::Unresolved(p),
        }
    }
    certs.extend(found);
    State::Served
}

/// The listener's `Accepted`, `Programmed` and (when TLS decides it) `ResolvedRefs`.
pub(crate) fn conditions(state: &State, g: i64) -> (Value, Value, Option<Value>) {
    match state {
        State::Served => (yes("Accepted", "", g), yes("Programmed", "", g), None),
        State::Refused(reason, why) => (
            no("Accepted", reason, why, g),
            no("Programmed", "Invalid", why, g),
            None,
        ),
        State::Unresolved((reason, why)) => (
            yes("Accepted", "", g),
            no("Programmed", "Invalid", why, g),
            Some(no("ResolvedRefs", reason, why, g)),
        ),
        State::NoTlsListener => {
            let why = "sluice's sources.kubernetes.tls_listener is not set: no listener serves these certificates";
            (
                yes("Accepted", "", g),
                no("Programmed", "Invalid", why, g),
                None,
            )
        }
    }
}
