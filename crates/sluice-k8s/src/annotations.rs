//! Ingress annotations: `sluice.dev/*`, and the `haproxy.org/*` ones the seed's
//! manifests use. They become fields of the backend's JSON form, so sluice-config's
//! own parsing and validation (and its defaults) apply to them.

use crate::snippet::{self, Reuse};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const PREFIX: &str = "sluice.dev/";
pub const HAPROXY_SSL: &str = "haproxy.org/server-ssl";
pub const HAPROXY_SNIPPET: &str = "haproxy.org/backend-config-snippet";

/// The backend fields the annotations ask for, and what could not be used
/// (reported on the Ingress as Warning Events).
#[derive(Debug, Default)]
pub struct Applied {
    pub fields: Map<String, Value>,
    /// Reasons an annotation is unusable: the Ingress is skipped.
    pub errors: Vec<String>,
    /// Snippet lines and keywords ignored: the Ingress still serves.
    pub ignored: Vec<String>,
    /// CA bundles to verify the backend with, `(kind, name)`: the `ca.crt` of a
    /// Secret or ConfigMap of the Ingress's namespace (the translation resolves them).
    pub ca_refs: Vec<(String, String)>,
}

/// Reads the annotations of one Ingress.
pub fn apply(annotations: &BTreeMap<String, String>) -> Applied {
    let mut a = Applied::default();
    let mut tls: Map<String, Value> = Map::new();
    let mut use_tls = false;
    let mut sections = Sections::new();
    if let Some(v) = annotations.get(HAPROXY_SSL) {
        match v.as_str() {
            "true" => use_tls = true,
            "false" => {}
            _ => a
                .errors
                .push(format!("{HAPROXY_SSL}: {v:?} is not \"true\" or \"false\"")),
        }
    }
    if let Some(text) = annotations.get(HAPROXY_SNIPPET) {
        let s = snippet::parse(text);
        if let Some(sni) = s.sni.clone().or(s.check_sni.clone()) {
            tls.insert("sni".into(), json!(sni));
        }
        if let (Some(sni), Some(check)) = (&s.sni, &s.check_sni) {
            if sni != check {
                a.ignored.push(format!(
                    "check-sni {check}: sluice verifies the name it sends in SNI ({sni})"
                ));
            }
        }
        if s.reuse == Some(Reuse::Never) {
            sections
                .entry("pool")
                .or_default()
                .insert("max_idle_per_server".into(), json!(0));
        }
        if s.prefer_ipv6 == Some(true) {
            a.ignored
                .push("resolve-prefer ipv6: sluice uses IPv4 addresses first".into());
        }
        a.ignored.extend(s.ignored);
    }
    for (key, value) in annotations.range(PREFIX.to_string()..) {
        let Some(name) = key.strip_prefix(PREFIX) else {
            break;
        };
        let v = value.trim();
        let mut bad = |why: &str| a.errors.push(format!("{key}: {v:?} {why}"));
        match name {
            "backend-protocol" => match v {
                "http" => use_tls = false,
                "https" => use_tls = true,
                "h2" => {
                    use_tls = true;
                    a.fields.insert("protocol".into(), json!("http2"));
                }
                "h2c" => {
                    a.fields.insert("protocol".into(), json!("http2"));
                }
                _ => bad("is not http, https, h2 or h2c"),
            },
            "sni" => {
                use_tls = true;
                tls.insert("sni".into(), json!(v));
            }
            // A CA bundle on sluice's own file system (a mounted Secret or ConfigMap).
            "ca-file" => {
                use_tls = true;
                tls.insert("ca_file".into(), json!(v));
            }
            "ca-secret" | "ca-configmap" => {
                use_tls = true;
                let kind = if name == "ca-secret" {
                    "Secret"
                } else {
                    "ConfigMap"
                };
                a.ca_refs.push((kind.into(), v.into()));
            }
            "verify" => match v {
                "true" | "false" => {
                    tls.insert("verify".into(), json!(v == "true"));
                }
                _ => bad("is not \"true\" or \"false\""),
            },
            "maxconn" => number(&mut sections, "limits", "maxconn_per_server", v, &mut bad),
            "backend-maxconn" => number(&mut sections, "limits", "maxconn", v, &mut bad),
            "max-queue" => number(&mut sections, "limits", "max_queue", v, &mut bad),
            "pool-max-idle" => number(&mut sections, "pool", "max_idle_per_server", v, &mut bad),
            "pool-min-idle" => number(&mut sections, "pool", "min_idle_per_server", v, &mut bad),
            "connect-timeout" => text(&mut sections, "timeouts", "connect", v),
            "response-timeout" => text(&mut sections, "timeouts", "response", v),
            "queue-timeout" => text(&mut sections, "timeouts", "queue", v),
            "balance" => {
                a.fields.insert("balance".into(), json!(v));
            }
            "source-addresses" => {
                let list: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                a.fields.insert("source_addresses".into(), json!(list));
            }
            _ => a
                .errors
                .push(format!("{key}: unknown sluice.dev annotation")),
        }
    }
    for (name, fields) in sections {
        a.fields.insert(name.into(), Value::Object(fields));
    }
    if use_tls || !tls.is_empty() {
        a.fields.insert("tls".into(), Value::Object(tls));
    }
    a
}

type Sections = BTreeMap<&'static str, Map<String, Value>>;

fn number(
    sections: &mut Sections,
    at: &'static str,
    field: &str,
    v: &str,
    bad: &mut impl FnMut(&str),
) {
    match v.parse::<u64>() {
        Ok(n) => {
            sections
                .entry(at)
                .or_default()
                .insert(field.into(), json!(n));
        }
        Err(_) => bad("is not a whole number"),
    }
}

fn text(sections: &mut Sections, at: &'static str, field: &str, v: &str) {
    sections
        .entry(at)
        .or_default()
        .insert(field.into(), json!(v));
}
