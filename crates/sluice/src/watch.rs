//! Config file watch (`config.watch: true`): a notification after `debounce` of quiet
//! following a change of the file's bytes.
//!
//! The parent directory is watched, not the file: an editor's atomic save (write a temp
//! file, rename it over the target) and a Kubernetes ConfigMap update both replace the
//! inode, and a watch on the old inode would go silent. Events are only a hint that the
//! file may have changed; what fires is a change of its content hash, checked once per
//! debounced burst. So a touch, a rewrite with the same bytes, or a ConfigMap swap that
//! leaves this file alone give nothing, and nothing that changes the bytes is missed for
//! lack of the right event on the right name.
//!
//! Not seen: a symlinked file whose target, in another directory, is edited in place
//! (only this directory is watched). ConfigMaps never do that; they swap `..data`.

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher as _};
use std::ffi::OsStr;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

#[cfg(test)]
mod tests;

/// A ConfigMap volume holds `name -> ..data/name` and `..data -> ..<timestamp>/`; an update
/// renames a fresh `..data_tmp` link over `..data`, so the file's own name sees no event.
const CONFIGMAP_LINK: &str = "..data";

/// Watches one config file; dropping it stops the watch.
pub(crate) struct Watcher {
    changes: mpsc::Receiver<()>,
    /// Read by the tests, to know a burst was looked at without sleeping.
    #[cfg_attr(not(test), allow(dead_code))]
    stats: watch::Receiver<Stats>,
    task: tokio::task::AbortHandle,
    _notify: notify::RecommendedWatcher,
}

/// What the debounce loop has done, so tests can tell "nothing fired" from "not yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Debounced bursts whose file content was checked.
    pub(crate) bursts: u64,
    /// Of those, the ones where the content had changed.
    pub(crate) fired: u64,
}

/// Starts watching `path`. Must be called within a tokio runtime, which runs the debounce.
/// The content at this moment is the baseline the first change is measured against.
pub(crate) fn watch(path: &Path, debounce: Duration) -> Result<Watcher, String> {
    let shown = path.display();
    let name = path
        .file_name()
        .ok_or_else(|| format!("config watch: {shown} does not name a file"))?
        .to_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| format!("config watch of {shown}: {e}"))?;

    // One slot: a pending hint already means "check after the quiet time", so a full
    // channel loses nothing, and notify's thread never waits on us.
    let (hint_tx, hints) = mpsc::channel(1);
    let mut notify = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let hint = match event {
            Ok(event) => relevant(&event, &name),
            Err(e) => {
                tracing::warn!(error = %e, "config watch: event error; re-checking the file");
                true
            }
        };
        if hint {
            let _ = hint_tx.try_send(());
        }
    })
    .map_err(|e| format!("config watch of {shown}: {e}"))?;
    notify
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| {
            format!(
                "config watch of {shown}: cannot watch {}: {e}",
                dir.display()
            )
        })?;

    // Taken after the watch is in place, so a change from here on is never missed.
    let baseline = fingerprint(path).ok();
    let (change_tx, changes) = mpsc::channel(1);
    let (stats_tx, stats) = watch::channel(Stats::default());
    let task = runtime.spawn(debounce_loop(
        path.to_path_buf(),
        debounce,
        hints,
        change_tx,
        stats_tx,
        baseline,
    ));
    Ok(Watcher {
        changes,
        stats,
        task: task.abort_handle(),
        _notify: notify,
    })
}

impl Watcher {
    /// Resolves when the file's content has changed (several changes before this is
    /// called give one); `None` once the watch has stopped.
    pub(crate) async fn changed(&mut self) -> Option<()> {
        self.changes.recv().await
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn stats(&self) -> watch::Receiver<Stats> {
        self.stats.clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether an event in the directory may have changed the file's bytes.
fn relevant(event: &Event, name: &OsStr) -> bool {
    if event.need_rescan() {
        return true; // the kernel dropped events: anything may have happened
    }
    // Our own reads of the file open it; reacting to that would re-check forever.
    if let EventKind::Access(kind) = event.kind {
        if kind != AccessKind::Close(AccessMode::Write) {
            return false;
        }
    }
    event
        .paths
        .iter()
        .filter_map(|p| p.file_name())
        .any(|n| n == name || n == CONFIGMAP_LINK)
}

async fn debounce_loop(
    path: PathBuf,
    debounce: Duration,
    mut hints: mpsc::Receiver<()>,
    changes: mpsc::Sender<()>,
    stats: watch::Sender<Stats>,
    mut last: Option<u64>,
) {
    while hints.recv().await.is_some() {
        loop {
            match tokio::time::timeout(debounce, hints.recv()).await {
                Ok(Some(())) => continue, // not quiet yet: the burst goes on
                Ok(None) => return,
                Err(_quiet) => break,
            }
        }
        let fired = match read_fingerprint(path.clone()).await {
            Ok(now) => last.replace(now) != Some(now),
            Err(e) => {
                // Mid-swap or deleted: nothing to reload yet. The baseline stays, so the
                // file coming back unchanged does not fire either.
                tracing::warn!(path = %path.display(), error = %e, "config watch: cannot read");
                false
            }
        };
        if fired
            && matches!(
                changes.try_send(()),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        {
            return;
        }
        stats.send_modify(|s| {
            s.bursts += 1;
            s.fired += u64::from(fired);
        });
    }
}

async fn read_fingerprint(path: PathBuf) -> std::io::Result<u64> {
    tokio::task::spawn_blocking(move || fingerprint(&path))
        .await
        .map_err(std::io::Error::other)?
}

/// A hash of the bytes (length included): 64 bits make a missed change by collision
/// negligible, and the file need not be kept in memory.
fn fingerprint(path: &Path) -> std::io::Result<u64> {
    let bytes = std::fs::read(path)?;
    let mut h = DefaultHasher::new();
    h.write_usize(bytes.len());
    h.write(&bytes);
    Ok(h.finish())
}
