//! Timestamps that fit in an atomic: milliseconds since a fixed point of tokio's clock
//! (so tests can pause time).

use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// The fixed point.
pub fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

pub fn now_ms() -> u64 {
    u64::try_from(
        Instant::now()
            .saturating_duration_since(epoch())
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// The instant a [`now_ms`] value stands for.
pub fn instant(ms: u64) -> Instant {
    epoch() + Duration::from_millis(ms)
}
