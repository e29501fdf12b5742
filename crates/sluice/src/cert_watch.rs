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

/// The first files are watched before this returns (so before sluice reports itself
/// started, and a renewal right after is seen); later sets when a reload changes them.
pub fn start(reloader: &Arc<Reloader>, debounce: Duration) -> CertWatch {
    let reloader = reloader.clone();
    let mut files = reloader.tls_files();
    let mut armed = arm(&files.borrow_and_update().clone(), debounce);
    CertWatch(tokio::spawn(async move {
        loop {
            let (forwarders, mut rx) = armed;
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
            armed = arm(&files.borrow_and_update().clone(), debounce);
        }
    }))
}

/// Watches `files`; a change of any of them arrives on the receiver. The tasks are
/// owned by the returned set: they end when it is dropped.
fn arm(files: &[PathBuf], debounce: Duration) -> (tokio::task::JoinSet<()>, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel(1);
    let mut forwarders = tokio::task::JoinSet::new();
    for p in files {
        match crate::watch::watch(p, debounce) {
            Ok(w) => {
                forwarders.spawn(forward(w, tx.clone()));
            }
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e, "cannot watch a certificate file; renewals need a reload (SIGHUP)");
            }
        }
    }
    if !files.is_empty() {
        tracing::debug!(files = files.len(), "watching listener certificate files");
    }
    (forwarders, rx)
}

async fn forward(mut w: crate::watch::Watcher, tx: mpsc::Sender<()>) {
    while w.changed().await.is_some() {
        // Full: a reload is already due, and it reads every file.
        let _ = tx.try_send(());
    }
}
