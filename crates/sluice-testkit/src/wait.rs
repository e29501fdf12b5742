//! Waiting for a condition without sleeping: re-check whenever the state is announced changed.

use std::time::Duration;
use tokio::{sync::Notify, time::Instant};

/// How long the `wait_*` helpers wait unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Waits until `ready()` holds, re-checking it each time `changed` is notified
/// (with `notify_waiters`). Returns whether it held before `timeout` ran out.
pub(crate) async fn until(
    changed: &Notify,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        // Register interest before checking, so a change in between is not missed.
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if ready() {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ready();
        }
    }
}
