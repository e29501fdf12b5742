//! Live reload: read → parse → validate → canonicalize → compare with the running
//! config. Equal: `unchanged`, nothing rebuilt. Different: the next generation is
//! compiled off the request path and swapped in with one pointer store; requests
//! already running finish on the generation they started with.

use crate::listeners::Listeners;
use crate::logging;
use crate::reload_metrics::ReloadMetrics;
use crate::tls_load::LoadedTls;
use serde::Serialize;
use serde_json::{json, Value};
use sluice_config::{Config, ConfigDiff, PoolChanges};
use sluice_proxy::{Proxy, Runtime};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// What asked for the reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Sighup,
    Admin,
    Watch,
    /// A listener certificate file changed.
    Certificate,
    /// The Kubernetes objects sluice watches translated to new routes or backends.
    Kubernetes,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sighup => "sighup",
            Self::Admin => "admin",
            Self::Watch => "watch",
            Self::Certificate => "certificate",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// The result of one reload, as `POST /reload` answers and `GET /config` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub result: &'static str,
    pub trigger: Trigger,
    pub generation: u64,
    /// Unix seconds.
    pub at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<ConfigDiff>,
    pub error: Option<String>,
    /// From reading the file to the new generation serving.
    pub took_ms: f64,
}

struct Current {
    /// The config file as last loaded, canonical: what the next reload compares with.
    file: Config,
    /// What actually runs: `file` with the settings only a restart applies kept from
    /// the start.
    effective: Config,
    generation: u64,
    last: Option<Outcome>,
    /// The listener certificates serving, read when `file` was last applied or when
    /// their files last changed.
    tls: LoadedTls,
}

pub struct Reloader {
    path: PathBuf,
    proxy: Arc<Proxy>,
    listeners: Mutex<Listeners>,
    current: parking_lot::Mutex<Arc<CurrentView>>,
    /// Serialises reloads (a reload waits for the one running).
    state: Mutex<Current>,
    metrics: ReloadMetrics,
    tls_files: tokio::sync::watch::Sender<Vec<PathBuf>>,
    /// Routes and backends from `sources.kubernetes`, added to the file's at every
    /// reload.
    overlay: parking_lot::Mutex<Arc<Overlay>>,
    /// The overlay's groups the last reload left out, and why.
    skipped: parking_lot::Mutex<Vec<Skipped>>,
}

/// What a config source adds to the file: one group per object (an Ingress).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Overlay {
    pub groups: Vec<sluice_k8s::Group>,
}

/// A group that does not validate with the file and the groups before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub error: String,
}

impl Overlay {
    /// `file` with the overlay's routes and backends after its own, validated. When
    /// the whole does not validate, the groups are added one at a time in order and
    /// each that breaks it is left out: one bad Ingress costs only itself. (Quadratic,
    /// but only then; the whole is tried first.)
    fn merge(&self, file: Config, origin: &str) -> (Config, Vec<Skipped>) {
        if self.groups.is_empty() {
            return (file, Vec::new());
        }
        let origin = format!("{origin} + kubernetes");
        let add = |c: &mut Config, g: &sluice_k8s::Group| {
            c.backends.extend(g.backends.iter().cloned());
            c.routes.extend(g.routes.iter().cloned());
            add_certificates(c, &g.certificates);
        };
        let mut all = file.clone();
        self.groups.iter().for_each(|g| add(&mut all, g));
        if sluice_config::validate_config(&origin, &mut all).is_ok() {
            return (all, Vec::new());
        }
        let (mut base, mut skipped) = (file, Vec::new());
        for g in &self.groups {
            let mut next = base.clone();
            add(&mut next, g);
            match sluice_config::validate_config(&origin, &mut next) {
                Ok(()) => base = next,
                Err(e) => skipped.push(Skipped {
                    kind: g.kind,
                    namespace: g.namespace.clone(),
                    name: g.name.clone(),
                    error: e.to_string(),
                }),
            }
        }
        (base, skipped)
    }
}

/// Adds certificates from Kubernetes to `sources.kubernetes.tls_listener`, after
/// the file's own (which keep their names: the first certificate to claim a name
/// serves it). Validation made sure that listener exists and has TLS.
fn add_certificates(c: &mut Config, certs: &[sluice_config::Certificate]) {
    if certs.is_empty() {
        return;
    }
    let name = c
        .sources
        .kubernetes
        .as_ref()
        .and_then(|k| k.tls_listener.clone());
    let tls = c
        .listeners
        .iter_mut()
        .filter(|l| Some(&l.name) == name.as_ref())
        .find_map(|l| l.tls.as_mut());
    if let Some(tls) = tls {
        for cert in certs {
            if !tls.certificates.contains(cert) {
                tls.certificates.push(cert.clone());
            }
        }
    }
}

/// A consistent copy for `GET /config`, readable without waiting for a reload.
pub struct CurrentView {
    pub config: Value,
    pub generation: u64,
    pub last: Option<Outcome>,
}

pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Reads, parses and validates the file (compiling is the next step). Returned in
/// file order: compile errors name entries by their index in the file.
pub fn read(path: &Path) -> Result<Config, String> {
    let config = sluice_config::load(path).map_err(|e| e.to_string())?;
    logging::check_level(&config.log.level).map_err(|reason| {
        sluice_config::ConfigError {
            file: path.display().to_string(),
            field: "log.level".into(),
            reason,
        }
        .to_string()
    })?;
    Ok(config)
}

/// `file` with what needs a restart taken from `running`.
fn effective(file: &Config, running: &Config) -> Config {
    let mut c = file.clone();
    c.runtime = running.runtime.clone();
    c.admin = running.admin.clone();
    c.log = running.log.clone();
    c.limits.max_client_connections = running.limits.max_client_connections;
    c.limits.when_full = running.limits.when_full;
    c.limits.unready_after = running.limits.unready_after;
    c.sources = running.sources.clone();
    c
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        config: Config,
        tls: LoadedTls,
        proxy: Arc<Proxy>,
        listeners: Listeners,
        metrics: ReloadMetrics,
    ) -> Self {
        let (files_tx, _) = tokio::sync::watch::channel(LoadedTls::files(&config));
        let file = sluice_config::canonical(&config);
        let view = CurrentView {
            config: serde_json::to_value(&file).unwrap_or(Value::Null),
            generation: 1,
            last: None,
        };
        metrics.started();
        Self {
            path,
            proxy,
            listeners: Mutex::new(listeners),
            current: parking_lot::Mutex::new(Arc::new(view)),
            state: Mutex::new(Current {
                effective: file.clone(),
                file,
                generation: 1,
                last: None,
                tls,
            }),
            metrics,
            tls_files: files_tx,
            overlay: parking_lot::Mutex::new(Arc::default()),
            skipped: parking_lot::Mutex::default(),
        }
    }

    /// The certificate files the running config reads (for the certificate watch).
    pub fn tls_files(&self) -> tokio::sync::watch::Receiver<Vec<PathBuf>> {
        self.tls_files.subscribe()
    }

    /// Replaces what the config source adds; the next reload applies it.
    pub fn set_overlay(&self, overlay: Overlay) {
        *self.overlay.lock() = Arc::new(overlay);
    }

    /// The overlay's groups the last reload that read the file left out.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.skipped.lock().clone()
    }

    pub fn metrics(&self) -> &ReloadMetrics {
        &self.metrics
    }

    pub fn view(&self) -> Arc<CurrentView> {
        self.current.lock().clone()
    }

    /// `shutdown.drain_timeout` of the config serving.
    pub async fn drain_timeout(&self) -> Duration {
        self.state
            .lock()
            .await
            .effective
            .shutdown
            .drain_timeout
            .get()
    }

    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    pub fn listeners(&self) -> &Mutex<Listeners> {
        &self.listeners
    }

    /// Runs one reload to its end and reports it (log, metrics, `GET /config`).
    pub async fn reload(&self, trigger: Trigger) -> Outcome {
        let mut cur = self.state.lock().await;
        let started = tokio::time::Instant::now();
        let result = match trigger {
            Trigger::Certificate => self.apply_certificates(&mut cur).await,
            _ => self.apply(&mut cur).await,
        };
        let took_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut outcome = Outcome {
            result: "",
            trigger,
            generation: cur.generation,
            at: now_unix(),
            changes: None,
            error: None,
            took_ms,
        };
        // Counted and published before it is logged: whoever sees the log line
        // (an operator, a test) then finds the counters and /config up to date.
        outcome.result = match &result {
            Ok(None) => "unchanged",
            Ok(Some(_)) => "applied",
            Err(_) => "rejected",
        };
        self.metrics
            .record(outcome.result, cur.generation, outcome.at);
        match result {
            Ok(None) => {}
            Ok(Some(diff)) => outcome.changes = Some(diff),
            Err(e) => outcome.error = Some(e),
        }
        cur.last = Some(outcome.clone());
        *self.current.lock() = Arc::new(CurrentView {
            config: serde_json::to_value(&cur.effective).unwrap_or(Value::Null),
            generation: cur.generation,
            last: cur.last.clone(),
        });
        match (&outcome.changes, &outcome.error) {
            (_, Some(e)) => {
                tracing::error!(trigger = trigger.as_str(), generation = cur.generation, error = %e, "config reload rejected");
            }
            (Some(diff), None) => {
                let summary = diff.lines().join("; ");
                if !diff.restart_required.is_empty() {
                    tracing::warn!(fields = %diff.restart_required.join(", "), "config reload: these settings need a restart and were not applied");
                }
                tracing::info!(trigger = trigger.as_str(), generation = cur.generation, changes = %summary, took_ms, "config reload applied");
            }
            (None, None) => {
                tracing::info!(
                    trigger = trigger.as_str(),
                    generation = cur.generation,
                    "config reload unchanged"
                );
            }
        }
        outcome
    }

    /// `Ok(None)`: unchanged. `Ok(Some(diff))`: applied. `Err`: rejected, nothing changed.
    async fn apply(&self, cur: &mut Current) -> Result<Option<ConfigDiff>, String> {
        let path = self.path.clone();
        let overlay = self.overlay.lock().clone();
        let (raw, file, tls, skipped) = tokio::task::spawn_blocking(move || {
            let (raw, skipped) = overlay.merge(read(&path)?, &path.display().to_string());
            // Certificates are read at every reload: a renewal on disk is a change
            // even when the config text is the same.
            let tls = crate::tls_load::load(&raw, &path.display().to_string())
                .map_err(|e| e.to_string())?;
            let canonical = sluice_config::canonical(&raw);
            Ok::<_, String>((raw, canonical, tls, skipped))
        })
        .await
        .map_err(|e| format!("reading the config failed: {e}"))??;
        *self.skipped.lock() = skipped;
        if file == cur.file {
            if tls.fingerprints() == cur.tls.fingerprints() {
                return Ok(None);
            }
            return self.swap_certificates(cur, tls).await.map(Some);
        }
        let mut diff = sluice_config::diff(&cur.file, &file);
        // Compiled in file order (errors name `backends[i]` as the file has them).
        let next_raw = effective(&raw, &cur.effective);
        let next_config = sluice_config::canonical(&next_raw);
        let old = self.proxy.runtime();
        // Compiling 10,000 routes takes a while: not on a worker thread that serves.
        let (next, registry) = (next_raw, self.proxy.registry().clone());
        let (origin, prev) = (self.path.display().to_string(), old.clone());
        let next = tokio::task::spawn_blocking(move || {
            sluice_proxy::compile(&next, &registry, Some(&prev), &origin)
        })
        .await
        .map_err(|e| format!("compiling the config failed: {e}"))?
        .map_err(|e| e.to_string())?;
        let fresh: Vec<_> = next
            .backends
            .iter()
            .filter(|b| !old.backends.iter().any(|o| Arc::ptr_eq(o, b)))
            .cloned()
            .collect();
        sluice_proxy::start_backends(&self.proxy, next.resolver.as_ref(), &fresh).await?;
        let mut listeners = self.listeners.lock().await;
        let bound = match listeners.bind_new(&next_config, &tls) {
            Ok(b) => b,
            Err(e) => {
                sluice_proxy::stop_backends(&fresh);
                return Err(e);
            }
        };
        diff.pools = Some(pool_changes(&old, &next));
        let next = Arc::new(next);
        let old = self.proxy.swap(next.clone());
        listeners.commit(
            &next_config,
            &tls,
            bound,
            &self.proxy,
            next_config.shutdown.drain_timeout.get(),
        );
        drop(listeners);
        tls.publish(self.proxy.metrics());
        cur.tls = tls;
        retire(&self.proxy, &old, &next);
        cur.generation = next.generation;
        cur.file = file;
        cur.effective = next_config;
        self.tls_files.send_if_modified(|files| {
            let next = LoadedTls::files(&cur.effective);
            let changed = *files != next;
            *files = next;
            changed
        });
        Ok(Some(diff))
    }
}

impl Reloader {
    /// Only certificate files changed: the listeners that read them get the new ones
    /// (for their next handshakes; open connections keep theirs), nothing else is
    /// rebuilt and the generation stays.
    /// A certificate file changed: the certificates of the config serving are read
    /// again, and the config file is not (an edit waiting for its SIGHUP stays
    /// waiting, and a broken one does not hold renewals back).
    async fn apply_certificates(&self, cur: &mut Current) -> Result<Option<ConfigDiff>, String> {
        let (config, origin) = (cur.effective.clone(), self.path.display().to_string());
        let tls = tokio::task::spawn_blocking(move || crate::tls_load::load(&config, &origin))
            .await
            .map_err(|e| format!("reading the certificates failed: {e}"))?
            .map_err(|e| e.to_string())?;
        if tls.fingerprints() == cur.tls.fingerprints() {
            return Ok(None);
        }
        self.swap_certificates(cur, tls).await.map(Some)
    }

    async fn swap_certificates(
        &self,
        cur: &mut Current,
        tls: LoadedTls,
    ) -> Result<ConfigDiff, String> {
        let (old, new) = (cur.tls.fingerprints(), tls.fingerprints());
        let mut diff = ConfigDiff::default();
        for (name, fp) in &new {
            if old.get(name) != Some(fp) {
                diff.listeners.changed.push(sluice_config::Changed {
                    id: name.clone(),
                    fields: vec!["tls (certificate files)".into()],
                    backend: None,
                });
            }
        }
        let mut listeners = self.listeners.lock().await;
        // Every listener of the serving config runs: nothing is bound here.
        let bound = listeners.bind_new(&cur.effective, &tls)?;
        let drain = cur.effective.shutdown.drain_timeout.get();
        listeners.commit(&cur.effective, &tls, bound, &self.proxy, drain);
        drop(listeners);
        tls.publish(self.proxy.metrics());
        cur.tls = tls;
        Ok(diff)
    }
}

/// Pools (keys) the old generation used that the new one keeps, adds, and drops.
fn pool_changes(old: &Runtime, next: &Runtime) -> PoolChanges {
    let (a, b): (BTreeSet<String>, BTreeSet<String>) = (old.pool_keys(), next.pool_keys());
    PoolChanges {
        kept: a.intersection(&b).count(),
        added: b.difference(&a).count(),
        removed: a.difference(&b).count(),
    }
}

/// After the swap: backends of the old generation that the new one does not use stop
/// their background work; their servers that no new backend has take no new request
/// and their idle connections close (in-flight requests finish); the metric series of
/// backend names that left are removed.
fn retire(proxy: &Proxy, old: &Runtime, next: &Runtime) {
    let gone: Vec<_> = old
        .backends
        .iter()
        .filter(|b| !next.backends.iter().any(|n| Arc::ptr_eq(n, b)))
        .cloned()
        .collect();
    sluice_proxy::stop_backends(&gone);
    sluice_proxy::retire_forwards(old, next, proxy.metrics());
    let live_keys = next.pool_keys();
    let kept: Vec<_> = next.backends.iter().map(|n| n.servers()).collect();
    for b in &gone {
        for s in b.servers().iter() {
            let still_used = kept
                .iter()
                .any(|list| list.iter().any(|n| Arc::ptr_eq(n, s)));
            if still_used {
                continue;
            }
            s.removed.store(true, std::sync::atomic::Ordering::Relaxed);
            if !live_keys.contains(s.key.identity()) {
                proxy.pools().forget(s);
            }
        }
        if next.backend(b.name.as_str()).is_none() {
            proxy.metrics().remove_backend(&b.name);
        }
    }
}

/// The JSON answer of `POST /reload`: 200 unless rejected (400).
pub fn answer(o: &Outcome) -> (u16, String) {
    let status = if o.result == "rejected" { 400 } else { 200 };
    let body = serde_json::to_string(o).unwrap_or_else(|_| "{}".into());
    (status, body)
}

/// The JSON of `GET /config`; `process`: what start decided (workers).
pub fn config_json(view: &CurrentView, process: &Value) -> String {
    json!({
        "generation": view.generation,
        "config": view.config,
        "last_reload": view.last,
        "process": process,
    })
    .to_string()
}
