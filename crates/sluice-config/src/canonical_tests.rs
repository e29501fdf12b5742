//! Canonical form and equality: order and spelled-out defaults make no difference,
//! real changes do, and the serialized config reads back as the same config.

// The time bound is on real CPU work, which a paused clock could not shorten.
#![allow(clippy::disallowed_types)]

use crate::{canonical, parse, same, Config, ConfigError};

/// A tiny deterministic generator (Knuth's MMIX LCG), enough to shuffle.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Flow mappings, one per list item, as (key, value) pairs so their keys can be
/// shuffled too.
type Items = Vec<Vec<(&'static str, String)>>;

fn item(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn listeners() -> Items {
    vec![
        item(&[("name", "e1"), ("bind", "'127.0.0.1:8080'")]),
        item(&[
            ("name", "e2"),
            ("bind", "'[::1]:8081'"),
            ("keepalive_timeout", "5s"),
        ]),
        item(&[
            ("name", "e3"),
            ("bind", "unix:/tmp/e3.sock"),
            ("mode", "'0660'"),
        ]),
    ]
}

fn backends(lcg: &mut Lcg) -> Items {
    let mut list = |servers: &[&str]| {
        let mut s: Vec<String> = servers.iter().map(|s| format!("'{s}'")).collect();
        lcg.shuffle(&mut s);
        format!("[{}]", s.join(", "))
    };
    let a = list(&[
        "10.0.0.1:80",
        "10.0.0.2:80",
        "a.example.com:80",
        "10.0.0.1:80",
    ]);
    let b = list(&["b1.example.com:443", "b2.example.com:443", "[::1]:443"]);
    let c = list(&["unix:/run/c1.sock", "unix:/run/c2.sock"]);
    let sources = list(&["10.1.0.1", "10.1.0.2", "10.1.0.3", "fd00::1"]);
    let sources = sources.replace('\'', "");
    vec![
        item(&[
            ("name", "a"),
            ("servers", &a),
            ("source_addresses", &sources),
        ]),
        item(&[
            ("name", "b"),
            ("servers", &b),
            ("tls", "{sni: b.example.com}"),
            ("timeouts", "{connect: 1s, queue: 2s}"),
        ]),
        item(&[("name", "c"), ("servers", &c), ("balance", "round_robin")]),
        item(&[
            ("name", "d"),
            ("servers", "['d.example.com:80']"),
            ("balance", "hash"),
            ("hash_on", "'header:X-User'"),
        ]),
    ]
}

fn routes() -> Items {
    let r = |host: &str, prefix: Option<&str>, backend: &str| {
        let mut pairs = vec![("host", host.to_string()), ("backend", backend.to_string())];
        if let Some(p) = prefix {
            pairs.push(("path_prefix", p.to_string()));
        }
        pairs
    };
    vec![
        r("api.example.com", None, "a"),
        r("api.example.com", Some("/v2"), "b"),
        r("api.example.com", Some("/v2/admin"), "c"),
        r("'*.example.com'", None, "b"),
        r("'*.example.com'", Some("/static"), "c"),
        r("'*'", None, "d"),
        r("'*'", Some("/health"), "a"),
        r("www.example.org", Some("/x"), "d"),
    ]
}

fn yaml_list(out: &mut String, key: &str, items: &Items) {
    out.push_str(key);
    out.push_str(":\n");
    for pairs in items {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        out.push_str(&format!("  - {{{}}}\n", body.join(", ")));
    }
}

/// The test config; with `lcg`, every list (but the name servers) and every
/// mapping's keys in a random order.
fn text(lcg: Option<&mut Lcg>) -> String {
    let mut fixed = Lcg(7);
    let shuffle = lcg.is_some();
    let lcg = lcg.unwrap_or(&mut fixed);
    let mut sections = [
        ("listeners", listeners()),
        ("backends", backends(lcg)),
        ("routes", routes()),
    ];
    if shuffle {
        for (_, items) in &mut sections {
            lcg.shuffle(items);
            for pairs in items.iter_mut() {
                lcg.shuffle(pairs);
            }
        }
        lcg.shuffle(&mut sections);
    }
    let mut out = String::from(
        "resolver: {nameservers: ['10.0.0.53:53', '10.0.1.53:53'], timeout: 1s}\n\
         log: {level: debug}\n",
    );
    for (key, items) in &sections {
        yaml_list(&mut out, key, items);
    }
    out
}

#[test]
fn a_config_shuffled_100_times_is_canonically_the_same() -> Result<(), ConfigError> {
    let first = parse("t.yaml", &text(None))?;
    let want = canonical(&first);
    let mut lcg = Lcg(42);
    let mut reordered = 0;
    for i in 0..100 {
        let shuffled = text(Some(&mut lcg));
        let c = parse("shuffled.yaml", &shuffled)?;
        reordered += usize::from(c != first);
        assert_eq!(canonical(&c), want, "shuffle {i}:\n{shuffled}");
        assert!(same(&c, &first), "shuffle {i}");
    }
    // Without canonical form the shuffles would differ: the test shuffles for real.
    assert!(
        reordered > 90,
        "only {reordered} of 100 shuffles changed the order"
    );
    Ok(())
}

#[test]
fn defaults_written_out_equal_defaults_left_out() -> Result<(), ConfigError> {
    let implicit = "listeners: [{name: e, bind: '127.0.0.1:80'}]\n\
                    backends: [{name: a, servers: ['x:1']}]\n\
                    routes: [{host: X.example.com, backend: a}]\n";
    let explicit = "runtime: {workers: 0}\n\
                    log: {level: info, format: text, access_log: true}\n\
                    shutdown: {drain_timeout: 30s}\n\
                    limits: {max_client_connections: 0}\n\
                    config: {watch: false, watch_debounce: 200ms}\n\
                    listeners: [{name: e, bind: '127.0.0.1:80', keepalive_timeout: 1m, \
                    request_header_timeout: 10s, request_body_idle_timeout: 60s, send_timeout: 60000ms, half_close: false}]\n\
                    backends: [{name: a, servers: ['X:1'], protocol: http1, balance: least_request, \
                    pool: {max_idle_per_server: 64, idle_timeout: 60s, max_lifetime: 1h}, \
                    timeouts: {connect: 2s, response: 30s, queue: 5s}, limits: {max_queue: 1024}, \
                    tcp: {nodelay: true}, dns: {min_ttl: 5s, max_ttl: 5m}, health: {}, \
                    retries: {attempts: 1, budget: {ratio: 0.2}}, source_addresses: []}]\n\
                    routes: [{host: x.example.com, path_prefix: /, backend: a}]\n";
    let (implicit, explicit) = (parse("i.yaml", implicit)?, parse("e.yaml", explicit)?);
    assert!(same(&implicit, &explicit));
    assert_eq!(implicit, explicit);
    Ok(())
}

#[test]
fn real_changes_compare_unequal() -> Result<(), ConfigError> {
    let base = parse("t.yaml", &text(None))?;
    let changed = |from: &str, to: &str| -> Result<Config, ConfigError> {
        let t = text(None);
        assert!(t.contains(from), "{from}");
        parse("t.yaml", &t.replacen(from, to, 1))
    };
    let changes = [
        ("connect: 1s", "connect: 1500ms"),
        ("'10.0.0.2:80'", "'10.0.0.3:80'"),
        ("10.1.0.3", "10.1.0.4"),
        ("backend: d, path_prefix: /x", "backend: a, path_prefix: /x"),
        ("keepalive_timeout: 5s", "keepalive_timeout: 6s"),
        ("level: debug", "level: info"),
        ("'10.0.1.53:53'", "'10.0.2.53:53'"),
    ];
    for (from, to) in changes {
        assert!(!same(&base, &changed(from, to)?), "{from} -> {to}");
    }
    // A server listed twice has two shares of traffic: not the same as once.
    let once = changed("'10.0.0.1:80', ", "")?;
    assert!(!same(&base, &once));
    Ok(())
}

#[test]
fn an_ip_literal_spelled_two_ways_is_one_server() -> Result<(), ConfigError> {
    let c = |server: &str| {
        parse(
            "t.yaml",
            &format!("listeners: [{{name: e, bind: '127.0.0.1:0'}}]\nbackends: [{{name: a, servers: ['{server}']}}]"),
        )
    };
    assert!(same(&c("[0:0::1]:80")?, &c("[::1]:80")?));
    assert!(!same(&c("[::2]:80")?, &c("[::1]:80")?));
    Ok(())
}

#[test]
fn the_serialized_config_has_every_default_and_reads_back_equal() -> Result<(), String> {
    let c = parse("t.yaml", &text(None)).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&c).map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    assert_eq!(value["shutdown"]["drain_timeout"], "30s");
    assert_eq!(value["config"]["watch_debounce"], "200ms");
    assert_eq!(value["config"]["watch"], false);
    assert_eq!(value["admin"], serde_json::Value::Null);
    let b = &value["backends"][0];
    assert_eq!(b["pool"]["max_lifetime"], "1h");
    assert_eq!(b["pool"]["max_idle_per_server"], 64);
    assert_eq!(b["retries"]["budget"]["ratio"], 0.2);
    let d = value["backends"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["name"] == "d"));
    assert_eq!(d.map(|d| &d["hash_on"]), Some(&"header:x-user".into()));
    let servers = &value["backends"][1]["servers"];
    assert!(servers
        .as_array()
        .is_some_and(|s| s.contains(&"[::1]:443".into())));
    let e2 = &value["listeners"][1];
    assert_eq!(
        (&e2["bind"], &e2["keepalive_timeout"]),
        (&"[::1]:8081".into(), &"5s".into())
    );
    assert_eq!(value["listeners"][2]["mode"], "0660");

    // JSON is YAML: the same parser reads it back, validation included.
    let back = parse("t.json", &json).map_err(|e| e.to_string())?;
    assert_eq!(canonical(&back), canonical(&c));
    assert_eq!(back, c);
    Ok(())
}

#[test]
fn comparing_10000_routes_takes_well_under_100ms() -> Result<(), ConfigError> {
    let mut t = String::from(
        "listeners: [{name: e, bind: '127.0.0.1:0'}]\nbackends: [{name: a, servers: ['x:1']}, {name: b, servers: ['y:1']}]\nroutes:\n",
    );
    for i in 0..10_000 {
        t.push_str(&format!(
            "  - {{host: h{}.example.com, path_prefix: /p{i}, backend: a}}\n",
            i % 100
        ));
    }
    let a = parse("a.yaml", &t)?;
    let mut b = a.clone();
    b.routes.reverse();
    let started = std::time::Instant::now();
    let equal = same(&a, &b);
    let took = started.elapsed();
    assert!(equal);
    assert!(
        took < std::time::Duration::from_millis(100),
        "took {took:?}"
    );
    eprintln!("10,000 routes canonicalized and compared in {took:?}");
    Ok(())
}

#[test]
fn name_server_order_has_no_meaning_but_the_set_does() -> Result<(), ConfigError> {
    let c = |servers: &str| {
        parse(
            "t.yaml",
            &format!("listeners: [{{name: e, bind: '127.0.0.1:0'}}]\nresolver: {{nameservers: [{servers}]}}"),
        )
    };
    let one = c("'10.0.0.1:53', '10.0.0.2:53'")?;
    assert!(same(&one, &c("'10.0.0.2:53', '10.0.0.1:53'")?));
    assert!(!same(&one, &c("'10.0.0.1:53', '10.0.0.3:53'")?));
    Ok(())
}
