//! Upper bounds on config values: each is far above any sensible setting and below
//! the point where the value would panic, fail every connection or exhaust the
//! machine at run time, so that whatever `sluice check` accepts also runs.

pub use crate::duration::{MAX_DURATION, MAX_DURATION_TEXT};

/// `runtime.workers`: each is an OS thread; a million makes the runtime builder
/// panic, and past a few hundred threads only add contention.
pub const MAX_WORKERS: usize = 1024;

/// `limits.max_client_connections`: tokio's `Semaphore::new` panics above
/// `usize::MAX >> 3`; ten million is beyond any machine's file descriptors.
pub const MAX_CLIENT_CONNECTIONS: usize = 10_000_000;

/// `tcp.keepalive_count`: Linux rejects TCP_KEEPCNT outside 1..=127 with EINVAL,
/// which would fail every upstream connect.
pub const MAX_KEEPALIVE_COUNT: u32 = 127;

/// `tcp.keepalive_idle` and `tcp.keepalive_interval`, in whole seconds: Linux
/// rejects TCP_KEEPIDLE and TCP_KEEPINTVL outside 1..=32767 (and the option takes
/// seconds, so below 1s would be 0).
pub const MAX_KEEPALIVE_SECS: u64 = 32_767;

/// `resolver.attempts`: each try can take `resolver.timeout`, and startup waits for
/// the lookups.
pub const MAX_RESOLVER_ATTEMPTS: usize = 10;

/// `pool.min_idle_per_server`: connections opened per server even without traffic;
/// a typo must not open millions of them.
pub const MAX_MIN_IDLE_PER_SERVER: usize = 1000;

/// `retries.attempts`: retries of one request; more only delays the error.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;

/// The config file and CA files are read whole into memory; a config is a few KB,
/// the largest public CA bundles are under 1 MB.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// `listeners[].max_request_line` and `max_request_head`: the head is buffered whole
/// per connection while it arrives; 1 MiB is 16 times NGINX's largest default.
pub const MAX_REQUEST_HEAD: u32 = 1024 * 1024;
/// `listeners[].max_request_headers`: HAProxy allows 101 by default; each costs a
/// parse slot per request.
pub const MAX_REQUEST_HEADERS: u32 = 1000;

/// Nesting of YAML flow collections (`[`, `{`): the parser's time grows with the
/// square of the depth (100,000 levels took 19 s); sluice's schema needs five.
pub const MAX_FLOW_DEPTH: usize = 64;

#[cfg(test)]
mod tests {
    use crate::{parse, ConfigError};

    const BASE: &str = "listeners: [{name: e, bind: '127.0.0.1:0'}]\n";

    fn config(top: &str, backend: &str) -> Result<crate::Config, ConfigError> {
        parse(
            "t.yaml",
            &format!("{BASE}{top}\nbackends: [{{name: a, servers: ['x:443'], {backend}}}]\n"),
        )
    }

    /// (top-level settings, backend settings, field, why) for one value past each limit.
    const TOO_BIG: &[(&str, &str, &str, &str)] = &[
        (
            "runtime: {workers: 1025}",
            "",
            "runtime.workers",
            "limit of 1024",
        ),
        (
            "limits: {max_client_connections: 10000001}",
            "",
            "limits.max_client_connections",
            "limit of 10000000",
        ),
        (
            "resolver: {nameservers: ['10.0.0.1:53'], attempts: 11}",
            "",
            "resolver.attempts",
            "limit of 10",
        ),
        (
            "",
            "tcp: {keepalive_count: 128}",
            "backends[0].tcp.keepalive_count",
            "limit of 127",
        ),
        (
            "",
            "tcp: {keepalive_idle: 32768s}",
            "backends[0].tcp.keepalive_idle",
            "0s (off) or between 1s and 32767s",
        ),
        (
            "",
            "tcp: {keepalive_idle: 500ms}",
            "backends[0].tcp.keepalive_idle",
            "between 1s and 32767s",
        ),
        (
            "",
            "tcp: {keepalive_interval: 32768s}",
            "backends[0].tcp.keepalive_interval",
            "between 1s and 32767s",
        ),
        (
            "",
            "tcp: {keepalive_interval: 0s}",
            "backends[0].tcp.keepalive_interval",
            "between 1s and 32767s",
        ),
        (
            "",
            "pool: {min_idle_per_server: 1001, max_idle_per_server: 5000}",
            "backends[0].pool.min_idle_per_server",
            "limit of 1000",
        ),
        (
            "",
            "retries: {attempts: 11}",
            "backends[0].retries.attempts",
            "limit of 10",
        ),
        (
            "config: {watch_debounce: 366d}",
            "",
            "config.watch_debounce",
            "at most 365d",
        ),
        (
            "shutdown: {drain_timeout: 366d}",
            "",
            "shutdown.drain_timeout",
            "at most 365d",
        ),
        (
            "",
            "health: {check: {interval: 10000000000000000000s}}",
            "backends[0].health.check.interval",
            "at most 365d",
        ),
    ];

    #[test]
    fn one_past_each_limit_is_rejected_at_its_field() {
        for (top, backend, field, why) in TOO_BIG {
            match config(top, backend) {
                Ok(_) => panic!("accepted: {top} {backend}"),
                Err(e) => {
                    assert_eq!(e.field, *field, "{top} {backend}: {e}");
                    assert!(e.reason.contains(why), "{top} {backend}: {e}");
                }
            }
        }
    }

    #[test]
    fn every_limit_itself_is_accepted() -> Result<(), ConfigError> {
        let c = config(
            "runtime: {workers: 1024}\nlimits: {max_client_connections: 10000000}\n\
             resolver: {nameservers: ['10.0.0.1:53'], attempts: 10, timeout: 365d}\n\
             shutdown: {drain_timeout: 365d}\nconfig: {watch: true, watch_debounce: 365d}",
            "tcp: {keepalive_count: 127, keepalive_idle: 32767s, keepalive_interval: 32767s}, \
             pool: {min_idle_per_server: 1000, max_idle_per_server: 1000, idle_timeout: 365d}, \
             retries: {attempts: 10}, \
             health: {check: {interval: 365d, timeout: 365d}}",
        )?;
        assert_eq!(c.runtime.workers, super::MAX_WORKERS);
        assert_eq!(
            c.backends[0].tcp.keepalive_count,
            super::MAX_KEEPALIVE_COUNT
        );
        // Keepalive off needs no valid idle time; the smallest on is 1s.
        config("", "tcp: {keepalive_idle: 0s, keepalive_interval: 1s}")?;
        Ok(())
    }
}
