//! Building one backend of a config: its TLS client config, servers (from the
//! registry, by identity), limits, retry budget and connector. Off the hot path.

use crate::backend::{Backend, ServerTemplate, Settings};
use crate::budget::RetryBudget;
use crate::metrics::{BackendMetrics, Name, QueueMetrics};
use crate::registry::Registry;
use sluice_config::{ConfigError, Protocol, Tls};
use sluice_net::{Connector, SocketOptions, TlsClientConfig, TlsError};
use sluice_pool::{Limiter, Limits, Policy};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// TLS client configs built so far in this compile (backends sharing settings share one).
pub type TlsCache<'a> = HashMap<(&'a Tls, Protocol), (TlsClientConfig, u64)>;

pub fn backend<'a>(
    i: usize,
    b: &'a sluice_config::Backend,
    registry: &Registry,
    tls_configs: &mut TlsCache<'a>,
    origin: &str,
    definition: String,
) -> Result<Arc<Backend>, ConfigError> {
    let metrics = &registry.metrics;
    let fail = |field: String, reason: String| ConfigError {
        file: origin.to_string(),
        field,
        reason,
    };
    let tls_config = match &b.tls {
        None => None,
        Some(tls) => match tls_configs.get(&(tls, b.protocol)) {
            Some((c, ca)) => Some((c.clone(), *ca)),
            None => {
                let c = TlsClientConfig::new(tls, b.protocol).map_err(|e| {
                    let field = match e {
                        TlsError::CaFile { .. } | TlsError::EmptyCaFile(_) => "tls.ca_file",
                        _ => "tls",
                    };
                    fail(format!("backends[{i}].{field}"), e.to_string())
                })?;
                if !tls.verify {
                    tracing::warn!(backend = %b.name, "TLS certificate verification is OFF for this backend");
                }
                let ca = ca_fingerprint(tls);
                tls_configs.insert((tls, b.protocol), (c.clone(), ca));
                Some((c, ca))
            }
        },
    };
    let alpn = match b.protocol {
        Protocol::Http1 => "http/1.1",
        Protocol::Http2 => "h2",
        Protocol::Auto => "h2,http/1.1",
    };
    // How connections are made is part of what makes them interchangeable: two
    // backends with different source addresses or socket options never share.
    let link = link_identity(b);
    let mut templates = Vec::with_capacity(b.servers.len());
    for (j, addr) in b.servers.iter().enumerate() {
        let (tls, tls_identity, host) = match (&b.tls, &tls_config) {
            (Some(tls), Some((c, ca_hash))) => {
                let sni = tls.sni.as_deref().or(addr.host()).unwrap_or_default();
                let name = TlsClientConfig::server_name(sni)
                    .map_err(|e| fail(format!("backends[{i}].servers[{j}]"), e.to_string()))?;
                let ca = tls
                    .ca_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "system".into());
                (
                    Some((c.config.clone(), name)),
                    format!(
                        "tls;sni={sni};verify={};ca={ca}#{ca_hash:x};alpn={alpn}",
                        tls.verify
                    ),
                    sni.to_string(),
                )
            }
            _ => (
                None,
                format!("plain;proto={alpn}"),
                addr.host().unwrap_or("localhost").to_string(),
            ),
        };
        let host = match &b.health.check {
            Some(hc) => hc.host.clone().unwrap_or(host),
            None => host,
        };
        templates.push(ServerTemplate::new(
            addr.clone(),
            tls,
            format!("{tls_identity}|{link}"),
            host,
            b.weights.get(addr).copied().unwrap_or(1),
        ));
    }
    let name = Name::new(&b.name);
    let settings = Settings {
        connect_timeout: b.timeouts.connect.get(),
        response_timeout: b.timeouts.response.get(),
        response_body_idle: b.timeouts.response_body_idle.get(),
        tunnel_idle: b.timeouts.tunnel.get(),
        queue_timeout: b.timeouts.queue.get(),
        policy: Policy {
            max_idle: b.pool.max_idle_per_server,
            idle_timeout: b.pool.idle_timeout.get(),
            max_requests: b.pool.max_requests_per_connection,
            max_lifetime: b.pool.max_lifetime.get(),
        },
        protocol: b.protocol,
        tls: b.tls.is_some(),
        max_streams: b.pool.max_concurrent_streams,
        h2_ping: (!b.pool.h2_ping_interval.get().is_zero())
            .then(|| (b.pool.h2_ping_interval.get(), b.pool.h2_ping_timeout.get())),
        min_idle: b.pool.min_idle_per_server,
        balance: b.balance,
        hash_on: b.hash_on.clone(),
        retry_attempts: b.retries.attempts,
        retry_non_idempotent: b.retries.non_idempotent,
        passive: b.health.passive.clone(),
        check: b.health.check.clone(),
        dns: b.dns.clone(),
    };
    let bm = BackendMetrics::new(metrics, &name);
    let limiter = Limiter::new(
        Limits {
            per_member: b.limits.maxconn_per_server,
            total: b.limits.maxconn,
            max_queue: b.limits.max_queue,
            queue_timeout: b.timeouts.queue.get(),
        },
        registry.queue(&b.name),
        Arc::new(QueueMetrics {
            depth: bm.queue_depth.clone(),
            time: bm.queue_time.clone(),
        }),
    );
    let budget = RetryBudget::new(
        b.retries.budget.ratio,
        b.retries.budget.min_per_second,
        bm.budget_exhausted.clone(),
    );
    let keepalive = (!b.tcp.keepalive_idle.get().is_zero()).then(|| {
        (
            b.tcp.keepalive_idle.get(),
            b.tcp.keepalive_interval.get(),
            b.tcp.keepalive_count,
        )
    });
    let connector = Connector::new(
        SocketOptions {
            nodelay: b.tcp.nodelay,
            keepalive,
        },
        b.source_addresses.clone(),
    );
    let backend = Arc::new(Backend::new(
        name,
        settings,
        templates,
        connector,
        limiter,
        budget,
        bm,
        registry.catalog.clone(),
        definition,
    ));
    if let Some(p) = &b.policy {
        // Validation compiled it once already; static servers were checked there.
        let policy = p
            .compile()
            .map_err(|e| fail(format!("backends[{i}].policy.{}", e.field), e.reason))?;
        let egress = crate::egress::Egress::new(
            Arc::new(policy),
            None,
            Name::new(&format!("backend:{}", b.name)),
            metrics.forward.denied.clone(),
            false,
        );
        let _ = backend.egress.set(egress);
    }
    backend.metrics.servers.set(backend.servers().len() as i64);
    Ok(backend)
}

/// The source addresses and socket options, as they appear in the pool key.
fn link_identity(b: &sluice_config::Backend) -> String {
    let sources: Vec<String> = b.source_addresses.iter().map(|a| a.to_string()).collect();
    let t = &b.tcp;
    format!(
        "src={};nodelay={};keepalive={:?}/{:?}/{}",
        if sources.is_empty() {
            "any".to_string()
        } else {
            sources.join(",")
        },
        t.nodelay,
        t.keepalive_idle.get(),
        t.keepalive_interval.get(),
        t.keepalive_count
    )
}

/// A hash of the CA file's content, so a reload after the file changed opens new
/// connections (verified against the new CAs) instead of reusing the old ones.
pub fn ca_fingerprint(tls: &Tls) -> u64 {
    let Some(path) = &tls.ca_file else { return 0 };
    let bytes = sluice_config::read_bounded(path, sluice_config::limits::MAX_FILE_BYTES)
        .unwrap_or_default();
    std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(&bytes)
}
