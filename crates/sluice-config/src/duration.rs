//! Human-readable durations (`250ms`, `30s`, `1h 30m`) for serde, at most
//! [`MAX_DURATION`].

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, time::Duration};

/// The longest duration a config may give. Timeouts and intervals are added to
/// monotonic clock readings (`Instant + Duration` panics on overflow), so a value
/// like `10000000000000000000s` passed parsing and then panicked on the first
/// connection; a year is longer than any sensible timeout and far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// [`MAX_DURATION`] as users write it (humantime would print it in months).
pub const MAX_DURATION_TEXT: &str = "365d";

/// A duration written the way people write them: `500ms`, `30s`, `5m`, `1h`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    pub const fn get(self) -> Duration {
        self.0
    }
}

/// The units a duration is written in, largest first. Days are the largest on
/// purpose: humantime also writes months and years, whose lengths are averages
/// (`365d` came out as `11months 30days 3h 50m 24s`).
const UNITS: [(&str, u128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.as_nanos();
        if rest == 0 {
            return f.write_str("0s");
        }
        let mut sep = "";
        for (unit, nanos) in UNITS {
            let n = rest / nanos;
            if n > 0 {
                write!(f, "{sep}{n}{unit}")?;
                sep = " ";
                rest %= nanos;
            }
        }
        Ok(())
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like 500ms, 30s, 5m or 1h")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                let d = humantime::parse_duration(s.trim()).map_err(|e| {
                    E::custom(format!(
                        "invalid duration {s:?} ({e}); write e.g. 500ms, 30s, 5m, 1h"
                    ))
                })?;
                if d > MAX_DURATION {
                    return Err(E::custom(format!(
                        "invalid duration {s:?}: at most {MAX_DURATION_TEXT}"
                    )));
                }
                Ok(HumanDuration(d))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<HumanDuration, E> {
                if n == 0 {
                    return Ok(HumanDuration(Duration::ZERO));
                }
                Err(E::custom(format!(
                    "a bare number ({n}) is ambiguous: give a unit, e.g. {n}s or {n}ms"
                )))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<HumanDuration, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom("a duration cannot be negative")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Duration, String> {
        serde_yaml_ng::from_str::<HumanDuration>(s)
            .map(HumanDuration::get)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_maximum_is_accepted_and_one_more_is_not() -> Result<(), String> {
        assert_eq!(parse("365d")?, MAX_DURATION);
        assert_eq!(parse("8760h")?, MAX_DURATION);
        for too_long in ["365d 1ns", "366d", "1year", "10000000000000000000s"] {
            let e = parse(too_long).err().unwrap_or_default();
            assert!(
                e.starts_with(&format!("invalid duration {too_long:?}: at most 365d")),
                "{too_long}: {e}"
            );
        }
        Ok(())
    }

    #[test]
    fn durations_are_written_as_people_write_them_and_read_back() -> Result<(), String> {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(200), "200ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(90_500), "1m 30s 500ms"),
            (Duration::from_secs(3600), "1h"),
            (MAX_DURATION, "365d"),
            (Duration::new(1, 1), "1s 1ns"),
        ];
        for (d, text) in cases {
            assert_eq!(HumanDuration(d).to_string(), text);
            assert_eq!(parse(text)?, d, "{text}");
        }
        Ok(())
    }
}
