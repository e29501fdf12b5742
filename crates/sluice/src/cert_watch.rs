//! Listener certificates are watched on disk: a renewal (cert-manager rewriting a
//! Secret volume, certbot replacing a file) triggers a reload, which re-reads every
//! certificate and swaps in those that changed if all of them load. Always on: a
//! renewed certificate that is never picked up is an outage waiting for its date.
//!
//! Each file is watched like the config file (`watch.rs`: its directory, its content
//! hash), so symlink swaps and atomic renames are seen.

use crate::reload::{Reloader, Trigger};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Stops watching when dropped.
pub struct CertWatch(tokio::task::JoinHandle<()>);

impl Drop for CertWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn start(reloader: &Arc<Reloader>, debounce: Duration) -> CertWatch {
    let reloader = reloader.clone();
    let mut files = reloader.tls_files();
    CertWatch(tokio::spawn(async move {
        loop {
            let current: Vec<PathBuf> = files.borrow_and_update().clone();
            let (tx, mut rx) = mpsc::channel(1);
            // Owned by this task: aborted with it (the watch's end drops them all).
            let mut forwarders = tokio::task::JoinSet::new();
            for p in &current {
                match crate::watch::watch(p, debounce) {
                    Ok(w) => {
                        forwarders.spawn(forward(w, tx.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "cannot watch a certificate file; renewals need a reload (SIGHUP)");
                    }
                }
            }
            drop(tx);
            if !current.is_empty() {
                tracing::debug!(files = current.len(), "watching listener certificate files");
            }
            let set_changed = loop {
                tokio::select! {
                    r = files.changed() => break r.is_ok(),
                    Some(()) = rx.recv() => {
                        reloader.reload(Trigger::Certificate).await;
                    }
                }
            };
            drop(forwarders);
            if !set_changed {
                return;
            }
        }
    }))
}

async fn forward(mut w: crate::watch::Watcher, tx: mpsc::Sender<()>) {
    while w.changed().await.is_some() {
        // Full: a reload is already due, and it reads every file.
        let _ = tx.try_send(());
    }
}
