//! Runtime DNS: each server host name is resolved at start and again when its
//! records' TTL runs out (clamped to `dns.min_ttl`..`dns.max_ttl`). Every A record
//! becomes a server (AAAA records when the name has no A record). A failed lookup
//! keeps the last good addresses; an address that leaves the answer stops taking new
//! requests, its idle connections are closed and its in-flight requests finish.

use crate::backend::Backend;
use crate::registry::Registry;
use crate::{health, limit};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, ResolveErrorKind, TokioResolver};
use sluice_net::Endpoint;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// The configured name servers, or the system's (`/etc/resolv.conf`).
    pub fn new(config: Option<&sluice_config::Resolver>) -> Result<Self, String> {
        let mut builder = match config {
            Some(c) => {
                let mut group = Vec::with_capacity(c.nameservers.len() * 2);
                for ns in &c.nameservers {
                    group.push(NameServerConfig::new(*ns, Protocol::Udp));
                    group.push(NameServerConfig::new(*ns, Protocol::Tcp));
                }
                let config =
                    ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::from(group));
                let mut b =
                    TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
                b.options_mut().timeout = c.timeout.get();
                b.options_mut().attempts = c.attempts;
                b
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        // sluice schedules its own lookups by TTL; a cache would only hide changes.
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        Ok(Self {
            inner: builder.build(),
        })
    }

    /// The addresses of `host` and the smallest TTL among them.
    pub(crate) async fn lookup(&self, host: &str) -> Result<(Vec<IpAddr>, Duration), String> {
        let found = self
            .inner
            .lookup_ip(host)
            .await
            .map_err(|e| format!("{host}: {}", failure(&e)))?;
        let ttl = found
            .as_lookup()
            .records()
            .iter()
            .map(|r| r.ttl())
            .min()
            .unwrap_or(0);
        let mut ips: Vec<IpAddr> = found.iter().collect();
        ips.sort_unstable();
        ips.dedup();
        if ips.is_empty() {
            return Err(format!("{host}: no address records"));
        }
        Ok((ips, Duration::from_secs(u64::from(ttl))))
    }
}

/// Why a lookup failed, in one line for the log and the 502 body: hickory's own
/// message for a missing name is a debug dump of the query (`no records found for
/// Query { name: Name("example.com.") … }`).
fn failure(e: &ResolveError) -> String {
    let ResolveErrorKind::Proto(proto) = e.kind() else {
        return format!("DNS lookup failed: {e}");
    };
    match proto.kind() {
        ProtoErrorKind::NoRecordsFound { response_code, .. } => match *response_code {
            ResponseCode::NXDomain => "no such host (NXDOMAIN)".into(),
            // The name exists but has no A or AAAA record (NODATA).
            ResponseCode::NoError => "no address records".into(),
            ResponseCode::ServFail => "the name server failed (SERVFAIL)".into(),
            ResponseCode::Refused => "the name server refused the query (REFUSED)".into(),
            code => format!(
                "the name server answered {code} (rcode {})",
                u16::from(code)
            ),
        },
        ProtoErrorKind::Timeout => "DNS query timed out".into(),
        ProtoErrorKind::Io(io) => format!("cannot reach the name server: {io}"),
        ProtoErrorKind::NoConnections => "cannot reach the name server".into(),
        other => format!("DNS lookup failed: {other}"),
    }
}

/// Resolves each host name of `backend` once now, then keeps it fresh in the background.
pub async fn start(resolver: &Resolver, backend: &Arc<Backend>, registry: &Arc<Registry>) {
    let names = backend
        .templates
        .iter()
        .enumerate()
        .filter_map(|(index, t)| t.hostname().map(|(h, p)| (index, h.to_string(), p)));
    let first = names.map(|(index, host, port)| async move {
        let result = resolver.lookup(&host).await;
        let mut wait = apply(registry, backend, index, &host, port, result);
        let (resolver, owner, registry) = (resolver.clone(), backend.clone(), registry.clone());
        let backend = owner.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(wait).await;
                let result = resolver.lookup(&host).await;
                wait = apply(&registry, &backend, index, &host, port, result);
            }
        });
        owner.track(task.abort_handle());
    });
    futures_util::future::join_all(first).await;
}

/// Applies one lookup result; returns when to look again.
fn apply(
    registry: &Registry,
    backend: &Arc<Backend>,
    index: usize,
    host: &str,
    port: u16,
    result: Result<(Vec<IpAddr>, Duration), String>,
) -> Duration {
    let dns = &backend.settings.dns;
    match result {
        Ok((ips, ttl)) => {
            backend.metrics.dns_refreshes.inc();
            // A destination's addresses pass its policy first: the servers (the only
            // addresses sluice connects to) are the allowed ones.
            let ips = match backend.egress.get() {
                Some(egress) => egress.filter(host, port, &ips),
                None => ips,
            };
            let endpoints: Vec<Endpoint> = ips
                .iter()
                .map(|ip| Endpoint::Tcp(SocketAddr::new(*ip, port)))
                .collect();
            let (added, removed) = backend.set_endpoints(index, &endpoints);
            for s in &added {
                health::spawn(backend, s, &registry.pools, &registry.metrics);
            }
            for s in &removed {
                registry.pools.forget(s);
            }
            if !added.is_empty() || !removed.is_empty() {
                let now: Vec<String> = ips.iter().map(ToString::to_string).collect();
                tracing::info!(backend = %backend.name.as_str(), host, addresses = %now.join(","), added = added.len(), removed = removed.len(), "server addresses changed");
            }
            *backend.dns_error.lock() = None;
            backend.metrics.servers.set(backend.servers().len() as i64);
            limit::kick(backend);
            ttl.clamp(dns.min_ttl.get(), dns.max_ttl.get())
        }
        Err(e) => {
            backend.metrics.dns_failures.inc();
            if backend.servers().is_empty() {
                tracing::warn!(backend = %backend.name.as_str(), host, error = %e, "DNS lookup failed; no address yet (requests get 502 dns_failed)");
                *backend.dns_error.lock() = Some(e);
            } else {
                tracing::warn!(backend = %backend.name.as_str(), host, error = %e, "DNS lookup failed; keeping the last good addresses");
            }
            dns.retry_interval.get()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::failure;
    use hickory_resolver::proto::op::{Query, ResponseCode};
    use hickory_resolver::proto::{ProtoError, ProtoErrorKind};
    use hickory_resolver::ResolveError;

    fn no_records(response_code: ResponseCode) -> ResolveError {
        ProtoError::from(ProtoErrorKind::NoRecordsFound {
            query: Box::new(Query::default()),
            soa: None,
            ns: None,
            negative_ttl: None,
            response_code,
            trusted: true,
            authorities: None,
        })
        .into()
    }

    #[test]
    fn lookup_failures_read_as_one_human_line() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases = [
            (
                no_records(ResponseCode::NXDomain),
                "no such host (NXDOMAIN)",
            ),
            (no_records(ResponseCode::NoError), "no address records"),
            (
                no_records(ResponseCode::ServFail),
                "the name server failed (SERVFAIL)",
            ),
            (
                no_records(ResponseCode::NotImp),
                "the name server answered Not Implemented (rcode 4)",
            ),
            (
                ProtoError::from(ProtoErrorKind::Timeout).into(),
                "DNS query timed out",
            ),
            (
                ResolveError::from(io),
                "cannot reach the name server: connection refused",
            ),
        ];
        for (e, expected) in cases {
            assert_eq!(failure(&e), expected, "{e}");
        }
    }
}
