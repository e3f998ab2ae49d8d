//! The lookup cascade below memory: Redis, then disk. One function finds, judges and promotes
//! an entry for both the read-through path ([`TieredCache::get_or_compute`]'s slow path) and
//! the read-only [`TieredCache::get`], so the two can never disagree on what a layer holds.

use std::sync::Arc;

use super::super::entry::Entry;
use super::super::error::ComputeError;
use super::super::key::CacheKey;
use super::super::redis_layer::WriteOutcome;
use super::super::settings::CachePolicy;
use super::flight::Found;
use super::{CacheLayer, Cached, TieredCache, Verdict};

impl TieredCache {
    /// The value under `key` if a layer holds a usable one (promoted like any hit); never
    /// computes. A stale value within its grace window is returned (`stale` set) but not
    /// refreshed: there is nothing to refresh it with.
    pub async fn get(&self, key: &CacheKey) -> Option<Cached> {
        let key = key.as_str();
        if let Some(entry) = self.inner.memory.get(key).await {
            if !matches!(self.inner.judge(&entry), Verdict::Unusable) {
                return Some(self.inner.served(key, &entry, CacheLayer::Memory));
            }
            self.inner.memory.remove(key).await;
        }
        match self.read_lower_layers(key).await {
            Some((entry, layer, _)) => Some(self.inner.served(key, &entry, layer)),
            None => {
                self.inner.count_miss(key);
                None
            }
        }
    }

    /// The slow path of a lookup, run once per key at a time: memory again (a lookup that just
    /// finished may have filled it), Redis and disk unless the caller has just read them
    /// (`read_lower` false), then compute.
    pub(super) async fn look_up<F>(
        &self,
        key: &str,
        tags: Vec<String>,
        policy: CachePolicy,
        compute: F,
        read_lower: bool,
    ) -> Result<Found, ComputeError>
    where
        F: Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static,
    {
        if let Some(entry) = self.inner.memory.get(key).await
            && matches!(self.inner.judge(&entry), Verdict::Serve)
        {
            return Ok(Found { entry, layer: CacheLayer::Memory });
        }
        let below = if read_lower {
            self.replay_unsent_invalidations().await;
            self.read_lower_layers(key).await
        } else {
            None
        };
        match below {
            Some((entry, layer, verdict)) => {
                if let Verdict::ServeAndRefresh(reason) = verdict {
                    self.spawn_refresh(key, tags, policy, compute, reason, None);
                }
                Ok(Found { entry, layer })
            }
            None => {
                self.inner.count_miss(key);
                self.compute_and_store(key, tags, policy, compute).await
            }
        }
    }

    /// The first layer below memory (Redis, then disk) holding a usable entry for `key`, with
    /// the entry promoted to memory and its verdict. An unusable entry met on the way is
    /// removed from its layer. A disk entry also goes up to Redis, so other instances find
    /// it; Redis refuses one older than an invalidation of its tags, and then it is dropped
    /// here too. `None`: no layer has one (the caller counts the miss).
    pub(super) async fn read_lower_layers(&self, key: &str) -> Option<(Arc<Entry>, CacheLayer, Verdict)> {
        if let Some(redis) = &self.inner.redis
            && let Some(entry) = redis.get(key).await
        {
            let entry = Arc::new(entry);
            match self.inner.judge(&entry) {
                Verdict::Unusable => {
                    redis.remove(&[key.to_string()]).await;
                }
                verdict => {
                    self.inner.memory.insert(key, entry.clone()).await;
                    return Some((entry, CacheLayer::Redis, verdict));
                }
            }
        }
        if let Some(disk) = &self.inner.disk
            && let Some(entry) = disk.get(key).await
        {
            let entry = Arc::new(entry);
            match self.inner.judge(&entry) {
                Verdict::Unusable => {
                    disk.remove(key).await;
                }
                verdict => {
                    if let Some(redis) = &self.inner.redis
                        && redis.put(key, &entry).await == WriteOutcome::Refused
                    {
                        self.inner.refused("redis");
                        disk.remove(key).await;
                        return None;
                    }
                    self.inner.memory.insert(key, entry.clone()).await;
                    return Some((entry, CacheLayer::Disk, verdict));
                }
            }
        }
        None
    }
}
