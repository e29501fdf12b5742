//! The idle timer of a stream (a body, a socket's writes): it only counts time spent
//! waiting for the peer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Measures how long a body has been waiting for its peer: armed when the body's
/// source is pending (we wait on the peer), disarmed by any progress. Time in which the
/// consumer does not poll (backpressure from the other side) is never counted, so a
/// slow reader cannot make a healthy sender time out.
#[derive(Debug)]
pub struct IdleTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl IdleTimer {
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            sleep: None,
            waiting: false,
        }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The source produced something.
    pub fn progress(&mut self) {
        self.waiting = false;
    }

    /// The source is pending: `Ready` once it has been pending for `limit` since it
    /// last made progress.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.limit;
            match &mut self.sleep {
                Some(s) => s.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match &mut self.sleep {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(t: &mut IdleTimer) -> bool {
        let waker = futures_util::task::noop_waker();
        t.poll_expired(&mut Context::from_waker(&waker)).is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn only_time_spent_waiting_counts() {
        let mut t = IdleTimer::new(Duration::from_secs(10));
        assert!(!expired(&mut t));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!expired(&mut t), "9 s of waiting is under the limit");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(expired(&mut t), "11 s is over it");
        t.progress();
        // The consumer did not poll for a minute (backpressure): not counted.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!expired(&mut t));
    }
}
