//! `sources.kubernetes`: the watchers' translations become the reloader's overlay,
//! applied like any reload (`unchanged` when the merged config is the same).

use crate::reload::{Overlay, Reloader, Trigger};
use sluice_config::KubernetesSource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub fn start(
    settings: KubernetesSource,
    reloader: Arc<Reloader>,
    ready: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let result = sluice_k8s::run(settings, |update| {
            let (reloader, ready) = (reloader.clone(), ready.clone());
            async move {
                let t = update.translation;
                reloader.set_overlay(Overlay {
                    backends: t.backends,
                    routes: t.routes,
                });
                let outcome = reloader.reload(Trigger::Kubernetes).await;
                // Ready after the first sync even if it was rejected: the file's
                // config serves, and the rejection is in the log and /config.
                if !ready.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        result = outcome.result,
                        "kubernetes: first sync applied; ready"
                    );
                }
            }
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "kubernetes source stopped; /readyz stays not ready");
        }
    })
}
