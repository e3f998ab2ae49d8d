//! Starting warm: a cache warmer publishes the hot set (the keys most asked for, hottest
//! first) to Redis, and a serving instance that starts loads those keys' entries from Redis
//! into its memory layer before it takes partitions, so its first requests are memory hits
//! instead of Redis round trips or computations. While a serving instance is busy with live
//! requests it says so in Redis, and the warmer holds its refreshes back.

use std::sync::Arc;
use std::time::Duration;

use super::super::entry::Freshness;
use super::super::key::CacheKey;
use super::TieredCache;

/// What a warm start loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmStart {
    /// Keys the hot set named (at most the limit asked for).
    pub listed: usize,
    /// Entries put in the memory layer.
    pub loaded: usize,
}

impl TieredCache {
    /// Replaces the hot set in Redis with `keys` (each with its decayed request count), living
    /// `ttl`. Whether it was stored (false without Redis or while it is down).
    pub async fn publish_hot_set(&self, keys: &[(CacheKey, f64)], ttl: Duration) -> bool {
        let Some(redis) = &self.inner.redis else { return false };
        let keys: Vec<(String, f64)> = keys.iter().map(|(key, score)| (key.as_str().to_owned(), *score)).collect();
        redis.publish_hot_set(&keys, ttl).await
    }

    /// Loads the entries of the `limit` hottest keys of the hot set from Redis into memory.
    /// An entry is taken if it is alive (fresh, or stale within its grace: the next request
    /// serves it and refreshes it) and no invalidation this process knows of has overtaken it;
    /// invalidations applied later reach it like any memory entry. `None` without Redis or
    /// while it is down.
    pub async fn warm_memory(&self, limit: usize) -> Option<WarmStart> {
        let redis = self.inner.redis.as_ref()?;
        let keys = redis.hot_set(limit).await?;
        let mut warm = WarmStart { listed: keys.len(), loaded: 0 };
        let now = crate::clock::now_millis();
        for (key, entry) in redis.get_many(&keys).await {
            let usable =
                entry.freshness(now) != Freshness::Dead && !self.inner.versions.is_stale(&entry.tags, &entry.watermark);
            if usable {
                self.inner.memory.insert(&key, Arc::new(entry)).await;
                warm.loaded += 1;
            }
        }
        Some(warm)
    }

    /// Tells cache warmers sharing this Redis prefix, for `ttl`, that `instance` is busy with
    /// live requests, so they hold back their refreshes. Whether it was stored.
    pub async fn mark_busy(&self, instance: &str, ttl: Duration) -> bool {
        let Some(redis) = &self.inner.redis else { return false };
        redis.mark_busy(instance, ttl).await
    }

    /// Whether a serving instance sharing this prefix said it was busy within its mark's
    /// lifetime; false without Redis or while it is down (a warmer then works as usual).
    pub async fn serving_is_busy(&self) -> bool {
        let Some(redis) = &self.inner.redis else { return false };
        redis.someone_busy().await.unwrap_or(false)
    }
}
