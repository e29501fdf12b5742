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
    assert_eq!(c.listeners[0].backlog, None, "the kernel's somaxconn");
    assert!(c.log.access_log);
    assert_eq!(c.shutdown.drain_timeout.get().as_secs(), 30);
    Ok(())
}

#[test]
fn request_head_limits_are_checked_against_their_ranges_and_each_other() {
    let listener = |extra: &str| {
        parse(
            "t.yaml",
            &format!("listeners: [{{name: e, bind: '127.0.0.1:0', {extra}}}]\n"),
        )
    };
    let c = listener("max_request_line: 64, max_request_head: 1024, max_request_headers: 1");
    assert!(c.is_ok(), "the lower edges: {c:?}");
    let c =
        listener("max_request_line: 1048576, max_request_head: 1048576, max_request_headers: 1000");
    assert!(c.is_ok(), "the upper edges: {c:?}");
    for (extra, field, why) in [
        (
            "max_request_line: 63",
            "max_request_line",
            "between 64 and 1048576",
        ),
        (
            "max_request_head: 1023, max_request_line: 100",
            "max_request_head",
            "between 1024",
        ),
        (
            "max_request_head: 1048577",
            "max_request_head",
            "and 1048576",
        ),
        (
            "max_request_headers: 0",
            "max_request_headers",
            "between 1 and 1000",
        ),
        (
            "max_request_headers: 1001",
            "max_request_headers",
            "between 1 and 1000",
        ),
        (
            "max_request_line: 4096, max_request_head: 2048",
            "max_request_line",
            "more than max_request_head",
        ),
    ] {
        let e = listener(extra).expect_err(extra);
        assert_eq!(e.field, format!("listeners[0].{field}"), "{extra}");
        assert!(e.reason.contains(why), "{extra}: {e}");
    }
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
    let e =
        reject("backends: [{name: api, servers: ['x:443']}]\nroutes: [{host: a.b, backend: apii}]");
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
        (
            "health: {check: {path: '/a b'}}",
            "backends[0].health.check.path",
            "not a request path",
        ),
        (
            "health: {check: {path: \"/a\\x01\"}}",
            "backends[0].health.check.path",
            "not a request path",
        ),
        (
            "health: {check: {host: 'a b'}}",
            "backends[0].health.check.host",
            "not a valid host name",
        ),
        (
            "health: {check: {host: \"a\\nb\"}}",
            "backends[0].health.check.host",
            "not a valid host name",
        ),
        (
            "health: {check: {host: ''}}",
            "backends[0].health.check.host",
            "not a valid host name",
        ),
        (
            "tls: {ca_file: /dev/zero}",
            "backends[0].tls.ca_file",
            "cannot read /dev/zero: not a regular file",
        ),
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
fn health_check_requests_that_can_be_sent_are_accepted() -> Result<(), crate::ConfigError> {
    let c = parse(
        "t.yaml",
        &format!("{BASE}backends: [{{name: a, servers: ['x:1'], health: {{check: {{path: '/health?full=1&x=%20', host: 'api.example.com:8443'}}}}}}]"),
    )?;
    let hc = c.backends[0].health.check.as_ref().map(|h| h.path.as_str());
    assert_eq!(hc, Some("/health?full=1&x=%20"));
    Ok(())
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
    let e =
        reject("backends: [{name: a, servers: ['x:1']}]\nroutes: [{host: 'a.*.com', backend: a}]");
    assert_eq!(e.field, "routes[0].host");
}
