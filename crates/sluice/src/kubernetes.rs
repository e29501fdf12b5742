//! `sources.kubernetes`: the watchers' translations become the reloader's overlay,
//! applied like any reload (`unchanged` when the merged config is the same).

use crate::reload::{Overlay, Reloader, Trigger};
use sluice_config::KubernetesSource;
use sluice_k8s::{Report, Translation};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub fn start(
    settings: KubernetesSource,
    reloader: Arc<Reloader>,
    ready: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = sluice_k8s::run(settings, ReloadSink { reloader, ready }).await {
            tracing::error!(error = %e, "kubernetes source stopped; /readyz stays not ready");
        }
    })
}

struct ReloadSink {
    reloader: Arc<Reloader>,
    ready: Arc<AtomicBool>,
}

impl sluice_k8s::Sink for ReloadSink {
    fn apply(&mut self, t: Translation) -> impl Future<Output = Vec<Report>> + Send {
        let (reloader, ready) = (self.reloader.clone(), self.ready.clone());
        async move {
            reloader.metrics().kubernetes_translation(true);
            reloader.set_overlay(Overlay { groups: t.groups });
            let outcome = reloader.reload(Trigger::Kubernetes).await;
            // Ready after the first sync even if it was rejected: the file's
            // config serves, and the rejection is in the log and /config.
            if !ready.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    result = outcome.result,
                    "kubernetes: first sync applied; ready"
                );
            }
            reloader
                .skipped()
                .into_iter()
                .map(|s| Report {
                    kind: s.kind,
                    namespace: s.namespace,
                    name: s.name,
                    reason: "InvalidConfig",
                    message: format!("{}; {} skipped", s.error, s.kind),
                })
                .collect()
        }
    }

    fn unchanged(&mut self) {
        self.reloader.metrics().kubernetes_translation(false);
    }
}
