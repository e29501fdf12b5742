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

/// The `Date` of a response sent now: formatted once a second per thread, since every
/// response needs one (RFC 9110 §6.6.1) and formatting costs more than the lookup.
pub fn http_date() -> http::HeaderValue {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, Option<http::HeaderValue>)> = const { RefCell::new((0, None)) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        match &c.1 {
            Some(v) if c.0 == secs => v.clone(),
            _ => {
                let v = http::HeaderValue::from_str(&httpdate::fmt_http_date(now)).unwrap_or_else(
                    |_| http::HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
                );
                *c = (secs, Some(v.clone()));
                v
            }
        }
    })
}
