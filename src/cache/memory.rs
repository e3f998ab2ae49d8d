//! The memory layer: moka's concurrent cache, bounded in bytes by a weigher, with TinyLFU
//! admission (a value must be asked for more often than the one it would evict) and per-entry
//! expiry at the end of the grace window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use super::entry::Entry;
use super::metric;
use super::watermark::InvalidationVersion;

/// Expires each entry when it becomes dead (ttl + grace after it was computed).
struct UntilDead;

impl Expiry<String, Arc<Entry>> for UntilDead {
    fn expire_after_create(&self, _key: &String, value: &Arc<Entry>, _created_at: Instant) -> Option<Duration> {
        Some(value.remaining_life(crate::clock::now_millis()))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _updated_at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.remaining_life(crate::clock::now_millis()))
    }
}

/// The in-process layer.
#[derive(Clone)]
pub struct MemoryLayer {
    cache: Cache<String, Arc<Entry>>,
}

impl MemoryLayer {
    /// A layer holding at most `max_bytes` of entries (by [`Entry::weight`]).
    pub fn new(max_bytes: u64) -> MemoryLayer {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &String, value: &Arc<Entry>| value.weight())
            .expire_after(UntilDead)
            .support_invalidation_closures()
            .eviction_listener(|_key, _value, cause| {
                let cause = match cause {
                    RemovalCause::Size => "size",
                    RemovalCause::Expired => "expired",
                    // Replacements and explicit removals are not evictions.
                    RemovalCause::Replaced | RemovalCause::Explicit => return,
                };
                ::metrics::counter!(metric::EVICTIONS, "layer" => "memory", "cause" => cause).increment(1);
            })
            .build();
        MemoryLayer { cache }
    }

    /// The entry under `key`, if held.
    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.get(key).await
    }

    /// Holds `entry` under `key` (TinyLFU may decline to keep it when full).
    pub async fn insert(&self, key: &str, entry: Arc<Entry>) {
        self.cache.insert(key.to_string(), entry).await;
    }

    /// Drops `key`.
    pub async fn remove(&self, key: &str) {
        self.cache.invalidate(key).await;
    }

    /// Drops every entry carrying one of `tags` computed under a watermark before `version`.
    /// moka applies it lazily; reads check versions themselves, so nothing stale is served
    /// meanwhile.
    pub fn invalidate_tags(&self, tags: &[String], version: InvalidationVersion) {
        let tags: Arc<[String]> = tags.into();
        let dropped = self.cache.invalidate_entries_if(move |_key, entry| {
            entry.watermark.is_before(version) && entry.tags.iter().any(|t| tags.contains(t))
        });
        if let Err(error) = dropped {
            // Only possible if the builder lacked support_invalidation_closures; reads still
            // refuse the stale entries.
            tracing::error!(%error, "memory layer cannot drop entries by tag");
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Applies pending evictions and invalidations now (tests, gauges).
    pub async fn settle(&self) {
        self.cache.run_pending_tasks().await;
        ::metrics::gauge!(metric::BYTES, "layer" => "memory").set(self.cache.weighted_size() as f64);
    }

    /// Bytes held, by the weigher.
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::settings::CachePolicy;
    use crate::cache::watermark::{InvalidationVersion, Watermark};

    fn entry(size: usize, tag: &str, offset: i64) -> Arc<Entry> {
        let policy = CachePolicy { ttl: Duration::from_secs(60), grace: Duration::from_secs(1) };
        let watermark = Watermark::from_offsets([(0, offset)]);
        Arc::new(Entry::new(
            Arc::from(vec![1u8; size]),
            policy,
            vec![tag.into()],
            watermark,
            Duration::ZERO,
            crate::clock::now_millis(),
        ))
    }

    #[tokio::test]
    async fn the_layer_stays_within_its_byte_bound() {
        let layer = MemoryLayer::new(64 * 1024);
        for i in 0..100 {
            layer.insert(&format!("k:{i}"), entry(4096, "t", 0)).await;
        }
        layer.settle().await;
        assert!(layer.weighted_size() <= 64 * 1024, "{} bytes held", layer.weighted_size());
        assert!(layer.weighted_size() > 0);
    }

    #[tokio::test]
    async fn tag_invalidation_drops_only_older_entries_of_the_tag() {
        let layer = MemoryLayer::new(1 << 20);
        layer.insert("k:old", entry(10, "symbol:AAPL", 3)).await;
        layer.insert("k:new", entry(10, "symbol:AAPL", 9)).await;
        layer.insert("k:other", entry(10, "symbol:MSFT", 3)).await;
        layer.invalidate_tags(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 5));
        layer.settle().await;
        assert!(layer.get("k:old").await.is_none());
        assert!(layer.get("k:new").await.is_some() && layer.get("k:other").await.is_some());
    }
}
