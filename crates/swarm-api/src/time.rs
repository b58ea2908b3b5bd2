//! Conversions between the protocol's [`Timestamp`]/[`Duration`] and `std`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::v1::{Duration, Timestamp};

/// A protocol value that cannot be represented as the `std` type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The duration is negative.
    #[error("duration {seconds}s {nanos}ns is negative")]
    Negative {
        /// Seconds given.
        seconds: i64,
        /// Nanoseconds given.
        nanos: i32,
    },
    /// The nanoseconds are outside 0..=999_999_999.
    #[error("nanoseconds {0} out of range 0..=999999999")]
    NanosOutOfRange(i32),
}

impl Duration {
    /// A duration of whole seconds.
    pub const fn from_secs(seconds: i64) -> Self {
        Duration { seconds, nanos: 0 }
    }

    /// A duration of whole milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Duration {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        }
    }

    /// True when negative.
    pub fn is_negative(&self) -> bool {
        self.seconds < 0 || (self.seconds == 0 && self.nanos < 0)
    }

    /// Converts to `std::time::Duration`, refusing negative values.
    pub fn to_std(&self) -> Result<std::time::Duration, TimeError> {
        if !(0..=999_999_999).contains(&self.nanos) {
            return Err(TimeError::NanosOutOfRange(self.nanos));
        }
        let secs = u64::try_from(self.seconds).map_err(|_| TimeError::Negative {
            seconds: self.seconds,
            nanos: self.nanos,
        })?;
        // nanos is within 0..1e9 (checked above).
        Ok(std::time::Duration::new(secs, self.nanos as u32))
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            // subsec_nanos() < 1e9 fits in i32.
            nanos: d.subsec_nanos() as i32,
        }
    }
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// Nanoseconds since the epoch (saturating), handy for ordering.
    pub fn as_unix_nanos(&self) -> i128 {
        i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// Converts to `SystemTime`.
    pub fn to_system_time(&self) -> SystemTime {
        let nanos = u32::try_from(self.nanos.clamp(0, 999_999_999)).unwrap_or(0);
        if self.seconds >= 0 {
            UNIX_EPOCH + std::time::Duration::new(self.seconds.unsigned_abs(), nanos)
        } else {
            UNIX_EPOCH - std::time::Duration::new(self.seconds.unsigned_abs(), 0)
                + std::time::Duration::new(0, nanos)
        }
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos() as i32,
            },
            Err(before) => {
                let d = before.duration();
                let mut seconds = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut nanos = -(d.subsec_nanos() as i32);
                if nanos < 0 {
                    seconds -= 1;
                    nanos += 1_000_000_000;
                }
                Timestamp { seconds, nanos }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_convert_both_ways() {
        let d = std::time::Duration::from_millis(5_250);
        let p: Duration = d.into();
        assert_eq!(
            p,
            Duration {
                seconds: 5,
                nanos: 250_000_000
            }
        );
        assert_eq!(p.to_std().unwrap(), d);
        assert_eq!(Duration::from_millis(1500), p_dur(1, 500_000_000));
    }

    fn p_dur(seconds: i64, nanos: i32) -> Duration {
        Duration { seconds, nanos }
    }

    #[test]
    fn negative_and_malformed_durations_are_errors() {
        assert!(p_dur(-1, 0).is_negative());
        assert!(matches!(
            p_dur(-1, 0).to_std(),
            Err(TimeError::Negative { .. })
        ));
        assert_eq!(
            p_dur(0, 1_000_000_000).to_std(),
            Err(TimeError::NanosOutOfRange(1_000_000_000))
        );
    }

    #[test]
    fn timestamps_round_trip() {
        let now = SystemTime::now();
        let ts: Timestamp = now.into();
        assert_eq!(ts.to_system_time(), now);
        let before = UNIX_EPOCH - std::time::Duration::from_millis(1500);
        let ts: Timestamp = before.into();
        assert_eq!(
            ts,
            Timestamp {
                seconds: -2,
                nanos: 500_000_000
            }
        );
        assert_eq!(ts.to_system_time(), before);
    }
}
