//! Semantic checks serde cannot express, and canonicalisation (lower-cased hosts,
//! sorted routes) so that two files meaning the same thing compare equal.

use crate::model::{Config, ServerAddr};
use std::collections::HashSet;
use std::time::Duration;

type Invalid = (String, String);

fn err<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, Invalid> {
    Err((field.into(), reason.into()))
}

pub(crate) fn validate(c: &mut Config) -> Result<(), Invalid> {
    if c.listeners.is_empty() {
        return err("listeners", "at least one listener is required");
    }
    let mut names = HashSet::new();
    let mut binds = HashSet::new();
    for (i, l) in c.listeners.iter().enumerate() {
        let at = |f: &str| format!("listeners[{i}].{f}");
        if l.name.is_empty() {
            return err(at("name"), "must not be empty");
        }
        if !names.insert(l.name.as_str()) {
            return err(at("name"), format!("duplicate listener name {:?}", l.name));
        }
        if !is_any_port(&l.bind) && !binds.insert(l.bind.clone()) {
            return err(
                at("bind"),
                format!("{} is already used by another listener", l.bind),
            );
        }
        if l.mode.is_some() && !matches!(l.bind, crate::BindAddr::Unix(_)) {
            return err(at("mode"), "mode only applies to unix: listeners");
        }
        if l.backlog == 0 {
            return err(at("backlog"), "must be at least 1");
        }
        positive(&at("keepalive_timeout"), l.keepalive_timeout.get())?;
        positive(
            &at("request_header_timeout"),
            l.request_header_timeout.get(),
        )?;
        positive(
            &at("request_body_idle_timeout"),
            l.request_body_idle_timeout.get(),
        )?;
    }
    if let Some(admin) = &c.admin {
        if !is_any_port(&admin.bind) && binds.contains(&admin.bind) {
            return err(
                "admin.bind",
                format!("{} is already used by a listener", admin.bind),
            );
        }
    }

    let mut backend_names = HashSet::new();
    for (i, b) in c.backends.iter().enumerate() {
        let at = |f: &str| format!("backends[{i}].{f}");
        if b.name.is_empty() {
            return err(at("name"), "must not be empty");
        }
        if !backend_names.insert(b.name.clone()) {
            return err(at("name"), format!("duplicate backend name {:?}", b.name));
        }
        if b.servers.is_empty() {
            return err(at("servers"), "at least one server is required");
        }
        if let Some(tls) = &b.tls {
            if let Some(sni) = &tls.sni {
                if sni.is_empty() || sni.contains(['/', ' ', ':']) {
                    return err(at("tls.sni"), format!("{sni:?} is not a valid server name"));
                }
            } else if let Some(j) = b
                .servers
                .iter()
                .position(|s| matches!(s, ServerAddr::Unix(_)))
            {
                return err(
                    at(&format!("servers[{j}]")),
                    "a unix: server with TLS needs tls.sni (there is no host name to verify)",
                );
            }
            if let Some(ca) = &tls.ca_file {
                if let Err(e) = std::fs::metadata(ca) {
                    return err(
                        at("tls.ca_file"),
                        format!("cannot read {}: {e}", ca.display()),
                    );
                }
            }
        }
        if b.pool.max_idle_per_server == 0 {
            // Allowed: disables pooling (every request opens a connection). Kept for benchmarks.
        }
        positive(&at("pool.idle_timeout"), b.pool.idle_timeout.get())?;
        positive(&at("timeouts.connect"), b.timeouts.connect.get())?;
        positive(&at("timeouts.response"), b.timeouts.response.get())?;
        positive(&at("timeouts.queue"), b.timeouts.queue.get())?;
        positive(
            &at("timeouts.response_body_idle"),
            b.timeouts.response_body_idle.get(),
        )?;
        match (&b.balance, &b.hash_on) {
            (crate::Balance::Hash, None) => {
                return err(
                    at("hash_on"),
                    "balance: hash needs hash_on (client_ip or header:<Name>)",
                )
            }
            (crate::Balance::Hash, Some(_)) | (_, None) => {}
            (_, Some(_)) => return err(at("hash_on"), "only used with balance: hash"),
        }
        if b.pool.max_concurrent_streams == 0 {
            return err(at("pool.max_concurrent_streams"), "must be at least 1");
        }
        if b.pool.min_idle_per_server > b.pool.max_idle_per_server {
            return err(
                at("pool.min_idle_per_server"),
                format!(
                    "{} is more than pool.max_idle_per_server ({})",
                    b.pool.min_idle_per_server, b.pool.max_idle_per_server
                ),
            );
        }
        if b.tcp.keepalive_count == 0 {
            return err(at("tcp.keepalive_count"), "must be at least 1");
        }
        positive(&at("dns.min_ttl"), b.dns.min_ttl.get())?;
        positive(&at("dns.retry_interval"), b.dns.retry_interval.get())?;
        if b.dns.max_ttl < b.dns.min_ttl {
            return err(at("dns.max_ttl"), "must not be less than dns.min_ttl");
        }
        if let Some(hc) = &b.health.check {
            if !hc.path.starts_with('/') {
                return err(
                    at("health.check.path"),
                    format!("{:?} must start with /", hc.path),
                );
            }
            positive(&at("health.check.interval"), hc.interval.get())?;
            positive(&at("health.check.timeout"), hc.timeout.get())?;
            if hc.rise == 0 {
                return err(at("health.check.rise"), "must be at least 1");
            }
            if hc.fall == 0 {
                return err(at("health.check.fall"), "must be at least 1");
            }
        }
        if let Some(p) = &b.health.passive {
            if p.consecutive_failures == 0 {
                return err(
                    at("health.passive.consecutive_failures"),
                    "must be at least 1",
                );
            }
            positive(&at("health.passive.ejection_time"), p.ejection_time.get())?;
            if p.max_ejection_time < p.ejection_time {
                return err(
                    at("health.passive.max_ejection_time"),
                    "must not be less than health.passive.ejection_time",
                );
            }
        }
        let ratio = b.retries.budget.ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return err(
                at("retries.budget.ratio"),
                format!("{ratio} is not between 0 and 1"),
            );
        }
        if !b.source_addresses.is_empty()
            && b.servers.iter().all(|s| matches!(s, ServerAddr::Unix(_)))
        {
            return err(
                at("source_addresses"),
                "all servers are unix: sockets; source addresses only apply to TCP",
            );
        }
    }
    if let Some(r) = &c.resolver {
        if r.nameservers.is_empty() {
            return err(
                "resolver.nameservers",
                "at least one name server is required (or remove resolver to use the system's)",
            );
        }
        positive("resolver.timeout", r.timeout.get())?;
        if r.attempts == 0 {
            return err("resolver.attempts", "must be at least 1");
        }
    }

    let mut seen = HashSet::new();
    for (i, r) in c.routes.iter_mut().enumerate() {
        let at = |f: &str| format!("routes[{i}].{f}");
        r.host = r.host.trim().to_ascii_lowercase();
        check_host(&r.host).or_else(|why| err(at("host"), why))?;
        if !r.path_prefix.starts_with('/') {
            return err(
                at("path_prefix"),
                format!("{:?} must start with /", r.path_prefix),
            );
        }
        if !backend_names.contains(&r.backend) {
            let mut known: Vec<_> = backend_names.iter().map(String::as_str).collect();
            known.sort_unstable();
            return err(
                at("backend"),
                format!(
                    "unknown backend {:?} (defined: {})",
                    r.backend,
                    known.join(", ")
                ),
            );
        }
        if !seen.insert((r.host.clone(), r.path_prefix.clone())) {
            return err(
                at("host"),
                format!(
                    "another route already matches host {:?} with path_prefix {:?}",
                    r.host, r.path_prefix
                ),
            );
        }
    }
    // Canonical order: the file's order never changes behaviour (longest prefix wins).
    c.routes
        .sort_by(|a, b| (&a.host, &a.path_prefix).cmp(&(&b.host, &b.path_prefix)));
    Ok(())
}

/// Port 0 asks the kernel for any free port, so it never clashes.
fn is_any_port(b: &crate::BindAddr) -> bool {
    matches!(b, crate::BindAddr::Tcp(a) if a.port() == 0)
}

fn positive(field: &str, d: Duration) -> Result<(), Invalid> {
    if d.is_zero() {
        return err(field, "must be greater than zero");
    }
    Ok(())
}

fn check_host(h: &str) -> Result<(), String> {
    if h == "*" {
        return Ok(());
    }
    let name = h.strip_prefix("*.").unwrap_or(h);
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.contains('*') {
        return Err(format!(
            "{h:?}: a wildcard is only allowed as the first label (*.example.com) or alone (*)"
        ));
    }
    if name.contains(':') && !name.starts_with('[') {
        return Err(format!("{h:?}: give the host without a port"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '[' | ']' | ':'))
    {
        return Err(format!("{h:?} is not a valid host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::parse;

    const BASE: &str = "listeners: [{name: e, bind: '127.0.0.1:0'}]\n";

    fn reject(extra: &str) -> crate::ConfigError {
        match parse("t.yaml", &format!("{BASE}{extra}")) {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e,
        }
    }

    #[test]
    fn minimal_config_gets_documented_defaults() -> Result<(), crate::ConfigError> {
        let c = parse("t.yaml", BASE)?;
        assert_eq!(c.listeners[0].backlog, 1024);
        assert!(c.log.access_log);
        assert_eq!(c.shutdown.drain_timeout.get().as_secs(), 30);
        Ok(())
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let e = reject("backends: [{name: a, servers: ['x:443'], pool: {max_idel: 3}}]");
        assert_eq!(e.field, "backends[0].pool.max_idel");
        assert!(e.reason.contains("max_idel"), "{e}");
    }

    #[test]
    fn bad_duration_explains_the_format() {
        let e = reject("backends: [{name: a, servers: ['x:443'], timeouts: {connect: 5}}]");
        assert_eq!(e.field, "backends[0].timeouts.connect");
        assert!(e.reason.contains("5s"), "{e}");
    }

    #[test]
    fn route_to_unknown_backend_lists_the_known_ones() {
        let e = reject(
            "backends: [{name: api, servers: ['x:443']}]\nroutes: [{host: a.b, backend: apii}]",
        );
        assert_eq!(e.field, "routes[0].backend");
        assert!(e.reason.contains("api"), "{e}");
        assert_eq!(
            e.to_string(),
            format!("t.yaml: routes[0].backend: {}", e.reason)
        );
    }

    #[test]
    fn pool_control_options_are_checked_and_named() {
        let cases = [
            ("balance: hash", "backends[0].hash_on", "needs hash_on"),
            (
                "hash_on: client_ip",
                "backends[0].hash_on",
                "only used with",
            ),
            (
                "hash_on: 'cookie:x', balance: hash",
                "backends[0].hash_on",
                "header:<Name>",
            ),
            ("balance: fastest", "backends[0].balance", "least_request"),
            ("protocol: h3", "backends[0].protocol", "http2"),
            (
                "pool: {min_idle_per_server: 9, max_idle_per_server: 8}",
                "backends[0].pool.min_idle_per_server",
                "max_idle",
            ),
            (
                "pool: {max_concurrent_streams: 0}",
                "backends[0].pool.max_concurrent_streams",
                "at least 1",
            ),
            (
                "dns: {min_ttl: 10s, max_ttl: 5s}",
                "backends[0].dns.max_ttl",
                "min_ttl",
            ),
            (
                "health: {check: {path: health}}",
                "backends[0].health.check.path",
                "start with /",
            ),
            (
                "health: {check: {fall: 0}}",
                "backends[0].health.check.fall",
                "at least 1",
            ),
            (
                "health: {passive: {ejection_time: 10s, max_ejection_time: 1s}}",
                "backends[0].health.passive.max_ejection_time",
                "ejection_time",
            ),
            (
                "retries: {budget: {ratio: 2}}",
                "backends[0].retries.budget.ratio",
                "between 0 and 1",
            ),
            (
                "source_addresses: [not-an-ip]",
                "backends[0].source_addresses[0]",
                "IP",
            ),
            ("timeouts: {queue: 0s}", "backends[0].timeouts.queue", ""),
        ];
        for (extra, field, why) in cases {
            let e = reject(&format!(
                "backends: [{{name: a, servers: ['x:443'], {extra}}}]"
            ));
            assert_eq!(e.field, field, "{extra}: {e}");
            assert!(e.reason.contains(why), "{extra}: {e}");
        }
        let e = reject("resolver: {nameservers: []}");
        assert_eq!(e.field, "resolver.nameservers");
    }

    #[test]
    fn server_with_scheme_is_rejected() {
        let e = reject("backends: [{name: a, servers: ['https://x']}]");
        assert_eq!(e.field, "backends[0].servers[0]");
    }

    #[test]
    fn routes_are_canonical_regardless_of_order() -> Result<(), crate::ConfigError> {
        let b = "backends: [{name: a, servers: ['x:1']}]\n";
        let one = parse(
            "t",
            &format!("{BASE}{b}routes: [{{host: B.x, backend: a}}, {{host: a.x, backend: a}}]"),
        )?;
        let two = parse(
            "t",
            &format!("{BASE}{b}routes: [{{host: a.x, backend: a}}, {{host: b.x, backend: a}}]"),
        )?;
        let hosts = |c: &crate::Config| c.routes.iter().map(|r| r.host.clone()).collect::<Vec<_>>();
        assert_eq!(hosts(&one), hosts(&two));
        Ok(())
    }

    #[test]
    fn wildcard_in_the_middle_is_rejected() {
        let e = reject(
            "backends: [{name: a, servers: ['x:1']}]\nroutes: [{host: 'a.*.com', backend: a}]",
        );
        assert_eq!(e.field, "routes[0].host");
    }
}
