//! Semantic checks serde cannot express, and canonicalisation (lower-cased hosts,
//! sorted routes) so that two files meaning the same thing compare equal.

use crate::limits::{
    MAX_CLIENT_CONNECTIONS, MAX_FILE_BYTES, MAX_KEEPALIVE_COUNT, MAX_KEEPALIVE_SECS,
    MAX_MIN_IDLE_PER_SERVER, MAX_RESOLVER_ATTEMPTS, MAX_RETRY_ATTEMPTS, MAX_WORKERS,
};
use crate::model::{Config, ServerAddr};
use std::collections::HashSet;
use std::time::Duration;

/// The largest server weight: HAProxy's is 256; 1000 gives a 0.1% share.
const MAX_WEIGHT: u32 = 1000;

type Invalid = (String, String);

fn err<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, Invalid> {
    Err((field.into(), reason.into()))
}

pub(crate) fn validate(c: &mut Config) -> Result<(), Invalid> {
    if c.listeners.is_empty() {
        return err("listeners", "at least one listener is required");
    }
    at_most("runtime.workers", c.runtime.workers, MAX_WORKERS)?;
    at_most(
        "limits.max_client_connections",
        c.limits.max_client_connections,
        MAX_CLIENT_CONNECTIONS,
    )?;
    let shedding =
        c.limits.max_client_connections > 0 && c.limits.when_full == crate::WhenFull::Shed;
    if !c.limits.unready_after.get().is_zero() && !shedding {
        return err(
            "limits.unready_after",
            "needs limits.max_client_connections and when_full: shed (it counts the seconds sluice sheds clients)",
        );
    }
    // 0 would reload on the first event of a save, maybe reading a half-written file.
    positive("config.watch_debounce", c.config.watch_debounce.get())?;
    if let Some(k) = &c.sources.kubernetes {
        crate::kubernetes::validate(k)?;
    }
    let kubernetes_tls = c
        .sources
        .kubernetes
        .as_ref()
        .and_then(|k| k.tls_listener.as_deref());
    if let Some(name) = kubernetes_tls {
        if !c
            .listeners
            .iter()
            .any(|l| l.name == name && l.tls.is_some())
        {
            return err(
                "sources.kubernetes.tls_listener",
                format!("no listener named {name:?} with tls"),
            );
        }
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
        if l.backlog == Some(0) {
            return err(at("backlog"), "must be at least 1");
        }
        head_limits(l, &at)?;
        positive(&at("keepalive_timeout"), l.keepalive_timeout.get())?;
        positive(
            &at("request_header_timeout"),
            l.request_header_timeout.get(),
        )?;
        positive(&at("send_timeout"), l.send_timeout.get())?;
        if let Some(f) = &l.forward {
            forward(f, &format!("listeners[{i}].forward"))?;
        }
        crate::listener_tls::check(
            l.tls.as_ref(),
            &l.http2_settings,
            matches!(l.bind, crate::BindAddr::Tcp(_)),
            kubernetes_tls == Some(l.name.as_str()),
            &format!("listeners[{i}]"),
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
        backend_settings(b, &at)?;
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
        at_most("resolver.attempts", r.attempts, MAX_RESOLVER_ATTEMPTS)?;
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
        for (j, id) in r.client_identities.iter().enumerate() {
            let star = id.find('*');
            if id.trim().is_empty() || star.is_some_and(|p| p + 1 != id.len()) {
                return err(
                    format!("routes[{i}].client_identities[{j}]"),
                    format!(
                        "{id:?}: an identity, optionally ending in * (a prefix); * only at the end"
                    ),
                );
            }
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
        let mut headers = std::collections::BTreeMap::new();
        for (name, value) in &r.headers {
            let lower = name.to_ascii_lowercase();
            let valid = !lower.is_empty()
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                return err(at("headers"), format!("{name:?} is not a header name"));
            }
            if value.bytes().any(|b| b.is_ascii_control()) {
                return err(
                    at("headers"),
                    format!("{name}: the value has control characters"),
                );
            }
            if headers.insert(lower, value.clone()).is_some() {
                return err(
                    at("headers"),
                    format!("{name} is listed twice (names are case-insensitive)"),
                );
            }
        }
        if !seen.insert((r.host.clone(), r.path_prefix.clone(), headers)) {
            return err(
                at("host"),
                format!(
                    "another route already matches host {:?} with path_prefix {:?} and the same headers",
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

/// The settings of one backend (or a forward listener's destination template), with
/// `at` naming their fields; the name and servers are checked by the caller.
pub(crate) fn backend_settings(
    b: &crate::Backend,
    at: &dyn Fn(&str) -> String,
) -> Result<(), Invalid> {
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
            check_ca_file(ca).or_else(|why| {
                err(
                    at("tls.ca_file"),
                    format!("cannot read {}: {why}", ca.display()),
                )
            })?;
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
    positive(&at("timeouts.tunnel"), b.timeouts.tunnel.get())?;
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
    at_most(
        &at("pool.min_idle_per_server"),
        b.pool.min_idle_per_server,
        MAX_MIN_IDLE_PER_SERVER,
    )?;
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
    at_most(
        &at("tcp.keepalive_count"),
        b.tcp.keepalive_count,
        MAX_KEEPALIVE_COUNT,
    )?;
    if !b.tcp.keepalive_idle.get().is_zero() {
        keepalive_secs(
            &at("tcp.keepalive_idle"),
            b.tcp.keepalive_idle.get(),
            "0s (off) or ",
        )?;
    }
    keepalive_secs(
        &at("tcp.keepalive_interval"),
        b.tcp.keepalive_interval.get(),
        "",
    )?;
    positive(&at("dns.min_ttl"), b.dns.min_ttl.get())?;
    positive(&at("dns.retry_interval"), b.dns.retry_interval.get())?;
    if b.dns.max_ttl < b.dns.min_ttl {
        return err(at("dns.max_ttl"), "must not be less than dns.min_ttl");
    }
    if let Some(hc) = &b.health.check {
        check_request_path(&hc.path).or_else(|why| err(at("health.check.path"), why))?;
        if let Some(host) = &hc.host {
            check_host_header(host).or_else(|why| err(at("health.check.host"), why))?;
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
    at_most(
        &at("retries.attempts"),
        b.retries.attempts,
        MAX_RETRY_ATTEMPTS,
    )?;
    let ratio = b.retries.budget.ratio;
    if !(0.0..=1.0).contains(&ratio) {
        return err(
            at("retries.budget.ratio"),
            format!("{ratio} is not between 0 and 1"),
        );
    }
    if let Some(p) = &b.policy {
        let policy = p
            .compile()
            .or_else(|e| err(at(&format!("policy.{}", e.field)), e.reason))?;
        for (j, s) in b.servers.iter().enumerate() {
            let ServerAddr::Tcp { host, port } = s else {
                continue;
            };
            let Ok(ip) = host.parse::<std::net::IpAddr>() else {
                continue;
            };
            if let sluice_policy::Verdict::Denied(why) =
                policy.check(&sluice_policy::Host::Ip(ip), *port, ip)
            {
                return err(
                    at(&format!("servers[{j}]")),
                    format!("{s} is denied by the backend's policy (rule {why})"),
                );
            }
        }
    }
    for (s, w) in &b.weights {
        if !b.servers.contains(s) {
            return err(at("weights"), format!("{s} is not one of servers"));
        }
        if !(1..=MAX_WEIGHT).contains(w) {
            return err(
                at("weights"),
                format!("{s}: {w} is not between 1 and {MAX_WEIGHT} (to send a server nothing, remove it)"),
            );
        }
    }
    if !b.source_addresses.is_empty() && b.servers.iter().all(|s| matches!(s, ServerAddr::Unix(_)))
    {
        return err(
            at("source_addresses"),
            "all servers are unix: sockets; source addresses only apply to TCP",
        );
    }
    Ok(())
}

/// Checks a forward listener's settings; `at` is its path (`listeners[0].forward`).
pub(crate) fn forward(f: &crate::Forward, at: &str) -> Result<(), Invalid> {
    let fail = |field: String, reason: String| Err((format!("{at}.{field}"), reason));
    for (j, p) in f.originate_tls.iter().enumerate() {
        if let Err(e) = sluice_policy::HostPattern::parse(p) {
            return fail(format!("originate_tls[{j}]"), e);
        }
    }
    if let Some(c) = &f.connect {
        if c.ports.is_empty() || c.ports.contains(&0) {
            return fail(
                "connect.ports".into(),
                "list the ports CONNECT may reach (e.g. [443]); 0 is not a port".into(),
            );
        }
    }
    if f.max_destinations == 0 || f.max_destinations > crate::MAX_DESTINATIONS {
        return fail(
            "max_destinations".into(),
            format!("must be between 1 and {}", crate::MAX_DESTINATIONS),
        );
    }
    if f.destination_idle_timeout.get().is_zero() {
        return fail(
            "destination_idle_timeout".into(),
            "must be greater than zero".into(),
        );
    }
    if let Err(e) = f.policy.compile() {
        return fail(format!("policy.{}", e.field), e.reason);
    }
    if let Some(auth) = &f.auth {
        if let Err(why) = crate::read_credentials(&auth.basic_file) {
            return fail("auth.basic_file".into(), why);
        }
    }
    let template = f.backend_for("destination".into(), "destination.invalid", 443, true);
    backend_settings(&template, &|field| format!("{at}.destination.{field}"))
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

fn at_most<N: PartialOrd + std::fmt::Display>(field: &str, n: N, max: N) -> Result<(), Invalid> {
    if n > max {
        return err(field, format!("{n} is more than the limit of {max}"));
    }
    Ok(())
}

/// TCP keepalive times are whole seconds in 1..=32767 for the kernel (EINVAL
/// otherwise, on every connect). `allowed` names what else is accepted.
fn keepalive_secs(field: &str, d: Duration, allowed: &str) -> Result<(), Invalid> {
    if d < Duration::from_secs(1) || d.as_secs() > MAX_KEEPALIVE_SECS {
        return err(
            field,
            format!(
                "{} is out of range: must be {allowed}between 1s and {MAX_KEEPALIVE_SECS}s (the kernel's TCP keepalive limits)",
                crate::Duration(d)
            ),
        );
    }
    Ok(())
}

/// The CA bundle is read whole (at most [`MAX_FILE_BYTES`]); a device such as
/// `/dev/zero` would never end.
fn check_ca_file(path: &std::path::Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} MiB (the limit)",
            MAX_FILE_BYTES / (1024 * 1024)
        ));
    }
    Ok(())
}

/// A health check sends `GET <path>`: it must be a valid request target, or every
/// check fails and the servers stay down.
fn check_request_path(path: &str) -> Result<(), String> {
    let parsed = path.parse::<http::uri::PathAndQuery>();
    if !path.starts_with('/') || parsed.is_err() || path.parse::<http::Uri>().is_err() {
        return Err(format!(
            "{path:?} is not a request path: it must start with / and contain no spaces or control characters (percent-encode them)"
        ));
    }
    Ok(())
}

/// The health check's `Host` header: a valid header value naming a host (an optional
/// `:port` is allowed, as in any Host header).
fn check_host_header(h: &str) -> Result<(), String> {
    let plausible = !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '[' | ']' | ':'));
    if !plausible || http::HeaderValue::from_str(h).is_err() {
        return Err(format!(
            "{h:?} is not a valid host name (letters, digits, '-', '.', an optional :port)"
        ));
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

/// The request-head limits of a listener: each within its range, and the request
/// line no longer than the head it is part of.
fn head_limits(l: &crate::Listener, at: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
    use crate::limits::{MAX_REQUEST_HEAD, MAX_REQUEST_HEADERS};
    let range = |field: &str, v: u32, min: u32, max: u32| {
        if v < min || v > max {
            return err(at(field), format!("must be between {min} and {max}"));
        }
        Ok(())
    };
    range("max_request_line", l.max_request_line, 64, MAX_REQUEST_HEAD)?;
    range(
        "max_request_head",
        l.max_request_head,
        1024,
        MAX_REQUEST_HEAD,
    )?;
    range(
        "max_request_headers",
        l.max_request_headers,
        1,
        MAX_REQUEST_HEADERS,
    )?;
    if l.max_request_line > l.max_request_head {
        return err(
            at("max_request_line"),
            format!(
                "{} is more than max_request_head ({}), which includes the request line",
                l.max_request_line, l.max_request_head
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
