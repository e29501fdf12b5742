//! The tick that tells a listener's idle keep-alive connections to park.
//!
//! A connection that waits for its next request parks once it has waited
//! `PARK_AFTER`. A timer of its own per wait would cost a timer registration per
//! request, and, when it is the runtime's earliest timer (every connection was busy
//! when the runtime last slept, as with HTTP/2 upstreams), an eventfd write to re-arm
//! the runtime's sleep: 0.7 extra syscalls per request in `bench/h2`. Instead one task
//! per listener setting ticks every `PARK_AFTER` while any connection waits, and each
//! waiting connection checks at a tick whether it has waited long enough: it parks 1 to
//! 2 ticks into its wait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub struct IdleTick {
    period: Duration,
    notify: Notify,
    /// Connections waiting for a tick now.
    waiting: AtomicUsize,
    /// The ticking task runs (it stops when nothing waits).
    running: AtomicBool,
}

/// One connection's place among the waiters; it leaves when dropped.
pub struct Waiting<'a>(&'a IdleTick);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

impl IdleTick {
    pub fn new(period: Duration) -> Arc<Self> {
        Arc::new(Self {
            period,
            notify: Notify::new(),
            waiting: AtomicUsize::new(0),
            running: AtomicBool::new(false),
        })
    }

    /// Joins the waiters (starting the ticks if they had stopped).
    pub fn join(self: &Arc<Self>) -> Waiting<'_> {
        self.waiting.fetch_add(1, SeqCst);
        if !self.running.swap(true, SeqCst) {
            tokio::spawn(tick(self.clone()));
        }
        Waiting(self)
    }

    /// The next tick, for a connection that joined.
    pub fn next(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

async fn tick(t: Arc<IdleTick>) {
    loop {
        tokio::time::sleep(t.period).await;
        t.notify.notify_waiters();
        if t.waiting.load(SeqCst) == 0 {
            t.running.store(false, SeqCst);
            // A connection that joined between the load and the store saw the task
            // still running: take the ticks up again for it.
            if t.waiting.load(SeqCst) == 0 || t.running.swap(true, SeqCst) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waiters_get_ticks_and_the_task_stops_when_none_wait() {
        let t = IdleTick::new(Duration::from_millis(20));
        {
            let _w = t.join();
            let start = tokio::time::Instant::now();
            t.next().await;
            assert_eq!(start.elapsed(), Duration::from_millis(20));
            t.next().await;
            assert_eq!(start.elapsed(), Duration::from_millis(40));
        }
        // Nothing waits: the task ends at its next tick.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!t.running.load(SeqCst));
        let _w = t.join();
        assert!(t.running.load(SeqCst), "started again");
        tokio::time::timeout(Duration::from_millis(21), t.next())
            .await
            .expect("ticks again");
    }
}
