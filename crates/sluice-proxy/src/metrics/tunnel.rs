//! Tunnels' metrics: open now, bytes each way, how long they lasted and how they
//! ended, by route and backend (both bounded by the config).

use super::Name;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TunnelLabels {
    pub route: Name,
    pub backend: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TunnelBytesLabels {
    pub route: Name,
    pub backend: Name,
    /// `upstream` (client to origin) or `downstream` (origin to client).
    pub direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TunnelEndLabels {
    pub route: Name,
    pub backend: Name,
    pub reason: &'static str,
}

#[derive(Clone)]
pub struct TunnelMetrics {
    pub open: Family<TunnelLabels, Gauge>,
    pub bytes: Family<TunnelBytesLabels, Counter>,
    pub duration: Family<TunnelLabels, Histogram>,
    pub closed: Family<TunnelEndLabels, Counter>,
}

/// The handles one tunnel updates, looked up once when it opens.
pub struct TunnelHandles {
    pub open: Gauge,
    pub up: Counter,
    pub down: Counter,
    pub duration: Histogram,
}

impl TunnelMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            open: Family::default(),
            bytes: Family::default(),
            // Tunnels last from seconds (a probe) to days (a WebSocket).
            duration: Family::new_with_constructor(|| {
                Histogram::new([1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0])
            }),
            closed: Family::default(),
        };
        r.register(
            "tunnels_open",
            "Open tunnels (upgraded connections such as WebSockets), by route and backend",
            m.open.clone(),
        );
        r.register(
            "tunnel_bytes",
            "Bytes relayed through tunnels, by direction (upstream: client to origin)",
            m.bytes.clone(),
        );
        r.register(
            "tunnel_duration_seconds",
            "How long tunnels lasted, from the switch to the close",
            m.duration.clone(),
        );
        r.register(
            "tunnels_closed",
            "Tunnels closed, by reason (closed, idle_timeout, shutdown, client_error, upstream_error)",
            m.closed.clone(),
        );
        m
    }

    pub fn handles(&self, l: &TunnelLabels) -> TunnelHandles {
        let bytes = |direction| {
            self.bytes
                .get_or_create(&TunnelBytesLabels {
                    route: l.route.clone(),
                    backend: l.backend.clone(),
                    direction,
                })
                .clone()
        };
        TunnelHandles {
            open: self.open.get_or_create(l).clone(),
            up: bytes("upstream"),
            down: bytes("downstream"),
            duration: self.duration.get_or_create(l).clone(),
        }
    }

    pub fn closed(&self, l: &TunnelLabels, reason: &'static str) {
        self.closed
            .get_or_create(&TunnelEndLabels {
                route: l.route.clone(),
                backend: l.backend.clone(),
                reason,
            })
            .inc();
    }
}
