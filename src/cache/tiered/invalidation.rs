//! Invalidation by tag (with versions) and by exact key, across every layer.

use super::super::key::CacheKey;
use super::super::metric;
use super::super::watermark::InvalidationVersion;
use super::{InvalidationOutcome, TieredCache};

impl TieredCache {
    /// Applies an invalidation, `version` being the position of its event in the invalidation
    /// topic: every entry tagged with one of `tags` and computed before it is dropped from
    /// every layer, and `version` is recorded for each tag (here and in Redis) so a
    /// computation that started before it cannot write its result afterwards. Idempotent and
    /// monotonic: replaying it, or an older one, is harmless; entries computed after it stay.
    pub async fn invalidate(&self, tags: &[String], version: InvalidationVersion) -> InvalidationOutcome {
        bump_invalidations();
        // Versions first: from here on no layer accepts a write computed before this order.
        self.inner.versions.record(tags, version);
        self.inner.memory.invalidate_tags(tags, version);
        self.replay_unsent_invalidations().await;
        let redis_dropped = match &self.inner.redis {
            Some(redis) => {
                let dropped = redis.invalidate(tags, version).await;
                if dropped.is_none() {
                    self.inner.unsent.remember(tags, version);
                }
                dropped
            }
            None => Some(0),
        };
        let disk_dropped = match &self.inner.disk {
            Some(disk) => disk.invalidate(tags, version).await,
            None => 0,
        };
        self.inner.count_invalidated("redis", redis_dropped.unwrap_or(0));
        self.inner.count_invalidated("disk", disk_dropped);
        InvalidationOutcome { redis_dropped, disk_dropped }
    }

    /// Sends Redis the invalidations it missed while down, once it is reachable again.
    pub(super) async fn replay_unsent_invalidations(&self) {
        let Some(redis) = &self.inner.redis else { return };
        // `connection` probes Redis if its backoff has passed, so replay starts with recovery.
        if self.inner.unsent.is_empty() || redis.connection().await.is_none() {
            return;
        }
        for (version, tags) in self.inner.unsent.take() {
            match redis.invalidate(&tags, version).await {
                Some(dropped) => self.inner.count_invalidated("redis", dropped),
                None => self.inner.unsent.remember(&tags, version),
            }
        }
    }

    /// Drops exact keys (an invalidation's `keys`) from every layer.
    pub async fn remove(&self, keys: &[CacheKey]) -> InvalidationOutcome {
        bump_invalidations();
        let keys: Vec<String> = keys.iter().map(|k| k.as_str().to_string()).collect();
        let mut disk_dropped = 0;
        for key in &keys {
            self.inner.memory.remove(key).await;
            if let Some(disk) = &self.inner.disk {
                disk_dropped += u64::from(disk.remove(key).await);
            }
        }
        let redis_dropped = match &self.inner.redis {
            Some(redis) => redis.remove(&keys).await,
            None => Some(0),
        };
        self.inner.count_invalidated("redis", redis_dropped.unwrap_or(0));
        self.inner.count_invalidated("disk", disk_dropped);
        InvalidationOutcome { redis_dropped, disk_dropped }
    }
}

fn bump_invalidations() {
    ::metrics::counter!(metric::INVALIDATIONS).increment(1);
}
