//! Reads the certificates of every TLS listener of a config, at start, at `sluice
//! check` and at each reload. All of them load or none is used: a reload with one bad
//! file is rejected (naming the file and why) and the running certificates serve on.

use sluice_config::{Config, ConfigError};
use sluice_proxy::{Metrics, TlsSettings};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Warned about (log, `sluice check`) when less than this is left.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// The TLS of each listener, by listener name.
#[derive(Default, Clone)]
pub struct LoadedTls(BTreeMap<String, Arc<TlsSettings>>);

impl LoadedTls {
    pub fn get(&self, listener: &str) -> Option<Arc<TlsSettings>> {
        self.0.get(listener).cloned()
    }

    /// Per listener, the hash of its files' contents: equal means nothing changed.
    pub fn fingerprints(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .map(|(n, t)| (n.clone(), t.server.fingerprint))
            .collect()
    }

    /// Every file the certificates were read from (to watch them), but those the
    /// Kubernetes source writes: a change of theirs is a new file and a new config.
    pub fn files(config: &Config) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let written = config
            .sources
            .kubernetes
            .as_ref()
            .map(|k| k.secrets_dir.clone());
        for tls in config.listeners.iter().filter_map(|l| l.tls.as_ref()) {
            for c in &tls.certificates {
                files.push(c.cert_file.clone());
                files.push(c.key_file.clone());
                files.extend(c.ocsp_file.clone());
            }
            files.extend(tls.client_ca_file.clone());
        }
        files.retain(|f| written.as_ref().is_none_or(|d| !f.starts_with(d)));
        files.sort();
        files.dedup();
        files
    }

    /// Shows the certificates in the expiry metric and warns about those near it.
    pub fn publish(&self, metrics: &Metrics) {
        let names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        metrics.tls.retain_listeners(&names);
        let now = SystemTime::now();
        for (listener, t) in &self.0 {
            let mut series = Vec::new();
            for c in &t.server.certs {
                let name = c
                    .info
                    .dns_names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| c.cert_file.clone());
                let not_after = c
                    .info
                    .not_after
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                series.push((name.clone(), not_after));
                let left = c.info.remaining(now);
                if c.info.expired(now) {
                    tracing::error!(listener = %listener, certificate = %c.cert_file, name = %name, "listener certificate has expired; clients will refuse it");
                } else if left < EXPIRY_WARNING {
                    tracing::warn!(listener = %listener, certificate = %c.cert_file, name = %name, days_left = left.as_secs() / 86400, "listener certificate expires soon");
                }
            }
            metrics.tls.set_certificates(listener, &series);
        }
    }
}

/// Loads the TLS of every listener of `config`; `origin` names the config file.
pub fn load(config: &Config, origin: &str) -> Result<LoadedTls, ConfigError> {
    let mut all = BTreeMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(tls) = &l.tls else { continue };
        let http2 = l.http2_enabled();
        let server = sluice_net::ServerTls::load(&l.name, tls, http2).map_err(|e| ConfigError {
            file: origin.to_string(),
            field: format!("listeners[{i}].tls"),
            reason: if e.file.is_empty() {
                e.reason
            } else {
                format!("{}: {}", e.file, e.reason)
            },
        })?;
        all.insert(
            l.name.clone(),
            Arc::new(TlsSettings {
                server,
                source: tls.clone(),
                http2,
            }),
        );
    }
    Ok(LoadedTls(all))
}
