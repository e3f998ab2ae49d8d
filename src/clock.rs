//! Wall-clock time as Kafka and the schemas carry it: milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` in milliseconds since the epoch; 0 for a time before it (a clock set before 1970).
pub fn epoch_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// `duration` in whole milliseconds, saturating at `i64::MAX` (for arithmetic with epoch
/// milliseconds; settings cap lifetimes and windows far below that).
pub fn duration_millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Now, in milliseconds since the epoch.
pub fn now_millis() -> i64 {
    epoch_millis(SystemTime::now())
}
