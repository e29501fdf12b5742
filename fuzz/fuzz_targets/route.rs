//! Route matching and host normalisation on a runtime compiled from a config the
//! input spells. Invariants: a route found has a prefix of the path; an exact host
//! route is only taken by its host, a wildcard only by a subdomain.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines: routes as `host path_prefix`, then a blank line, then `host path` lookups.
    let (routes, lookups) = text.split_once("\n\n").unwrap_or((text, "api.test /"));
    let mut yaml = String::from(
        "listeners: [{name: e, bind: '127.0.0.1:0'}]\nbackends: [{name: b, servers: ['127.0.0.1:1']}]\nroutes:\n",
    );
    let mut specs = Vec::new();
    for line in routes.lines().take(16) {
        let Some((host, prefix)) = line.split_once(' ') else {
            continue;
        };
        let (Ok(h), Ok(p)) = (serde_json::to_string(host), serde_json::to_string(prefix)) else {
            continue;
        };
        yaml += &format!("  - {{host: {h}, path_prefix: {p}, backend: b}}\n");
        specs.push((host.to_ascii_lowercase(), prefix.to_string()));
    }
    let Ok(config) = sluice_config::parse("fuzz.yaml", &yaml) else {
        return;
    };
    let metrics =
        sluice_proxy::Metrics::register(&mut prometheus_client::registry::Registry::default());
    let Ok(rt) =
        sluice_proxy::compile(&config, &sluice_proxy::Registry::new(metrics), None, "fuzz")
    else {
        return;
    };
    for line in lookups.lines().take(16) {
        let (host, path) = line.split_once(' ').unwrap_or((line, "/"));
        let Some((host, prefix)) = sluice_proxy::fuzzing::route(&rt, host, path) else {
            continue;
        };
        assert!(path.starts_with(&prefix), "{path:?} took prefix {prefix:?}");
        let by = config
            .routes
            .iter()
            .filter(|r| r.path_prefix == prefix)
            .any(|r| {
                r.host == "*"
                    || r.host == host
                    || r.host
                        .strip_prefix("*.")
                        .is_some_and(|s| host.ends_with(&format!(".{s}")))
            });
        assert!(
            by,
            "host {host:?} path {path:?} matched no route with prefix {prefix:?}: {specs:?}"
        );
    }
});
