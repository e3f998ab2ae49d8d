//! `cache_invalidation.avsc`: an order to drop cache entries, on `frontier.cache.invalidations`.

use serde::{Deserialize, Serialize};

/// One cache invalidation (`frontier.cache.Invalidation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheInvalidation {
    /// Unique id (UUID v4).
    pub id: String,
    /// Tags to drop, e.g. `symbol:XYZ`.
    pub tags: Vec<String>,
    /// Exact cache keys to drop.
    pub keys: Vec<String>,
    /// Why, for a person.
    pub reason: String,
    /// Who published it.
    pub source: String,
    /// When, ms since the epoch.
    pub issued_at: i64,
}
