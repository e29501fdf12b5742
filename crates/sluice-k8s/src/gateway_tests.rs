//! Gateway API objects → routes, backends and status; deterministic, and what
//! sluice cannot serve is reported rather than served differently.

use crate::gateway::intersect;
use crate::model::{Selector, Snapshot, Translation, GATEWAY_CONTROLLER};
use crate::translate::translate;
use kube::api::DynamicObject;
use serde_json::{json, Value};
use std::sync::Arc;

fn obj(kind: &str, ns: Option<&str>, name: &str, spec: Value) -> Arc<DynamicObject> {
    let meta = json!({"name": name, "namespace": ns, "generation": 3});
    let v = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind, "metadata": meta, "spec": spec});
    Arc::new(serde_json::from_value(v).unwrap())
}

fn svc(ns: &str, name: &str, external: &str) -> Arc<k8s_openapi::api::core::v1::Service> {
    let spec = json!({"type": "ExternalName", "externalName": external, "ports": [{"name": "https", "port": 443}]});
    let v = json!({"metadata": {"name": name, "namespace": ns}, "spec": spec});
    Arc::new(serde_json::from_value(v).unwrap())
}

fn listener(name: &str, protocol: &str, hostname: Option<&str>, from: &str) -> Value {
    let allowed = json!({"namespaces": {"from": from}});
    json!({"name": name, "port": 80, "protocol": protocol, "hostname": hostname, "allowedRoutes": allowed})
}

fn gateway(listeners: &[Value]) -> Arc<DynamicObject> {
    let spec = json!({"gatewayClassName": "sluice", "listeners": listeners});
    obj("Gateway", Some("web"), "gw", spec)
}

fn route(ns: &str, name: &str, hostnames: Value, rules: Value) -> Arc<DynamicObject> {
    let parent = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": "web"});
    let spec = json!({"parentRefs": [parent], "hostnames": hostnames, "rules": rules});
    obj("HTTPRoute", Some(ns), name, spec)
}

fn to(service: &str) -> Value {
    json!([{"backendRefs": [{"name": service, "port": 443}]}])
}

fn policy(ns: &str, name: &str, service: &str, validation: Value) -> Arc<DynamicObject> {
    let target = json!({"group": "", "kind": "Service", "name": service, "sectionName": "https"});
    let spec = json!({"targetRefs": [target], "validation": validation});
    obj("BackendTLSPolicy", Some(ns), name, spec)
}

/// Our class, a Gateway `web/gw` with an HTTP listener for `*.example.com`, and a
/// route `web/r` for two of its hosts to the ExternalName Service `web/api`.
fn snapshot() -> Snapshot {
    let mut s = Snapshot::default();
    let ours = json!({"controllerName": GATEWAY_CONTROLLER});
    s.gateway_classes
        .push(obj("GatewayClass", None, "sluice", ours));
    s.gateways.push(gateway(&[listener(
        "http",
        "HTTP",
        Some("*.example.com"),
        "Same",
    )]));
    s.services.push(svc("web", "api", "api.internal"));
    let hosts = json!(["A.example.com", "b.example.com"]);
    s.http_routes.push(route("web", "r", hosts, to("api")));
    s
}

fn sel() -> Selector {
    let status_address = Some("203.0.113.7".into());
    Selector {
        class: "sluice".into(),
        status_address,
        tls_listener: Some("https".into()),
        secrets_dir: "/run/sluice/kubernetes".into(),
    }
}

fn status<'a>(t: &'a Translation, kind: &str, name: &str) -> &'a Value {
    let s = t.statuses.iter().find(|s| s.kind == kind && s.name == name);
    &s.unwrap_or_else(|| panic!("no {kind} {name}: {:?}", t.statuses))
        .status
}

/// `Type=Status/Reason` of each condition.
fn conds(conditions: &Value) -> Vec<String> {
    let c = conditions.as_array().unwrap().iter();
    c.map(|c| format!("{}={}/{}", c["type"], c["status"], c["reason"]).replace('"', ""))
        .collect()
}

/// The conditions of the first (only) parent of an HTTPRoute.
fn parent(t: &Translation, route: &str) -> Vec<String> {
    conds(&status(t, "HTTPRoute", route)["parents"][0]["conditions"])
}

fn hosts(t: &Translation) -> Vec<(&str, &str)> {
    let r = t.routes();
    r.into_iter()
        .map(|r| (r.host.as_str(), r.path_prefix.as_str()))
        .collect()
}

const OK: [&str; 2] = ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"];

#[test]
fn a_route_to_an_external_name_service_gets_one_route_per_hostname() {
    let t = translate(&snapshot(), &sel());
    assert!(t.reports.is_empty(), "{:?}", t.reports);
    assert_eq!(hosts(&t), [("a.example.com", "/"), ("b.example.com", "/")]);
    let g = &t.groups[0];
    assert_eq!(
        (g.kind, g.namespace.as_str(), g.name.as_str()),
        ("HTTPRoute", "web", "r")
    );
    let b = &g.backends[0];
    assert_eq!(b.name, "k8s/web/httproute/r/0/api:443");
    assert!(t.routes().iter().all(|r| r.backend == b.name));
    let servers: Vec<String> = b.servers.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        (servers, &b.tls),
        (vec!["api.internal:443".to_string()], &None)
    );
}

#[test]
fn statuses_are_there_for_class_gateway_and_route() {
    let t = translate(&snapshot(), &sel());
    let kinds: Vec<&str> = t.statuses.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["Gateway", "GatewayClass", "HTTPRoute"],
        "sorted, nothing else"
    );
    let class = status(&t, "GatewayClass", "sluice");
    assert_eq!(conds(&class["conditions"]), ["Accepted=True/Accepted"]);
    let gw = status(&t, "Gateway", "gw");
    let ok = ["Accepted=True/Accepted", "Programmed=True/Programmed"];
    assert_eq!(conds(&gw["conditions"]), ok);
    assert_eq!(
        gw["addresses"],
        json!([{"type": "IPAddress", "value": "203.0.113.7"}])
    );
    let l = &gw["listeners"][0];
    assert_eq!(
        (&l["name"], &l["attachedRoutes"]),
        (&json!("http"), &json!(1))
    );
    let kinds = json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]);
    assert_eq!(l["supportedKinds"], kinds);
    let ok = [
        "Accepted=True/Accepted",
        "Programmed=True/Programmed",
        "ResolvedRefs=True/ResolvedRefs",
    ];
    assert_eq!(conds(&l["conditions"]), ok);
    let p = &status(&t, "HTTPRoute", "r")["parents"][0];
    assert_eq!(
        (&p["controllerName"], &p["parentRef"]["name"]),
        (&json!(GATEWAY_CONTROLLER), &json!("gw"))
    );
    assert_eq!(parent(&t, "r"), OK);
    let c = &p["conditions"][0];
    let time = (&c["observedGeneration"], &c["lastTransitionTime"]);
    assert_eq!(time, (&json!(3), &json!("1970-01-01T00:00:00Z")));
}

#[test]
fn a_backend_tls_policy_turns_on_tls_with_sni_and_verification() {
    let mut s = snapshot();
    let validation = json!({"hostname": "api.internal", "wellKnownCACertificates": "System"});
    s.backend_tls_policies
        .push(policy("web", "p", "api", validation));
    let t = translate(&s, &sel());
    let tls = t.backends()[0].tls.clone().unwrap();
    assert_eq!(
        (tls.sni.as_deref(), tls.verify, tls.ca_file),
        (Some("api.internal"), true, None)
    );
    let ancestor = &status(&t, "BackendTLSPolicy", "p")["ancestors"][0];
    assert_eq!(ancestor["ancestorRef"]["name"], "gw");
    assert_eq!(conds(&ancestor["conditions"]), OK);
    assert!(t.reports.is_empty(), "{:?}", t.reports);
    // A CA ConfigMap that is not there: still TLS, verified against the system
    // roots (a private CA's certificate then fails, closed), and said so.
    let ca = json!([{"group": "", "kind": "ConfigMap", "name": "ca"}]);
    let validation = json!({"hostname": "api.internal", "caCertificateRefs": ca});
    s.backend_tls_policies = vec![policy("web", "p", "api", validation)];
    let t = translate(&s, &sel());
    assert!(t.backends()[0].tls.as_ref().is_some_and(|t| t.verify));
    let ancestor = &status(&t, "BackendTLSPolicy", "p")["ancestors"][0];
    let refused = [
        "Accepted=False/NoValidCACertificate",
        "ResolvedRefs=False/InvalidCACertificateRef",
    ];
    assert_eq!(conds(&ancestor["conditions"]), refused);
    assert_eq!(t.reports[0].reason, "InvalidCACertificateRef");
    // Once it is, its ca.crt is the backend's CA bundle.
    let (pem, _) = leaf("Private CA");
    let cm = json!({"metadata": {"name": "ca", "namespace": "web"}, "data": {"ca.crt": pem}});
    s.config_maps = vec![Arc::new(serde_json::from_value(cm).unwrap())];
    let t = translate(&s, &sel());
    let ca_file = t.backends()[0].tls.as_ref().and_then(|t| t.ca_file.clone());
    let ca_file = ca_file.unwrap();
    assert!(t.files[&ca_file].starts_with(pem.as_bytes()));
    let ancestor = &status(&t, "BackendTLSPolicy", "p")["ancestors"][0];
    assert_eq!(conds(&ancestor["conditions"]), OK);
}

fn leaf(name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

#[test]
fn https_listener_certificates_are_served_and_bad_refs_are_not_programmed() {
    let (crt, key) = leaf("*.example.com");
    let secret = json!({"metadata": {"name": "wild", "namespace": "web"}, "type": "kubernetes.io/tls",
                        "stringData": {}, "data": {}});
    let mut secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret).unwrap();
    secret.data = Some(
        [("tls.crt", &crt), ("tls.key", &key)]
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    k8s_openapi::ByteString(v.as_bytes().to_vec()),
                )
            })
            .collect(),
    );
    let https = |name: &str, refs: Value| {
        let mut l = listener(name, "HTTPS", Some("*.example.com"), "Same");
        l["tls"] = json!({"certificateRefs": refs});
        l
    };
    let mut s = snapshot();
    s.secrets.push(Arc::new(secret));
    s.gateways = vec![gateway(&[
        https("ok", json!([{"name": "wild"}])),
        https("missing", json!([{"name": "nope"}])),
        https("elsewhere", json!([{"name": "wild", "namespace": "other"}])),
    ])];
    let t = translate(&s, &sel());
    let g = t.groups.iter().find(|g| g.kind == "Gateway").unwrap();
    assert_eq!(g.certificates.len(), 1, "one listener's Secret, once");
    assert_eq!(
        t.files[&g.certificates[0].key_file].as_ref(),
        key.as_bytes()
    );
    let l = status(&t, "Gateway", "gw")["listeners"].as_array().unwrap();
    let c = |i: usize| conds(&l[i]["conditions"]);
    assert_eq!(
        c(0),
        [
            "Accepted=True/Accepted",
            "Programmed=True/Programmed",
            "ResolvedRefs=True/ResolvedRefs"
        ]
    );
    assert_eq!(c(1)[1], "Programmed=False/Invalid");
    assert_eq!(c(1)[2], "ResolvedRefs=False/InvalidCertificateRef");
    assert_eq!(c(2)[2], "ResolvedRefs=False/RefNotPermitted");
    assert!(t
        .reports
        .iter()
        .any(|r| r.kind == "Gateway" && r.message.contains("listener missing")));
    // Without sluice's tls_listener: accepted, not programmed, nothing served.
    let mut no_listener = sel();
    no_listener.tls_listener = None;
    let t = translate(&s, &no_listener);
    assert!(t.groups.iter().all(|g| g.certificates.is_empty()));
    let l = status(&t, "Gateway", "gw")["listeners"].as_array().unwrap();
    assert_eq!(conds(&l[0]["conditions"])[1], "Programmed=False/Invalid");
}

#[test]
fn the_oldest_of_two_conflicting_policies_applies() {
    let mut s = snapshot();
    s.backend_tls_policies
        .push(policy("web", "b", "api", json!({"hostname": "b.internal"})));
    s.backend_tls_policies
        .push(policy("web", "a", "api", json!({"hostname": "a.internal"})));
    let t = translate(&s, &sel());
    let tls = t.backends()[0].tls.clone().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("a.internal"), "same age: by name");
    let lost = &status(&t, "BackendTLSPolicy", "b")["ancestors"][0]["conditions"];
    assert_eq!(conds(lost), ["Accepted=False/Conflicted"]);
}

#[test]
fn another_controllers_class_is_ignored() {
    let mut s = snapshot();
    let theirs = json!({"controllerName": "example.com/other"});
    s.gateway_classes = vec![obj("GatewayClass", None, "sluice", theirs)];
    assert_eq!(translate(&s, &sel()), Translation::default());
}

#[test]
fn a_backend_ref_to_a_missing_service_is_backend_not_found() {
    let mut s = snapshot();
    s.http_routes = vec![route("web", "r", json!(["a.example.com"]), to("nope"))];
    let t = translate(&s, &sel());
    assert!(t.routes().is_empty(), "{:?}", t.routes());
    assert_eq!(
        parent(&t, "r"),
        [
            "Accepted=True/Accepted",
            "ResolvedRefs=False/BackendNotFound"
        ]
    );
    let r = &t.reports[0];
    assert_eq!(
        (r.kind, r.name.as_str(), r.reason),
        ("HTTPRoute", "r", "BackendNotFound")
    );
}

#[test]
fn a_backend_ref_to_another_namespace_is_not_permitted() {
    let mut s = snapshot();
    let rules = json!([{"backendRefs": [{"name": "api", "namespace": "other", "port": 443}]}]);
    s.http_routes = vec![route("web", "r", json!([]), rules)];
    let t = translate(&s, &sel());
    assert!(t.routes().is_empty());
    assert_eq!(parent(&t, "r")[1], "ResolvedRefs=False/RefNotPermitted");
}

#[test]
fn listener_hostnames_narrow_route_hostnames() {
    let route_hosts = [
        "X.example.com",
        "*.foo.example.com",
        "example.com",
        "other.org",
    ]
    .map(String::from);
    let narrowed = intersect(Some("*.example.com"), &route_hosts);
    assert_eq!(narrowed, ["*.foo.example.com", "x.example.com"]);
    assert_eq!(
        intersect(Some("a.example.com"), &["*.example.com".into()]),
        ["a.example.com"]
    );
    assert_eq!(intersect(Some("a.example.com"), &[]), ["a.example.com"]);
    assert_eq!(intersect(None, &[]), ["*"]);
    assert!(intersect(Some("*.example.com"), &["example.com".into()]).is_empty());
    let mut s = snapshot();
    s.http_routes
        .push(route("web", "none", json!(["other.org"]), to("api")));
    s.http_routes
        .push(route("web", "all", json!([]), to("api")));
    let t = translate(&s, &sel());
    assert_eq!(
        parent(&t, "none")[0],
        "Accepted=False/NoMatchingListenerHostname"
    );
    let all = t
        .groups
        .iter()
        .filter(|g| g.name == "all")
        .flat_map(|g| &g.routes);
    assert_eq!(
        all.map(|r| r.host.as_str()).collect::<Vec<_>>(),
        ["*.example.com"]
    );
    assert_eq!(
        status(&t, "Gateway", "gw")["listeners"][0]["attachedRoutes"],
        2
    );
}

#[test]
fn listeners_decide_which_routes_attach() {
    let mut s = snapshot();
    let http = listener("http", "HTTP", None, "Same");
    s.gateways = vec![gateway(&[
        http,
        listener("tls", "HTTPS", None, "Same"),
        listener("tcp", "TCP", None, "All"),
    ])];
    s.services.push(svc("apps", "api", "api.apps"));
    s.http_routes
        .push(route("apps", "elsewhere", json!([]), to("api")));
    let t = translate(&s, &sel());
    assert!(t.groups.iter().all(|g| g.name == "r"), "{:?}", t.groups);
    assert_eq!(
        parent(&t, "elsewhere")[0],
        "Accepted=False/NotAllowedByListeners"
    );
    let l = status(&t, "Gateway", "gw")["listeners"].as_array().unwrap();
    assert_eq!(conds(&l[0]["conditions"])[1], "Programmed=True/Programmed");
    // HTTPS without tls.certificateRefs: accepted, but not programmed.
    assert_eq!(conds(&l[1]["conditions"])[1], "Programmed=False/Invalid");
    assert_eq!(
        conds(&l[2]["conditions"])[0],
        "Accepted=False/UnsupportedProtocol"
    );
    let attached: Vec<&Value> = l.iter().map(|l| &l["attachedRoutes"]).collect();
    assert_eq!(attached, [1, 1, 0]);
}

#[test]
fn unsupported_matches_drop_the_rule_and_exact_paths_are_prefixes() {
    let mut s = snapshot();
    let header = json!({"matches": [{"path": {"value": "/a"}, "queryParams": [{"name": "x", "value": "1"}]}],
                        "backendRefs": [{"name": "api", "port": 443}]});
    let exact = json!({"matches": [{"path": {"type": "Exact", "value": "/b"}}],
                       "backendRefs": [{"name": "api", "port": 443}]});
    let hosts_a = json!(["a.example.com"]);
    s.http_routes = vec![
        route("web", "r", hosts_a.clone(), json!([header, exact])),
        route("web", "only-headers", hosts_a, json!([header])),
    ];
    let t = translate(&s, &sel());
    assert_eq!(hosts(&t), [("a.example.com", "/b")]);
    let reasons: Vec<_> = t
        .reports
        .iter()
        .map(|r| (r.name.as_str(), r.reason))
        .collect();
    let unsupported = [
        ("only-headers", "UnsupportedValue"),
        ("r", "ExactPathAsPrefix"),
        ("r", "UnsupportedValue"),
    ];
    assert_eq!(reasons, unsupported);
    let partly = [OK[0], OK[1], "PartiallyInvalid=True/UnsupportedValue"];
    assert_eq!(parent(&t, "r"), partly);
    assert_eq!(
        parent(&t, "only-headers")[0],
        "Accepted=False/UnsupportedValue"
    );
    assert_eq!(
        status(&t, "Gateway", "gw")["listeners"][0]["attachedRoutes"],
        1
    );
}

#[test]
fn exact_header_matches_become_route_conditions() {
    let mut s = snapshot();
    let rules = json!([
        {"matches": [{"path": {"value": "/"},
                      "headers": [{"name": "X-Env", "value": "canary"}, {"name": "x-env", "value": "ignored"}]}],
         "backendRefs": [{"name": "api", "port": 443}]},
        {"matches": [{"headers": [{"type": "RegularExpression", "name": "x", "value": ".*"}]}],
         "backendRefs": [{"name": "api", "port": 443}]}
    ]);
    s.http_routes = vec![route("web", "r", json!(["a.example.com"]), rules)];
    let t = translate(&s, &sel());
    let routes = t.routes();
    assert_eq!(routes.len(), 1, "{routes:?}");
    let want: std::collections::BTreeMap<String, String> =
        [("x-env".to_string(), "canary".to_string())].into();
    assert_eq!(
        routes[0].headers, want,
        "the first of two entries naming one header"
    );
    assert!(
        t.reports[0].message.contains("only Exact header matches"),
        "{:?}",
        t.reports
    );
}

#[test]
fn any_order_gives_the_same_translation() {
    let mut s = snapshot();
    for i in 0..20 {
        let ns = ["web", "apps"][i % 2];
        s.services
            .push(svc(ns, &format!("s{i}"), &format!("s{i}.internal")));
        let hosts = json!([
            format!("h{i}.example.com"),
            format!("H{}.example.com", i + 100)
        ]);
        s.http_routes
            .push(route(ns, &format!("r{i}"), hosts, to(&format!("s{i}"))));
        let validation =
            json!({"hostname": format!("s{i}.internal"), "wellKnownCACertificates": "System"});
        s.backend_tls_policies
            .push(policy(ns, &format!("p{i}"), &format!("s{i}"), validation));
    }
    let base = translate(&s, &sel());
    assert_eq!(
        base.routes().len(),
        2 + 2 * 10,
        "the apps routes are not allowed by the listener"
    );
    assert_eq!(
        base.statuses
            .iter()
            .filter(|s| s.kind == "BackendTLSPolicy")
            .count(),
        10
    );
    for seed in 0..20u64 {
        let mut shuffled = s.clone();
        let mut rng = fastrand::Rng::with_seed(seed);
        rng.shuffle(&mut shuffled.http_routes);
        rng.shuffle(&mut shuffled.services);
        rng.shuffle(&mut shuffled.backend_tls_policies);
        rng.shuffle(&mut shuffled.gateways);
        assert_eq!(translate(&shuffled, &sel()), base, "seed {seed}");
    }
}

#[test]
fn our_ingresses_get_the_status_address() {
    let ing = json!({"metadata": {"name": "i", "namespace": "web"}, "spec": {"ingressClassName": "sluice"}});
    let ingresses = vec![Arc::new(serde_json::from_value(ing).unwrap())];
    let s = Snapshot {
        ingresses,
        ..Snapshot::default()
    };
    let t = translate(
        &s,
        &Selector {
            status_address: Some("lb.example.com".into()),
            ..sel()
        },
    );
    let lb = json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}});
    assert_eq!(status(&t, "Ingress", "i"), &lb);
    assert!(translate(
        &s,
        &Selector {
            status_address: None,
            ..sel()
        }
    )
    .statuses
    .is_empty());
}

#[test]
fn backend_ref_weights_become_server_weights_that_keep_each_refs_share() {
    let mut s = snapshot();
    s.services.push(svc("web", "canary", "canary.internal"));
    // 90:10 between a Service with one server and one with two endpoints.
    let slice = json!({"metadata": {"name": "canary-x", "namespace": "web",
                                    "labels": {"kubernetes.io/service-name": "stable"}},
                       "addressType": "IPv4",
                       "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
                       "ports": [{"name": "https", "port": 8443}]});
    s.endpoint_slices
        .push(Arc::new(serde_json::from_value(slice).unwrap()));
    let spec = json!({"ports": [{"name": "https", "port": 443}], "clusterIP": "10.96.0.9"});
    let stable = json!({"metadata": {"name": "stable", "namespace": "web"}, "spec": spec});
    s.services
        .push(Arc::new(serde_json::from_value(stable).unwrap()));
    let rules = json!([{"backendRefs": [{"name": "stable", "port": 443, "weight": 90},
                                        {"name": "canary", "port": 443, "weight": 10}]}]);
    s.http_routes = vec![route("web", "r", json!(["a.example.com"]), rules)];
    let t = translate(&s, &sel());
    assert!(t.reports.is_empty(), "{:?}", t.reports);
    let b = t.backends()[0];
    let w = |server: &str| {
        let addr = sluice_config::ServerAddr::try_from(server.to_string()).unwrap();
        b.weights.get(&addr).copied().unwrap_or(1)
    };
    // Each stable endpoint 45, the canary 10: reduced, 9 + 9 against 2.
    assert_eq!(
        (
            w("10.0.0.1:8443"),
            w("10.0.0.2:8443"),
            w("canary.internal:443")
        ),
        (9, 9, 2)
    );
    // Equal weights need none.
    let rules = json!([{"backendRefs": [{"name": "api", "port": 443, "weight": 5},
                                        {"name": "canary", "port": 443, "weight": 5}]}]);
    s.http_routes = vec![route("web", "r", json!(["a.example.com"]), rules)];
    assert!(translate(&s, &sel()).backends()[0].weights.is_empty());
}
