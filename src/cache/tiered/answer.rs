//! What a lookup answers: the value, the layer it came from, how old it is.

use std::sync::Arc;
use std::time::Duration;

pub use crate::records::CacheLayer;

/// An answer of the cache.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The value's bytes.
    pub value: Arc<[u8]>,
    /// Which layer answered; `None` when it was computed for this lookup.
    pub layer: CacheLayer,
    /// Time since the value was computed, when a layer answered (`None` when computed).
    pub age: Option<Duration>,
    /// Whether it was past its ttl (served within the grace window while being refreshed).
    pub stale: bool,
    /// Whether this request waited for an identical one instead of looking up itself.
    pub coalesced: bool,
}

/// What an invalidation dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvalidationOutcome {
    /// Entries deleted from Redis; `None` if Redis was unavailable (the local version still
    /// protects this instance, every other instance applies the same order, and this one
    /// replays it to Redis when Redis is back).
    pub redis_dropped: Option<u64>,
    /// Entries deleted from this instance's disk folder.
    pub disk_dropped: u64,
}

/// Why a background refresh runs (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefreshReason {
    Stale,
    Xfetch,
    Warmer,
}

impl RefreshReason {
    pub(super) fn label(self) -> &'static str {
        match self {
            RefreshReason::Stale => "stale",
            RefreshReason::Xfetch => "xfetch",
            RefreshReason::Warmer => "warmer",
        }
    }
}
