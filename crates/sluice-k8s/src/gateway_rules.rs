//! HTTPRoute rules → backends, and the BackendTLSPolicies that turn on their TLS.
//! sluice routes match a host and a path prefix; a rule's backendRefs become one
//! backend whose server weights give each ref its share. A rule asking for more
//! (header, query or method matches, filters) is dropped and reported, not served
//! as something it did not say.

use crate::conditions::{generation, no, patch, spec, yes};
use crate::model::{key, Headers, Report, Translation, GATEWAY_CONTROLLER, GROUP};
use crate::secrets::{Files, Material, Problem};
use crate::services::{backend, Refs, Resolved};
use k8s_openapi::api::networking::v1::ServiceBackendPort;
use kube::api::DynamicObject;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sluice_config::Backend;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Rule {
    matches: Vec<Match>,
    filters: Vec<Value>,
    backend_refs: Vec<BackendRef>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Match {
    path: Option<PathMatch>,
    headers: Vec<HeaderMatch>,
    query_params: Vec<Value>,
    method: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HeaderMatch {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: String,
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PathMatch {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BackendRef {
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
    port: Option<i32>,
    weight: Option<i64>,
    filters: Vec<Value>,
}

/// What an HTTPRoute's rules make.
#[derive(Default)]
pub(crate) struct Rules {
    /// (path prefix, header conditions, backend name), in rule order.
    pub paths: Vec<(String, Headers, String)>,
    pub backends: BTreeMap<String, Backend>,
    /// Why a backendRef does not resolve: a ResolvedRefs reason and a message.
    pub problems: Vec<(&'static str, String)>,
    /// Rules dropped for asking what sluice cannot do, and why.
    pub dropped: Vec<String>,
    pub kept: usize,
    /// Served, but not quite as written: a report's reason and message.
    pub notes: Vec<(&'static str, String)>,
    /// The BackendTLSPolicies consulted, each with whether it lost a conflict.
    pub policies: BTreeSet<(usize, bool)>,
}

pub(crate) fn translate(
    (ns, route): &(String, String),
    rules: &[Rule],
    refs: &Refs<'_>,
    policies: &Policies<'_>,
) -> Rules {
    let mut out = Rules::default();
    for (i, rule) in rules.iter().enumerate() {
        let paths = match paths(rule) {
            Ok(p) => p,
            Err(why) => {
                out.dropped.push(format!("rule {i}: {why}"));
                continue;
            }
        };
        let (mut names, mut shares) = (Vec::new(), Vec::new());
        let mut tls: Vec<Option<Map<String, Value>>> = Vec::new();
        let mut used = BTreeSet::new();
        for b in &rule.backend_refs {
            let r = match resolve(ns, b, refs) {
                Ok(r) => r,
                Err(p) => {
                    out.problems.push(p);
                    continue;
                }
            };
            let weight = b.weight.unwrap_or(1);
            if weight == 0 {
                continue;
            }
            let found = policies.lookup(ns, &b.name, r.port_name.as_deref());
            if let Some((first, rest)) = found.and_then(<[usize]>::split_first) {
                used.insert((*first, false));
                used.extend(rest.iter().map(|&l| (l, true)));
            }
            let fields = found.and_then(|f| f.first()).map(|&p| policies.fields(p));
            if !tls.contains(&fields) {
                tls.push(fields);
            }
            names.push(format!("{}:{}", b.name, r.port));
            shares.push((weight.unsigned_abs(), r.servers));
        }
        if tls.len() > 1 {
            let why = "its backendRefs have different BackendTLSPolicies, and they would share one sluice backend";
            out.dropped.push(format!("rule {i}: {why}"));
            continue;
        }
        let mut built = None;
        if let Some(fields) = tls.pop() {
            let name = format!("k8s/{ns}/httproute/{route}/{i}/{}", names.join("+"));
            let weights = server_weights(&shares);
            let mut fields = fields.unwrap_or_default();
            if weights.values().any(|w| *w != 1) {
                fields.insert("weights".into(), json!(weights));
            }
            match backend(name, weights.into_keys().collect(), &fields) {
                Ok(b) => built = Some(b),
                Err(e) => {
                    out.dropped.push(format!("rule {i}: {e}"));
                    continue;
                }
            }
        }
        out.kept += 1;
        for (p, exact, _) in &paths {
            if *exact {
                let why = format!("rule {i}: path Exact {p} is served as a prefix (sluice routes match path prefixes)");
                out.notes.push(("ExactPathAsPrefix", why));
            }
        }
        // No backend (none resolved, or every weight 0): the rule serves nothing.
        let Some(b) = built else { continue };
        out.paths
            .extend(paths.into_iter().map(|(p, _, h)| (p, h, b.name.clone())));
        out.backends.insert(b.name.clone(), b);
        out.policies.extend(used);
    }
    out
}

/// The servers of a rule's backendRefs with weights that give each ref its share:
/// a ref of weight `w` with `n` servers gives each of them `w / n`, scaled to whole
/// numbers (by the servers counts' least common multiple, then reduced). Past 1000,
/// sluice's largest weight, the shares are rounded, each at least 1.
fn server_weights(shares: &[(u64, Vec<String>)]) -> BTreeMap<String, u64> {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let lcm = shares
        .iter()
        .map(|(_, s)| s.len().max(1) as u64)
        .fold(1u64, |l, n| (l / gcd(l, n)).saturating_mul(n));
    let mut weights: BTreeMap<String, u64> = BTreeMap::new();
    for (w, servers) in shares {
        let each = w.saturating_mul(lcm) / servers.len().max(1) as u64;
        for s in servers {
            *weights.entry(s.clone()).or_default() += each;
        }
    }
    let common = weights.values().fold(0, |g, w| gcd(g, *w)).max(1);
    let max = weights.values().max().copied().unwrap_or(1) / common;
    for w in weights.values_mut() {
        *w /= common;
        if max > 1000 {
            let scaled = u128::from(*w) * 1000 / u128::from(max);
            *w = u64::try_from(scaled).unwrap_or(1000).max(1);
        }
    }
    weights
}

/// A rule's matches: each path prefix, whether it was an Exact match, and its
/// header conditions.
fn paths(rule: &Rule) -> Result<Vec<(String, bool, Headers)>, String> {
    if !rule.filters.is_empty() || rule.backend_refs.iter().any(|b| !b.filters.is_empty()) {
        return Err("filters are not supported".into());
    }
    if rule.matches.is_empty() {
        return Ok(vec![("/".into(), false, Headers::new())]);
    }
    let path = |m: &Match| {
        let mut headers = Headers::new();
        for h in &m.headers {
            if h.kind.as_deref().unwrap_or("Exact") != "Exact" {
                return Err("only Exact header matches are supported".to_string());
            }
            // Of two entries naming one header, the first counts (as the spec says).
            headers
                .entry(h.name.to_ascii_lowercase())
                .or_insert_with(|| h.value.clone());
        }
        let unsupported = [
            (!m.query_params.is_empty(), "query parameter"),
            (m.method.is_some(), "method"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(asked, _)| *asked) {
            return Err(format!("{what} matches are not supported"));
        }
        let p = m.path.as_ref();
        let value = p
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| "/".into());
        if !value.starts_with('/') {
            return Err(format!("path {value:?} does not start with /"));
        }
        match p.and_then(|p| p.kind.as_deref()).unwrap_or("PathPrefix") {
            "PathPrefix" => Ok((value, false, headers)),
            "Exact" => Ok((value, true, headers)),
            other => Err(format!("path match type {other} is not supported")),
        }
    };
    rule.matches.iter().map(path).collect()
}

fn resolve(ns: &str, b: &BackendRef, refs: &Refs<'_>) -> Result<Resolved, (&'static str, String)> {
    let name = &b.name;
    let core = b.group.as_deref().is_none_or(str::is_empty);
    if !core || b.kind.as_deref().is_some_and(|k| k != "Service") {
        let why = format!("backendRef {name}: only Services are supported");
        return Err(("InvalidKind", why));
    }
    if let Some(other) = b.namespace.as_deref().filter(|n| *n != ns) {
        let why = format!("backendRef to Service {other}/{name}: ReferenceGrants are not supported, only Services in the route's namespace");
        return Err(("RefNotPermitted", why));
    }
    let Some(port) = b.port else {
        let why = format!("backendRef to Service {name} has no port");
        return Err(("BackendNotFound", why));
    };
    let port = ServiceBackendPort {
        number: Some(port),
        name: None,
    };
    refs.service(ns, name, Some(&port))
        .map_err(|(_, why)| ("BackendNotFound", why))
}

/// A policy's `caCertificateRefs` as `(kind, name)`; `None`: it has none.
fn ca_refs(v: &Validation) -> Option<Result<Vec<(String, String)>, Problem>> {
    if v.ca_certificate_refs.is_empty() {
        return None;
    }
    let refs = v.ca_certificate_refs.iter().map(|r| {
        let (group, kind) = (r["group"].as_str().unwrap_or(""), r["kind"].as_str().unwrap_or(""));
        let name = r["name"].as_str().unwrap_or("").to_string();
        match (group, kind) {
            ("", "ConfigMap" | "Secret") => Ok((kind.to_string(), name)),
            _ => Err(("InvalidKind", format!("caCertificateRef {group}/{kind} {name}: only ConfigMaps and Secrets are supported"))),
        }
    });
    Some(refs.collect())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PolicySpec {
    target_refs: Vec<TargetRef>,
    validation: Validation,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TargetRef {
    group: String,
    kind: String,
    name: String,
    section_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Validation {
    hostname: Option<String>,
    well_known_ca_certificates: Option<String>,
    ca_certificate_refs: Vec<Value>,
    subject_alt_names: Vec<Value>,
}

/// BackendTLSPolicies, and which served routes' Gateways use each.
pub(crate) struct Policies<'a> {
    list: Vec<(&'a DynamicObject, PolicySpec)>,
    /// Per policy, its `caCertificateRefs` as one bundle file (`None`: it has none).
    cas: Vec<Option<Result<std::path::PathBuf, Problem>>>,
    /// (namespace, Service, sectionName) → policies, the one that applies first.
    by_target: BTreeMap<(String, String, Option<String>), Vec<usize>>,
    /// Policy → its Gateways, and whether it lost every conflict it was in.
    used: BTreeMap<usize, (BTreeSet<(String, String)>, bool)>,
}

impl<'a> Policies<'a> {
    pub(crate) fn new(
        objects: &'a [Arc<DynamicObject>],
        material: &Material<'_>,
        files: &mut Files,
    ) -> Self {
        let mut list: Vec<_> = objects
            .iter()
            .filter_map(|o| Some((o.as_ref(), spec::<PolicySpec>(o).ok()?)))
            .collect();
        // Gateway API's precedence among conflicting policies: the oldest, then by name.
        list.sort_by_key(|(o, _)| (o.metadata.creation_timestamp.clone(), key(&o.metadata)));
        let cas = list
            .iter()
            .map(|(o, s)| {
                let ns = o.metadata.namespace.as_deref().unwrap_or_default();
                ca_refs(&s.validation)
                    .map(|refs| refs.and_then(|r| material.ca_bundle(ns, &r, files)))
            })
            .collect();
        let mut by_target: BTreeMap<_, Vec<usize>> = BTreeMap::new();
        for (i, (o, s)) in list.iter().enumerate() {
            let ns = o.metadata.namespace.clone().unwrap_or_default();
            for t in s
                .target_refs
                .iter()
                .filter(|t| t.group.is_empty() && t.kind == "Service")
            {
                let at = by_target.entry((ns.clone(), t.name.clone(), t.section_name.clone()));
                let v = at.or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        Self {
            list,
            cas,
            by_target,
            used: BTreeMap::new(),
        }
    }

    /// The policies for one Service port, the one that applies first: those naming
    /// the port (`sectionName`) take precedence over those for the whole Service.
    fn lookup(&self, ns: &str, svc: &str, port: Option<&str>) -> Option<&[usize]> {
        let at = |section: Option<&str>| {
            let k = (ns.to_string(), svc.to_string(), section.map(str::to_string));
            self.by_target.get(&k).map(Vec::as_slice)
        };
        port.and_then(|p| at(Some(p))).or_else(|| at(None))
    }

    /// The backend fields of a policy: TLS with SNI and verification, against its
    /// CA bundle, else the system roots (also when its CA refs do not resolve: a
    /// private CA's certificate then fails verification, closed).
    fn fields(&self, i: usize) -> Map<String, Value> {
        let mut tls = Map::new();
        if let Some(h) = self
            .list
            .get(i)
            .and_then(|(_, s)| s.validation.hostname.as_ref())
        {
            tls.insert("sni".into(), json!(h));
        }
        tls.insert("verify".into(), json!(true));
        if let Some(Some(Ok(path))) = self.cas.get(i) {
            tls.insert("ca_file".into(), json!(path));
        }
        Map::from_iter([("tls".to_string(), Value::Object(tls))])
    }

    pub(crate) fn attach(&mut self, used: &BTreeSet<(usize, bool)>, gateway: &(String, String)) {
        for &(i, lost) in used {
            let e = self
                .used
                .entry(i)
                .or_insert_with(|| (BTreeSet::new(), true));
            e.0.insert(gateway.clone());
            e.1 &= lost;
        }
    }

    /// Status (and reports) for the policies served routes use.
    pub(crate) fn finish(self, out: &mut Translation) {
        for (i, (gateways, lost)) in self.used {
            let Some((o, s)) = self.list.get(i) else {
                continue;
            };
            let (g, v) = (generation(o), &s.validation);
            let id = key(&o.metadata);
            let report = |reason, why| Report::new("BackendTLSPolicy", &id, reason, why);
            let conditions = if lost {
                let why = "another BackendTLSPolicy, older or first by name, targets the same Service port";
                vec![no("Accepted", "Conflicted", why, g)]
            } else if let Some(Some(Err((reason, why)))) = self.cas.get(i) {
                // Fails closed: TLS stays on and verified, against roots that will
                // not know a private CA.
                let why = format!(
                    "{why}: the backend's certificate is verified against the system roots"
                );
                out.reports.push(report(reason, why.clone()));
                vec![
                    no("Accepted", "NoValidCACertificate", &why, g),
                    no("ResolvedRefs", reason, &why, g),
                ]
            } else {
                vec![yes("Accepted", "", g), yes("ResolvedRefs", "", g)]
            };
            if !v.subject_alt_names.is_empty() {
                let why = "validation.subjectAltNames are not supported: the certificate is verified against validation.hostname";
                out.reports
                    .push(report("UnsupportedValue", why.to_string()));
            }
            let ancestors: Vec<Value> = gateways
                .iter()
                .map(|(namespace, name)| {
                    let gateway = json!({"group": GROUP, "kind": "Gateway", "namespace": namespace, "name": name});
                    json!({"ancestorRef": gateway, "controllerName": GATEWAY_CONTROLLER, "conditions": conditions})
                })
                .collect();
            out.statuses.push(patch(
                "BackendTLSPolicy",
                o,
                json!({"ancestors": ancestors}),
            ));
        }
    }
}
