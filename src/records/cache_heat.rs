//! `cache_heat.avsc`: a serving instance's per-key answer counts, on `frontier.cache.heat`.

use serde::{Deserialize, Serialize};

/// How often one instance answered each cache key during one window (`frontier.cache.CacheHeat`),
/// written by the serving worker and read by the cache warmer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheHeat {
    /// Service of the instance.
    pub service: String,
    /// Instance (pod) that answered.
    pub instance: String,
    /// When the first answer counted in the window completed, ms since the epoch.
    pub window_start: i64,
    /// When the record was written, ms since the epoch.
    pub window_end: i64,
    /// One entry per key answered in the window.
    pub keys: Vec<KeyCount>,
}

/// The answers of one cache key during a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    /// The cache key.
    pub cache_key: String,
    /// Its analysis kind.
    pub kind: String,
    /// Ok answers in the window.
    pub requests: i64,
    /// When its value was last computed in the window (ms since the epoch), if it was.
    pub last_computed_at: Option<i64>,
}
