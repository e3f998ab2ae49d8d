//! Wall-clock time as Kafka and the schemas carry it: milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` in milliseconds since the epoch; 0 for a time before it (a clock set before 1970).
pub fn epoch_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Now, in milliseconds since the epoch.
pub fn now_millis() -> i64 {
    epoch_millis(SystemTime::now())
}
