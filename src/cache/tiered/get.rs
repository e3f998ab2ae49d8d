//! Reading the cache without computing: for callers that only want what is already there.

use std::sync::Arc;

use super::super::key::CacheKey;
use super::super::redis_layer::WriteOutcome;
use super::{CacheLayer, Cached, TieredCache, Verdict};

impl TieredCache {
    /// The value under `key` if a layer holds a usable one (promoted like any hit); never
    /// computes. A stale value within its grace window is returned (`stale` set) but not
    /// refreshed: there is nothing to refresh it with.
    pub async fn get(&self, key: &CacheKey) -> Option<Cached> {
        let key = key.as_str();
        if let Some(entry) = self.inner.memory.get(key).await {
            if !matches!(self.inner.judge(&entry), Verdict::Unusable) {
                return Some(self.inner.served(&entry, CacheLayer::Memory));
            }
            self.inner.memory.remove(key).await;
        }
        if let Some(redis) = &self.inner.redis
            && let Some(entry) = redis.get(key).await
        {
            let entry = Arc::new(entry);
            if !matches!(self.inner.judge(&entry), Verdict::Unusable) {
                self.inner.memory.insert(key, entry.clone()).await;
                return Some(self.inner.served(&entry, CacheLayer::Redis));
            }
            redis.remove(&[key.to_string()]).await;
        }
        if let Some(disk) = &self.inner.disk
            && let Some(entry) = disk.get(key).await
        {
            let entry = Arc::new(entry);
            let refused = match &self.inner.redis {
                Some(redis) => redis.put(key, &entry).await == WriteOutcome::Refused,
                None => false,
            };
            if !refused && !matches!(self.inner.judge(&entry), Verdict::Unusable) {
                self.inner.memory.insert(key, entry.clone()).await;
                return Some(self.inner.served(&entry, CacheLayer::Disk));
            }
            disk.remove(key).await;
        }
        self.inner.count_miss();
        None
    }
}
