//! Retry budget: retries may add at most `ratio` × requests (over a sliding 10 s
//! window) plus `min_per_second`, so when a backend fails for everyone, retries
//! cannot multiply its load (the retry-storm problem; Envoy and Finagle do the same).

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

const WINDOW: usize = 10;

pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    window: Mutex<Window>,
    pub exhausted: Counter,
}

#[derive(Default)]
struct Window {
    /// The second the newest bucket belongs to.
    second: u64,
    /// (requests, retries) per second, ring-indexed by `second % WINDOW`.
    buckets: [(u32, u32); WINDOW],
}

impl Window {
    fn advance(&mut self, now: u64) {
        if now > self.second {
            let steps = (now - self.second).min(WINDOW as u64);
            for i in 1..=steps {
                self.buckets[((self.second + i) % WINDOW as u64) as usize] = (0, 0);
            }
            self.second = now;
        }
    }

    fn current(&mut self) -> &mut (u32, u32) {
        &mut self.buckets[(self.second % WINDOW as u64) as usize]
    }
}

impl RetryBudget {
    pub fn new(ratio: f64, min_per_second: u32, exhausted: Counter) -> Self {
        Self {
            ratio,
            min_per_second,
            window: Mutex::new(Window::default()),
            exhausted,
        }
    }

    fn now() -> u64 {
        crate::clock::now_ms() / 1000
    }

    /// Counts one request (not a retry).
    pub fn request(&self) {
        let mut w = self.window.lock();
        w.advance(Self::now());
        let c = w.current();
        c.0 = c.0.saturating_add(1);
    }

    /// Takes one retry from the budget; false (and counted) when it is spent.
    pub fn try_retry(&self) -> bool {
        let mut w = self.window.lock();
        w.advance(Self::now());
        let (requests, retries) = w.buckets.iter().fold((0u64, 0u64), |(a, b), (r, t)| {
            (a + u64::from(*r), b + u64::from(*t))
        });
        let allowed =
            (requests as f64 * self.ratio) as u64 + u64::from(self.min_per_second) * WINDOW as u64;
        if retries >= allowed {
            drop(w);
            self.exhausted.inc();
            return false;
        }
        let c = w.current();
        c.1 = c.1.saturating_add(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_capped_by_share_of_requests_plus_floor() {
        let b = RetryBudget::new(0.2, 1, Counter::default());
        for _ in 0..100 {
            b.request();
        }
        // 100 requests × 0.2 + 1/s × 10 s = 30 retries.
        let granted = (0..100).filter(|_| b.try_retry()).count();
        assert_eq!(granted, 30);
        assert_eq!(b.exhausted.get(), 70);
        // The window slides: after 10 s the old requests and retries are forgotten.
        tokio::time::advance(std::time::Duration::from_secs(11)).await;
        let granted = (0..100).filter(|_| b.try_retry()).count();
        assert_eq!(granted, 10, "only the floor is left");
    }
}
