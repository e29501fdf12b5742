//! TLS listeners' and HTTP/2 clients' metrics: handshakes by version, cipher and
//! result, handshake time, seconds until each certificate expires (computed at each
//! scrape, so it falls as time passes), and HTTP/2 client connections and streams.

use super::Name;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HandshakeLabels {
    pub listener: Name,
    /// `TLSv1_3`, `TLSv1_2`, or `-` when the handshake failed before agreeing one.
    pub version: &'static str,
    pub cipher: &'static str,
    /// `ok`, `timeout`, `client_closed`, or `error` (the log has the alert).
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
struct ExpiryLabels {
    listener: String,
    /// The certificate's first DNS name (or its file, when it has none).
    name: String,
}

#[derive(Clone)]
pub struct TlsMetrics {
    pub handshakes: Family<HandshakeLabels, Counter>,
    pub handshake_seconds: Family<ListenerLabel, Histogram>,
    pub h2_connections: Family<ListenerLabel, Gauge>,
    pub h2_streams: Family<ListenerLabel, Counter>,
    expiry: Arc<Expiry>,
}

/// Not-after times of the certificates each listener serves now (unix seconds).
#[derive(Debug, Default)]
struct Expiry(parking_lot::Mutex<BTreeMap<ExpiryLabels, f64>>);

impl Expiry {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let all = self.0.lock();
        let mut family = encoder.encode_descriptor(
            "sluice_tls_certificate_expiry_seconds",
            "Seconds until each listener certificate expires (negative: expired)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (labels, not_after) in all.iter() {
            ConstGauge::new(not_after - now).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

impl TlsMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            handshakes: Family::default(),
            // Full handshakes take about a millisecond on loopback; a slow client or
            // an overloaded core shows in the upper buckets.
            handshake_seconds: Family::new_with_constructor(|| {
                Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5])
            }),
            h2_connections: Family::default(),
            h2_streams: Family::default(),
            expiry: Arc::default(),
        };
        r.register(
            "tls_handshakes",
            "TLS handshakes on client listeners, by version, cipher suite and result",
            m.handshakes.clone(),
        );
        r.register(
            "tls_handshake_duration_seconds",
            "Time from the accept to a finished TLS handshake",
            m.handshake_seconds.clone(),
        );
        r.register(
            "client_h2_connections",
            "HTTP/2 client connections open now",
            m.h2_connections.clone(),
        );
        r.register(
            "client_h2_streams",
            "HTTP/2 streams (requests) clients opened",
            m.h2_streams.clone(),
        );
        m
    }

    /// Registers the expiry collector on the root registry (it names itself in full).
    pub fn register_expiry(&self, r: &mut Registry) {
        r.register_collector(Box::new(ExpiryView(self.expiry.clone())));
    }

    /// Replaces what `listener` serves: `certs` are (name, not-after unix seconds).
    pub fn set_certificates(&self, listener: &str, certs: &[(String, f64)]) {
        let mut all = self.expiry.0.lock();
        all.retain(|k, _| k.listener != listener);
        for (name, not_after) in certs {
            all.insert(
                ExpiryLabels {
                    listener: listener.to_string(),
                    name: name.clone(),
                },
                *not_after,
            );
        }
    }

    /// Keeps only the series of `listeners` (the others were removed by a reload).
    pub fn retain_listeners(&self, listeners: &[&str]) {
        self.expiry
            .0
            .lock()
            .retain(|k, _| listeners.contains(&k.listener.as_str()));
    }
}

/// The registry owns its collectors; this shares the map with [`TlsMetrics`].
#[derive(Debug)]
struct ExpiryView(Arc<Expiry>);

impl Collector for ExpiryView {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}
