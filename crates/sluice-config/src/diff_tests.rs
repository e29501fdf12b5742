//! The diff between two configs: ids, changed field paths, what needs a restart, and
//! the JSON and text forms of reload-spec.md.

// The time bound is on real CPU work, which a paused clock could not shorten.
#![allow(clippy::disallowed_types)]

use crate::{diff, parse, ConfigError, PoolChanges};
use serde_json::json;

const LISTENER: &str = "listeners: [{name: e, bind: '127.0.0.1:0'}]\n";

fn config(text: &str) -> Result<crate::Config, ConfigError> {
    parse("t.yaml", text)
}

/// The example of reload-spec.md: a route added, one removed, one moved to a new
/// backend, and a backend whose connect timeout changed.
fn spec_example() -> Result<crate::ConfigDiff, ConfigError> {
    let old = config(&format!(
        "{LISTENER}backends: [{{name: a, servers: ['a:1']}}]\n\
         routes: [{{host: '*', backend: a}}, {{host: api.example.com, path_prefix: /old, backend: a}}]"
    ))?;
    let new = config(&format!(
        "{LISTENER}backends: [{{name: b, servers: ['b:1']}}, {{name: a, servers: ['a:1'], timeouts: {{connect: 3s}}}}]\n\
         routes: [{{host: api.example.com, path_prefix: /v2, backend: b}}, {{host: '*', backend: b}}]"
    ))?;
    Ok(diff(&old, &new))
}

#[test]
fn the_spec_example_has_the_documented_json_shape() -> Result<(), String> {
    let mut d = spec_example().map_err(|e| e.to_string())?;
    let value = serde_json::to_value(&d).map_err(|e| e.to_string())?;
    let empty = json!({"added": [], "removed": [], "changed": []});
    assert_eq!(
        value,
        json!({
            "routes": {"added": ["api.example.com/v2"], "removed": ["api.example.com/old"], "changed": ["*/"]},
            "backends": {"added": ["b"], "removed": [], "changed": ["a"]},
            "listeners": empty,
            "restart_required": [],
        })
    );
    d.pools = Some(PoolChanges {
        kept: 2,
        added: 1,
        removed: 0,
    });
    let text = serde_json::to_string(&d).map_err(|e| e.to_string())?;
    assert!(
        text.contains(r#""listeners":{"added":[],"removed":[],"changed":[]},"pools":{"kept":2,"added":1,"removed":0},"restart_required":[]"#),
        "{text}"
    );
    Ok(())
}

#[test]
fn the_spec_example_prints_the_documented_lines() -> Result<(), ConfigError> {
    let mut d = spec_example()?;
    d.pools = Some(PoolChanges {
        kept: 2,
        added: 1,
        removed: 0,
    });
    assert_eq!(
        d.lines(),
        [
            "routes:    + api.example.com/v2 -> b",
            "routes:    - api.example.com/old",
            "routes:    ~ */ (backend a -> b)",
            "backends:  + b",
            "backends:  ~ a (timeouts.connect)",
            "listeners: = unchanged",
            "pools:     kept 2, new 1, closed 0",
        ]
    );
    d.pools = None;
    assert_eq!(d.to_string().lines().count(), 6);
    assert!(!d.is_empty());
    Ok(())
}

#[test]
fn a_reordered_config_is_no_change() -> Result<(), ConfigError> {
    let old = config(
        "listeners: [{name: e, bind: '127.0.0.1:0'}, {name: f, bind: '127.0.0.1:1'}]\n\
         backends: [{name: a, servers: ['a:1', 'b:1']}, {name: b, servers: ['c:1']}]\n\
         routes: [{host: x, backend: a}, {host: y, backend: b}]",
    )?;
    let new = config(
        "backends: [{servers: ['c:1'], name: b}, {name: a, servers: ['b:1', 'a:1']}]\n\
         routes: [{host: y, backend: b}, {backend: a, host: X}]\n\
         listeners: [{name: f, bind: '127.0.0.1:1'}, {name: e, bind: '127.0.0.1:0', keepalive_timeout: 60s}]",
    )?;
    let d = diff(&old, &new);
    assert!(d.is_empty(), "{d}");
    assert_eq!(d.lines(), ["no change (same canonical config)"]);
    Ok(())
}

#[test]
fn changed_backends_and_listeners_name_their_changed_fields() -> Result<(), ConfigError> {
    let old = config(
        "listeners: [{name: e, bind: '127.0.0.1:0'}, {name: gone, bind: '127.0.0.1:2'}]\n\
         backends: [{name: a, servers: ['a:1'], health: {check: {interval: 5s}}}, {name: same, servers: ['s:1']}]",
    )?;
    let new = config(
        "listeners: [{name: e, bind: '127.0.0.1:1', keepalive_timeout: 5s}, {name: new, bind: '127.0.0.1:3'}]\n\
         backends: [{name: a, servers: ['a:1', 'a2:1'], tls: {}, health: {check: {interval: 1s}}, pool: {max_idle_per_server: 8}},\n\
         {name: same, servers: ['s:1']}]",
    )?;
    let d = diff(&old, &new);
    let a = d
        .backends
        .changed
        .first()
        .map(|c| (c.id.as_str(), c.fields.clone()));
    let fields = |f: &[&str]| f.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    assert_eq!(
        a,
        Some((
            "a",
            fields(&[
                "health.check.interval",
                "pool.max_idle_per_server",
                "servers",
                "tls"
            ])
        ))
    );
    assert_eq!(d.backends.changed.len(), 1, "`same` is unchanged");
    assert_eq!(
        (d.listeners.added.as_slice(), d.listeners.removed.as_slice()),
        (&["new".to_string()][..], &["gone".to_string()][..])
    );
    let e = d.listeners.changed.first().map(|c| c.fields.clone());
    assert_eq!(e, Some(fields(&["bind", "keepalive_timeout"])));
    assert_eq!(
        d.lines()[2..5],
        [
            "listeners: + new",
            "listeners: - gone",
            "listeners: ~ e (bind, keepalive_timeout)",
        ]
    );
    assert_eq!(
        d.lines()[1],
        "backends:  ~ a (health.check.interval, pool.max_idle_per_server, servers, tls)"
    );
    Ok(())
}

#[test]
fn restart_only_settings_are_listed_apart_from_live_ones() -> Result<(), String> {
    let old = config(LISTENER).map_err(|e| e.to_string())?;
    let new = config(&format!(
        "{LISTENER}runtime: {{workers: 2}}\nadmin: {{bind: '127.0.0.1:9000'}}\nlog: {{level: debug, format: json}}\n\
         limits: {{max_client_connections: 10}}\nshutdown: {{drain_timeout: 5s}}\nconfig: {{watch: true}}\n\
         resolver: {{nameservers: ['10.0.0.53:53']}}"
    ))
    .map_err(|e| e.to_string())?;
    let d = diff(&old, &new);
    assert_eq!(
        d.restart_required,
        [
            "admin",
            "limits.max_client_connections",
            "log.format",
            "log.level",
            "runtime.workers"
        ]
    );
    assert_eq!(
        d.other,
        ["config.watch", "resolver", "shutdown.drain_timeout"]
    );
    assert!(!d.is_empty());
    let value = serde_json::to_value(&d).map_err(|e| e.to_string())?;
    assert_eq!(value["restart_required"][4], "runtime.workers");
    assert_eq!(value["other"][2], "shutdown.drain_timeout");
    let lines = d.lines();
    assert!(
        lines.contains(&"other:     ~ config.watch".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(
            &"restart:   ~ runtime.workers (needs a restart; not applied by a reload)".to_string()
        ),
        "{lines:?}"
    );
    // Only a live-applied field changed: still a change, still in the JSON.
    let watch =
        config(&format!("{LISTENER}config: {{watch_debounce: 1s}}")).map_err(|e| e.to_string())?;
    let d = diff(&old, &watch);
    assert!(!d.is_empty());
    assert_eq!(d.other, ["config.watch_debounce"]);
    let no_other = serde_json::to_value(diff(&old, &old)).map_err(|e| e.to_string())?;
    assert_eq!(no_other.get("other"), None);
    Ok(())
}

#[test]
fn every_top_level_section_is_compared() -> Result<(), String> {
    let c = config(LISTENER).map_err(|e| e.to_string())?;
    let whole = serde_json::to_value(&c).map_err(|e| e.to_string())?;
    let mut all: Vec<&String> = whole
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    all.retain(|k| !["routes", "backends", "listeners"].contains(&k.as_str()));
    let compared = crate::diff::sections(&c);
    let mut compared: Vec<&String> = compared
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    all.sort();
    compared.sort();
    assert_eq!(all, compared);
    assert!(all.len() >= 7, "{all:?}");
    Ok(())
}

#[test]
fn diffing_10000_routes_is_fast() -> Result<(), ConfigError> {
    let routes = |backend: &str| {
        let mut t = format!(
            "{LISTENER}backends: [{{name: a, servers: ['x:1']}}, {{name: b, servers: ['y:1']}}]\nroutes:\n"
        );
        for i in 0..10_000 {
            let to = if i % 2 == 0 { "a" } else { backend };
            t.push_str(&format!(
                "  - {{host: h{}.example.com, path_prefix: /p{i}, backend: {to}}}\n",
                i % 100
            ));
        }
        t
    };
    let (old, new) = (config(&routes("a"))?, config(&routes("b"))?);
    let started = std::time::Instant::now();
    let d = diff(&old, &new);
    let took = started.elapsed();
    assert_eq!(d.routes.changed.len(), 5_000);
    assert!(d
        .routes
        .changed
        .iter()
        .all(|c| c.backend == Some(("a".into(), "b".into()))));
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
    eprintln!("10,000 routes (5,000 changed) diffed in {took:?}");
    Ok(())
}
