//! Gateway API (`gateway.networking.k8s.io/v1`) → routes and backends, and the
//! status a conformant controller writes. GatewayClasses naming
//! [`GATEWAY_CONTROLLER`] are ours, then their Gateways, then the HTTPRoutes whose
//! parentRefs a listener of those Gateways accepts.
//!
//! sluice's routes are not per listener: a Gateway's listeners decide which routes
//! attach and with which hostnames, but the routes are served on the listeners of
//! sluice's own config; no port of a Gateway is opened.

use crate::conditions::{condition, generation, no, patch, spec, yes};
use crate::gateway_rules::{self, Policies, Rule};
use crate::gateway_tls::{self, TlsConfig};
use crate::model::{group, is_ip, key, Report, Routes, Selector, Snapshot};
use crate::model::{StatusPatch, Translation, GATEWAY_CONTROLLER, GROUP};
use crate::secrets::Material;
use crate::services::Refs;
use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ClassSpec {
    controller_name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GatewaySpec {
    gateway_class_name: String,
    listeners: Vec<Listener>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Listener {
    name: String,
    hostname: Option<String>,
    port: i32,
    protocol: String,
    /// Only `namespaces.from` and `kinds` are read.
    allowed_routes: Value,
    tls: Option<TlsConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RouteSpec {
    parent_refs: Vec<ParentRef>,
    hostnames: Vec<String>,
    rules: Vec<Rule>,
}

/// Written back in status as the route has it.
#[derive(Deserialize, Serialize, Default, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase", default)]
struct ParentRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<i32>,
}

struct Gateway<'a> {
    obj: &'a DynamicObject,
    listeners: Vec<Listener>,
    /// Per listener, the routes (namespace, name) attached to it.
    attached: Vec<BTreeSet<(String, String)>>,
    /// Per listener, what became of its TLS (`None`: not HTTPS).
    tls: Vec<Option<gateway_tls::State>>,
}

type Gateways<'a> = BTreeMap<(String, String), Gateway<'a>>;

pub(crate) fn translate(
    snap: &Snapshot,
    refs: &Refs<'_>,
    material: &Material<'_>,
    sel: &Selector,
    out: &mut Translation,
) {
    let mut classes = BTreeSet::new();
    for c in &snap.gateway_classes {
        if spec::<ClassSpec>(c).is_ok_and(|s| s.controller_name == GATEWAY_CONTROLLER) {
            let accepted = yes("Accepted", "", generation(c));
            out.statuses
                .push(patch("GatewayClass", c, json!({"conditions": [accepted]})));
            classes.extend(c.metadata.name.clone());
        }
    }
    let mut gateways = Gateways::new();
    for g in &snap.gateways {
        let Some(s) = spec::<GatewaySpec>(g)
            .ok()
            .filter(|s| classes.contains(&s.gateway_class_name))
        else {
            continue;
        };
        let id = key(&g.metadata);
        for l in s.listeners.iter().filter(|l| from(l) == "Selector") {
            let why = format!("listener {}: allowedRoutes.namespaces.from: Selector is not supported; no route attaches to it", l.name);
            out.reports
                .push(Report::new("Gateway", &id, "UnsupportedValue", why));
        }
        let attached = vec![BTreeSet::new(); s.listeners.len()];
        let mut certificates = Vec::new();
        let tls = s
            .listeners
            .iter()
            .map(|l| {
                (l.protocol == "HTTPS").then(|| {
                    gateway_tls::resolve(
                        l.tls.as_ref(),
                        &id.0,
                        material,
                        sel.tls_listener.is_some(),
                        &mut certificates,
                        &mut out.files,
                    )
                })
            })
            .collect::<Vec<_>>();
        for (l, state) in s.listeners.iter().zip(&tls) {
            let problem = match state {
                Some(gateway_tls::State::Unresolved((reason, why))) => Some((*reason, why)),
                Some(gateway_tls::State::Refused(reason, why)) => Some((*reason, why)),
                _ => None,
            };
            if let Some((reason, why)) = problem {
                let why = format!("listener {}: {why}", l.name);
                out.reports.push(Report::new("Gateway", &id, reason, why));
            }
        }
        let (ns, name) = id.clone();
        let none = BTreeMap::new();
        out.groups.extend(group(
            "Gateway",
            ns,
            name,
            none,
            Routes::new(),
            certificates,
        ));
        gateways.insert(
            id,
            Gateway {
                obj: g,
                listeners: s.listeners,
                attached,
                tls,
            },
        );
    }
    let mut policies = Policies::new(&snap.backend_tls_policies, material, &mut out.files);
    let mut routes: Vec<&DynamicObject> = snap.http_routes.iter().map(Arc::as_ref).collect();
    // Gateway API's precedence: the oldest route wins a conflict, then by name.
    routes.sort_by_key(|r| (r.metadata.creation_timestamp.clone(), key(&r.metadata)));
    for r in routes {
        route(r, &mut gateways, refs, &mut policies, out);
    }
    for gw in gateways.values() {
        out.statuses.push(gateway_status(gw, sel));
    }
    policies.finish(out);
}

fn route(
    r: &DynamicObject,
    gateways: &mut Gateways<'_>,
    refs: &Refs<'_>,
    policies: &mut Policies<'_>,
    out: &mut Translation,
) {
    let id = key(&r.metadata);
    // The API server checks the schema: a spec that does not parse is not one.
    let Ok(mut spec) = spec::<RouteSpec>(r) else {
        return;
    };
    spec.parent_refs.sort();
    spec.parent_refs.dedup();
    let (mut parents, mut hosts, mut attached_to) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    for p in spec.parent_refs {
        let gateway_kind = p.group.as_deref().unwrap_or(GROUP) == GROUP
            && p.kind.as_deref().unwrap_or("Gateway") == "Gateway";
        let gw_key = (
            p.namespace.clone().unwrap_or_else(|| id.0.clone()),
            p.name.clone(),
        );
        let Some(gw) = gateways.get_mut(&gw_key).filter(|_| gateway_kind) else {
            continue;
        };
        let attached = attach(gw, &p, &id, &spec.hostnames);
        if let Ok(h) = &attached {
            hosts.extend(h.iter().cloned());
            attached_to.insert(gw_key);
        }
        parents.push((p, attached));
    }
    // Not ours: another controller's route, or one naming no Gateway of ours.
    if parents.is_empty() {
        return;
    }
    let rules = gateway_rules::translate(&id, &spec.rules, refs, policies);
    // Every rule dropped: the route is not accepted, so attached to no listener.
    if rules.kept == 0 && !rules.dropped.is_empty() {
        for k in &attached_to {
            for attached in gateways
                .get_mut(k)
                .into_iter()
                .flat_map(|gw| &mut gw.attached)
            {
                attached.remove(&id);
            }
        }
    }
    for (reason, message) in rules.problems.iter().chain(&rules.notes) {
        out.reports
            .push(Report::new("HTTPRoute", &id, reason, message));
    }
    for why in &rules.dropped {
        let why = format!("{why}; rule not served");
        out.reports
            .push(Report::new("HTTPRoute", &id, "UnsupportedValue", why));
    }
    let g = generation(r);
    let resolved = match rules.problems.first() {
        None => yes("ResolvedRefs", "", g),
        Some((reason, _)) => {
            let all: Vec<&str> = rules.problems.iter().map(|(_, m)| m.as_str()).collect();
            no("ResolvedRefs", reason, &all.join("; "), g)
        }
    };
    let dropped = rules.dropped.join("; ");
    let status = |(p, attached): (ParentRef, Result<_, (&str, String)>)| {
        let mut conditions = vec![match attached {
            Err((reason, why)) => no("Accepted", reason, &why, g),
            Ok(_) if rules.kept == 0 && !dropped.is_empty() => {
                no("Accepted", "UnsupportedValue", &dropped, g)
            }
            Ok(_) => yes("Accepted", "", g),
        }];
        conditions.push(resolved.clone());
        if rules.kept > 0 && !dropped.is_empty() {
            let why = format!("Dropped Rule(s): {dropped}");
            conditions.push(condition(
                "PartiallyInvalid",
                "True",
                "UnsupportedValue",
                &why,
                g,
            ));
        }
        json!({"parentRef": p, "controllerName": GATEWAY_CONTROLLER, "conditions": conditions})
    };
    let parents: Vec<Value> = parents.into_iter().map(status).collect();
    out.statuses
        .push(patch("HTTPRoute", r, json!({"parents": parents})));
    let (mut served, mut seen) = (Routes::new(), BTreeSet::new());
    for (path, headers, backend) in &rules.paths {
        // Within a route the first rule wins a host, path and headers, as Gateway
        // API says.
        for host in hosts.iter().filter(|h| seen.insert((*h, path, headers))) {
            let at = (host.clone(), path.clone(), headers.clone());
            served.insert((at.0, at.1, at.2, backend.clone()));
        }
    }
    let mut backends = rules.backends;
    backends.retain(|b, _| served.iter().any(|(_, _, _, used)| used == b));
    for gw in &attached_to {
        policies.attach(&rules.policies, gw);
    }
    out.groups
        .extend(group("HTTPRoute", id.0, id.1, backends, served, Vec::new()));
}

/// The hosts the route is served with through `gw`, or why no listener `p` names
/// takes it.
fn attach(
    gw: &mut Gateway<'_>,
    p: &ParentRef,
    (ns, name): &(String, String),
    hostnames: &[String],
) -> Result<BTreeSet<String>, (&'static str, String)> {
    let same_ns = gw.obj.metadata.namespace.as_ref() == Some(ns);
    let (mut hosts, mut why, mut named) = (BTreeSet::new(), None, false);
    for ((l, attached), tls) in gw.listeners.iter().zip(&mut gw.attached).zip(&gw.tls) {
        let section = p.section_name.as_ref().is_none_or(|s| *s == l.name);
        if !section || p.port.is_some_and(|n| n != l.port) {
            continue;
        }
        named = true;
        let refused = match from(l) {
            _ if !matches!(l.protocol.as_str(), "HTTP" | "HTTPS") => {
                Some(format!("protocol {} is not supported", l.protocol))
            }
            _ if matches!(tls, Some(gateway_tls::State::Refused(..))) => {
                Some("the listener is not accepted".into())
            }
            _ if kinds(l).0.is_empty() => Some("its allowedRoutes.kinds exclude HTTPRoute".into()),
            "All" => None,
            "Same" if same_ns => None,
            "Selector" => Some("allowedRoutes.namespaces.from: Selector is not supported".into()),
            from => Some(format!(
                "allowedRoutes.namespaces.from: {from} excludes namespace {ns}"
            )),
        };
        if let Some(m) = refused {
            why.get_or_insert(("NotAllowedByListeners", format!("listener {}: {m}", l.name)));
            continue;
        }
        let h = intersect(l.hostname.as_deref(), hostnames);
        if h.is_empty() {
            let m = format!("no hostname of the route matches listener {}", l.name);
            why.get_or_insert(("NoMatchingListenerHostname", m));
            continue;
        }
        attached.insert((ns.clone(), name.clone()));
        hosts.extend(h);
    }
    match (named, why) {
        (false, _) => Err((
            "NoMatchingParent",
            "no listener has that sectionName and port".into(),
        )),
        (true, _) if !hosts.is_empty() => Ok(hosts),
        (true, why) => Err(why.unwrap_or(("NotAllowedByListeners", String::new()))),
    }
}

fn from(l: &Listener) -> &str {
    l.allowed_routes
        .pointer("/namespaces/from")
        .and_then(Value::as_str)
        .unwrap_or("Same")
}

/// The route kinds a listener takes (`supportedKinds`), and whether it asked for
/// others sluice does not serve.
fn kinds(l: &Listener) -> (Vec<Value>, bool) {
    if !matches!(l.protocol.as_str(), "HTTP" | "HTTPS") {
        return (Vec::new(), false);
    }
    let http_route = json!({"group": GROUP, "kind": "HTTPRoute"});
    let ok = |k: &Value| {
        k["kind"] == "HTTPRoute" && k.get("group").and_then(Value::as_str).unwrap_or(GROUP) == GROUP
    };
    let asked = l.allowed_routes["kinds"]
        .as_array()
        .filter(|k| !k.is_empty());
    match asked {
        None => (vec![http_route], false),
        Some(ks) if ks.iter().any(ok) => (vec![http_route], !ks.iter().all(ok)),
        Some(_) => (Vec::new(), true),
    }
}

/// A route's hostnames narrowed to a listener's: each name both match, the more
/// specific of the two. Neither has any: `*`.
pub(crate) fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let listener = listener
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase);
    if route.is_empty() {
        return vec![listener.unwrap_or_else(|| "*".into())];
    }
    let narrow = |h: String| match &listener {
        None => Some(h),
        Some(l) if covers(l, &h) => Some(h),
        Some(l) if covers(&h, l) => Some(l.clone()),
        Some(_) => None,
    };
    let mut out: Vec<String> = route
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .filter_map(narrow)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether `w` matches every name `h` matches (`*.example.com` covers
/// `a.example.com`, `a.b.example.com` and `*.b.example.com`, not `example.com`).
fn covers(w: &str, h: &str) -> bool {
    let suffix = w.strip_prefix('*').filter(|s| s.starts_with('.'));
    w == h || w == "*" || suffix.is_some_and(|s| h.len() > s.len() && h.ends_with(s))
}

fn gateway_status(gw: &Gateway<'_>, sel: &Selector) -> StatusPatch {
    let g = generation(gw.obj);
    let listener = |((l, attached), tls): ((&Listener, &BTreeSet<_>), &Option<_>)| {
        let (supported, other_kinds) = kinds(l);
        let mut tls_refs = None;
        let (accepted, programmed) = match (l.protocol.as_str(), tls) {
            ("HTTP", _) => (yes("Accepted", "", g), yes("Programmed", "", g)),
            ("HTTPS", Some(state)) => {
                let (a, p, r) = gateway_tls::conditions(state, g);
                tls_refs = r;
                (a, p)
            }
            (p, _) => {
                let why = format!("protocol {p} is not supported; sluice serves HTTP");
                (
                    no("Accepted", "UnsupportedProtocol", &why, g),
                    no("Programmed", "Invalid", &why, g),
                )
            }
        };
        let resolved = match (other_kinds, tls_refs) {
            (true, _) => no(
                "ResolvedRefs",
                "InvalidRouteKinds",
                "sluice serves HTTPRoutes only",
                g,
            ),
            (false, Some(r)) => r,
            (false, None) => yes("ResolvedRefs", "", g),
        };
        json!({"name": l.name, "supportedKinds": supported, "attachedRoutes": attached.len(),
               "conditions": [accepted, programmed, resolved]})
    };
    let listeners: Vec<Value> = gw
        .listeners
        .iter()
        .zip(&gw.attached)
        .zip(&gw.tls)
        .map(listener)
        .collect();
    let how = "routes are served on the listeners of sluice's own config";
    let conditions = [yes("Accepted", "", g), yes("Programmed", how, g)];
    let mut status = json!({"conditions": conditions, "listeners": listeners});
    if let Some(a) = &sel.status_address {
        let ty = if is_ip(a) { "IPAddress" } else { "Hostname" };
        status["addresses"] = json!([{"type": ty, "value": a}]);
    }
    patch("Gateway", gw.obj, status)
}
