//! Forward listeners' metrics: policy denials by rule, and on-demand destinations.

use super::Name;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PolicyLabels {
    pub listener: Name,
    /// `deny[0]`, `builtin loopback 127.0.0.0/8`, `default`, `connect_ports`, ...
    pub rule: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DestinationLabels {
    pub listener: Name,
}

#[derive(Clone)]
pub struct ForwardMetrics {
    pub denied: Family<PolicyLabels, Counter>,
    pub destinations: Family<DestinationLabels, Gauge>,
    pub evicted: Family<DestinationLabels, Counter>,
}

impl ForwardMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            denied: Family::default(),
            destinations: Family::default(),
            evicted: Family::default(),
        };
        r.register(
            "policy_denied",
            "Forward-proxy and CONNECT requests refused by the egress policy, by listener and rule",
            m.denied.clone(),
        );
        r.register(
            "forward_destinations",
            "On-demand destinations (backends) a forward listener holds",
            m.destinations.clone(),
        );
        r.register(
            "forward_destinations_evicted",
            "On-demand destinations dropped (idle, or to make room under max_destinations)",
            m.evicted.clone(),
        );
        m
    }
}
