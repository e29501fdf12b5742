//! The reload's metrics: how many reloads ended how, the generation serving, and when
//! the last one succeeded; plus the runtime's live task count (flat across reloads
//! when nothing leaks).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type ResultLabels = Vec<(&'static str, &'static str)>;

#[derive(Clone)]
pub struct ReloadMetrics {
    reloads: Family<ResultLabels, Counter>,
    kubernetes: Family<ResultLabels, Counter>,
    generation: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    pub tasks: Gauge,
}

impl ReloadMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reloads: Family::default(),
            kubernetes: Family::default(),
            generation: Gauge::default(),
            last_success: Gauge::default(),
            tasks: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("sluice");
        r.register(
            "config_reloads",
            "Config reloads by result (applied, unchanged, rejected)",
            m.reloads.clone(),
        );
        r.register(
            "config_generation",
            "The config generation serving (1 = the config sluice started with)",
            m.generation.clone(),
        );
        r.register(
            "config_last_reload_success_timestamp_seconds",
            "When the config serving was loaded (Unix time): the start, or the last reload that was not rejected",
            m.last_success.clone(),
        );
        r.register(
            "runtime_tasks",
            "Tasks alive on the data-path runtime (sampled every second)",
            m.tasks.clone(),
        );
        r.register(
            "kubernetes_translations",
            "Translations of the watched Kubernetes objects: changed (applied as a reload) or unchanged (a re-list, resync or unrelated change; nothing rebuilt)",
            m.kubernetes.clone(),
        );
        for result in ["changed", "unchanged"] {
            let _ = m.kubernetes.get_or_create(&vec![("result", result)]);
        }
        for result in ["applied", "unchanged", "rejected"] {
            let _ = m.reloads.get_or_create(&vec![("result", result)]);
        }
        m
    }

    /// A translation of the Kubernetes objects; `changed` is applied as a reload.
    pub fn kubernetes_translation(&self, changed: bool) {
        let result = if changed { "changed" } else { "unchanged" };
        self.kubernetes
            .get_or_create(&vec![("result", result)])
            .inc();
    }

    /// The config sluice started with is serving.
    pub fn started(&self) {
        self.generation.set(1);
        self.last_success.set(super::reload::now_unix());
    }

    pub fn record(&self, result: &'static str, generation: u64, at: f64) {
        self.reloads.get_or_create(&vec![("result", result)]).inc();
        self.generation.set(generation as i64);
        if result != "rejected" {
            self.last_success.set(at);
        }
    }
}
