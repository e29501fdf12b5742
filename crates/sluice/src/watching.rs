//! `config.watch: true`: a change of the config file's content triggers a reload (see
//! `watch` for how renames, in-place writes and ConfigMap symlink swaps are seen).

use crate::reload::{Reloader, Trigger};
use sluice_config::Config;
use std::path::Path;
use std::sync::Arc;

/// Starts watching if the config asks for it; watching stops when the handle drops.
/// (Turning `config.watch` on or off takes a restart: it is read here, at start.)
pub fn start(reloader: &Arc<Reloader>, config: &Config, path: &Path) -> Option<WatchTask> {
    if !config.config.watch {
        return None;
    }
    let mut watcher = match crate::watch::watch(path, config.config.watch_debounce.get()) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(config = %path.display(), error = %e, "cannot watch the config file; reload with SIGHUP or POST /reload");
            return None;
        }
    };
    tracing::info!(config = %path.display(), "watching the config file for changes");
    let reloader = reloader.clone();
    let task = tokio::spawn(async move {
        while watcher.changed().await.is_some() {
            reloader.reload(Trigger::Watch).await;
        }
    });
    Some(WatchTask(task))
}

/// Stops the watch when dropped.
pub struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
