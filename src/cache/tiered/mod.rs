//! `TieredCache`: read-through over memory, Redis and disk, then the computation.
//!
//! - A lookup tries memory, then (once per key in this process, however many requests ask at
//!   once) Redis, disk and finally the computation, promoting what it finds to the faster
//!   layers and writing a computed value through all of them.
//! - An entry past its ttl but within its grace window is served once more while one
//!   background refresh recomputes it (stale-while-revalidate); a fresh entry is refreshed
//!   early with XFetch's probability, so a hot key is recomputed by one request before it
//!   expires, not by a stampede after.
//! - Invalidations by tag carry a version: the partition and offset of the invalidation event.
//!   A computation runs under the watermark (highest offset applied per partition) it
//!   snapshots when it starts; its write-through is refused, in every layer, if one of its
//!   tags was invalidated after it since.

mod answer;
mod flight;
mod invalidation;
mod lookup;
mod warm;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use tracing::{debug, warn};

use self::answer::RefreshReason;
pub use self::answer::{CacheLayer, Cached, InvalidationOutcome};
use self::flight::{Found, InFlight, LookupSlot, RefreshSlot, spawn_shared};
pub use self::warm::WarmStart;
use super::disk::DiskLayer;
use super::entry::{Entry, Freshness};
use super::error::{CacheError, ComputeError, FailureKind};
use super::key::CacheKey;
use super::keyring::Keyring;
use super::memory::MemoryLayer;
use super::metric;
use super::redis_layer::{RedisLayer, WriteOutcome};
use super::sealed::Sealer;
use super::settings::{CachePolicy, CacheSettings};
use super::stats::{CacheStats, Counters, bump};
use super::unsent::UnsentInvalidations;
use super::watermark::{InvalidationVersion, TagVersions, Watermark};
use super::xfetch;
use crate::config::RedisSettings;

tokio::task_local! {
    /// Set while a background refresh (stale-while-revalidate or an early XFetch refresh)
    /// runs its computation: see [`in_background_refresh`].
    static BACKGROUND_REFRESH: ();
}

/// Whether the computation running now is a background refresh, which nobody waits for, so
/// it can give way to live requests (fail with [`ComputeError::yielded`]).
pub fn in_background_refresh() -> bool {
    BACKGROUND_REFRESH.try_with(|()| ()).is_ok()
}

/// The multi-layer cache; cheap to clone (all clones share the layers).
#[derive(Clone)]
pub struct TieredCache {
    inner: Arc<Inner>,
}

struct Inner {
    settings: CacheSettings,
    memory: MemoryLayer,
    redis: Option<RedisLayer>,
    disk: Option<DiskLayer>,
    versions: TagVersions,
    in_flight: Arc<InFlight>,
    /// One permit per background refresh allowed at once (`max_background_refreshes`).
    refresh_permits: Arc<tokio::sync::Semaphore>,
    counters: Arc<Counters>,
    /// Invalidations Redis missed while down, replayed when it is back.
    unsent: UnsentInvalidations,
}

/// What to do with an entry a layer returned.
enum Verdict {
    /// Serve it.
    Serve,
    /// Serve it and refresh it in the background.
    ServeAndRefresh(RefreshReason),
    /// Dead, or invalidated since it was computed: drop it.
    Unusable,
}

impl TieredCache {
    /// [`TieredCache::connect_to`] a plain `redis://` URL (tests and benchmarks).
    pub async fn connect(settings: &CacheSettings, redis_url: Option<&str>) -> Result<TieredCache, CacheError> {
        TieredCache::connect_to(settings, redis_url.map(RedisSettings::at).as_ref()).await
    }

    /// Builds the layers from `settings`: validates them, loads the keyring, opens the disk
    /// folder, and connects to `redis` (`None` runs without Redis; `rediss://` is TLS). Redis
    /// being down is not an error: the cache starts without it and picks it up when it is back.
    pub async fn connect_to(
        settings: &CacheSettings,
        redis: Option<&RedisSettings>,
    ) -> Result<TieredCache, CacheError> {
        settings.validate()?;
        metric::describe();
        let keyring = Arc::new(Keyring::from_settings(settings)?);
        let sealer = Sealer::new(keyring, settings.compression_threshold_bytes);
        let counters = Arc::new(Counters::default());
        let redis = match redis {
            Some(redis) => Some(RedisLayer::new(
                redis.client()?,
                &settings.redis_key_prefix,
                sealer.clone(),
                settings.redis_retry_backoff,
                settings.redis_timeout,
                settings.tag_version_retention,
                counters.clone(),
            )?),
            None => None,
        };
        let disk = if settings.disk_bytes > 0 {
            Some(DiskLayer::open(&settings.disk_dir, settings.disk_bytes, sealer, counters.clone()).await?)
        } else {
            None
        };
        let cache = TieredCache {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                memory: MemoryLayer::new(settings.memory_bytes),
                redis,
                disk,
                versions: TagVersions::new(settings.tag_version_retention),
                in_flight: Arc::default(),
                refresh_permits: Arc::new(tokio::sync::Semaphore::new(settings.max_background_refreshes)),
                counters,
                unsent: UnsentInvalidations::default(),
            }),
        };
        cache.catch_up_with_redis().await;
        Ok(cache)
    }

    /// Takes over what other instances recorded in Redis while this one was down: the
    /// watermark, and the versions of the tags of the entries on disk (dropping those
    /// invalidated since they were computed).
    async fn catch_up_with_redis(&self) {
        let Some(redis) = &self.inner.redis else { return };
        for (partition, offset) in redis.applied().await.unwrap_or_default() {
            self.inner.versions.raise_watermark(InvalidationVersion::new(partition, offset));
        }
        let Some(disk) = &self.inner.disk else { return };
        for tag in disk.tags() {
            let Some(versions) = redis.tag_versions(&tag).await else { return };
            let tag = [tag];
            for (partition, offset) in versions {
                let version = InvalidationVersion::new(partition, offset);
                self.inner.versions.record(&tag, version);
                disk.invalidate(&tag, version).await;
            }
        }
    }

    /// The lifetime configured for `kind`.
    pub fn policy_for(&self, kind: &str) -> CachePolicy {
        self.inner.settings.policy_for(kind)
    }

    /// The value under `key`: from the fastest layer holding a usable one, or computed by
    /// `compute` (and written through every layer, tagged with `tags`, living per `policy`).
    /// `compute` is only polled when needed: on a miss, or in the background to refresh a
    /// stale or nearly expired entry. Identical concurrent lookups share one computation.
    pub async fn get_or_compute<F>(
        &self,
        key: &CacheKey,
        tags: &[String],
        policy: CachePolicy,
        compute: F,
    ) -> Result<Cached, ComputeError>
    where
        F: Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static,
    {
        let key = key.as_str();
        if let Some(entry) = self.inner.memory.get(key).await {
            match self.inner.judge(&entry) {
                Verdict::Serve => return Ok(self.inner.served(key, &entry, CacheLayer::Memory)),
                Verdict::ServeAndRefresh(reason) => {
                    let held = Some(entry.created_at_ms);
                    self.spawn_refresh(key, tags.to_vec(), policy, compute, reason, held);
                    return Ok(self.inner.served(key, &entry, CacheLayer::Memory));
                }
                Verdict::Unusable => self.inner.memory.remove(key).await,
            }
        }
        // Redis (or disk) answers a memory miss in a fraction of a millisecond: read it right
        // here. A shared lookup is a spawned task, and its two extra task wake-ups cost more
        // than the read itself (the Redis layer's p99 was 3.4x a bare GET). Only a key that no
        // layer holds goes on to the shared lookup, which coalesces its computation.
        let lower_layers_read = !self.inner.in_flight.is_looking_up(key);
        if lower_layers_read {
            self.replay_unsent_invalidations().await;
            if let Some((entry, layer, verdict)) = self.read_lower_layers(key).await {
                if let Verdict::ServeAndRefresh(reason) = verdict {
                    self.spawn_refresh(key, tags.to_vec(), policy, compute, reason, None);
                }
                return Ok(self.inner.served(key, &entry, layer));
            }
        }
        let (pending, started) = self.inner.in_flight.join_or_start(key, |id| {
            let slot = LookupSlot { in_flight: self.inner.in_flight.clone(), key: key.to_string(), id };
            let cache = self.clone();
            let tags = tags.to_vec();
            spawn_shared(async move {
                // Held until the lookup ends, then frees the key for the next one.
                let slot = slot;
                cache.look_up(&slot.key, tags, policy, compute, !lower_layers_read).await
            })
        });
        if !started {
            bump(&self.inner.counters.coalesced);
            ::metrics::counter!(metric::COALESCED).increment(1);
        }
        let found = pending.await?;
        let mut cached = match found.layer {
            CacheLayer::None => Cached {
                value: found.entry.payload.clone(),
                layer: CacheLayer::None,
                age: None,
                stale: false,
                coalesced: false,
            },
            layer => self.inner.served(key, &found.entry, layer),
        };
        cached.coalesced = !started;
        Ok(cached)
    }

    /// Runs `compute` under the current watermark and writes the result through.
    async fn compute_and_store<F>(
        &self,
        key: &str,
        tags: Vec<String>,
        policy: CachePolicy,
        compute: F,
    ) -> Result<Found, ComputeError>
    where
        F: Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static,
    {
        let watermark = self.inner.versions.watermark();
        let started = Instant::now();
        bump(&self.inner.counters.computations);
        let result = AssertUnwindSafe(compute)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(ComputeError::new("internal", "the computation panicked")));
        let cost = started.elapsed();
        let payload = match result {
            Ok(payload) => payload,
            // Giving way to live requests is neither computing time nor a failure.
            Err(error) if error.kind == FailureKind::Yielded => return Err(error),
            Err(error) => {
                ::metrics::histogram!(metric::COMPUTE_SECONDS).record(cost.as_secs_f64());
                bump(&self.inner.counters.compute_errors);
                ::metrics::counter!(metric::COMPUTE_ERRORS).increment(1);
                debug!(key, %error, "computation failed; nothing cached");
                return Err(error);
            }
        };
        ::metrics::histogram!(metric::COMPUTE_SECONDS).record(cost.as_secs_f64());
        let entry = Arc::new(Entry::new(payload.into(), policy, tags, watermark, cost, crate::clock::now_millis()));
        self.write_through(key, &entry).await;
        Ok(Found { entry, layer: CacheLayer::None })
    }

    /// Stores a computed entry in every layer, unless one of its tags was invalidated above
    /// its watermark (known here, or, atomically, in Redis).
    async fn write_through(&self, key: &str, entry: &Arc<Entry>) {
        if self.inner.versions.is_stale(&entry.tags, &entry.watermark) {
            self.inner.refused("local");
            return;
        }
        if let Some(redis) = &self.inner.redis
            && redis.put(key, entry).await == WriteOutcome::Refused
        {
            // Another instance applied a newer invalidation of one of its tags.
            self.inner.refused("redis");
            return;
        }
        self.inner.memory.insert(key, entry.clone()).await;
        if let Some(disk) = &self.inner.disk {
            // Queued: the answer does not wait for the file (see `disk`).
            disk.put(key, entry.clone());
        }
    }

    /// Recomputes `key` in the background unless a refresh of it is already running or every
    /// refresh slot is taken. `held` is when the memory copy being refreshed was computed: if
    /// Redis has a fresh copy computed after it (another instance's refresh, or the warmer's),
    /// memory takes that instead of computing the value again.
    fn spawn_refresh<F>(
        &self,
        key: &str,
        tags: Vec<String>,
        policy: CachePolicy,
        compute: F,
        reason: RefreshReason,
        held: Option<i64>,
    ) where
        F: Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static,
    {
        if !self.inner.in_flight.claim_refresh(key) {
            return;
        }
        let slot = RefreshSlot { in_flight: self.inner.in_flight.clone(), key: key.to_string() };
        let Ok(permit) = self.inner.refresh_permits.clone().try_acquire_owned() else {
            // Dropping the slot releases the key, so a later request can try again.
            ::metrics::counter!(metric::REFRESHES_SKIPPED, "cause" => "busy").increment(1);
            return;
        };
        let cache = self.clone();
        tokio::spawn(BACKGROUND_REFRESH.scope((), async move {
            // Both held until the refresh ends, then let the next one start.
            let (slot, _permit) = (slot, permit);
            if let Some(held) = held
                && cache.take_fresher_from_redis(&slot.key, held).await
            {
                ::metrics::counter!(metric::REFRESHES_SKIPPED, "cause" => "redis_fresher").increment(1);
                return;
            }
            cache.inner.count_refresh(reason);
            match cache.compute_and_store(&slot.key, tags, policy, compute).await {
                Ok(_) => {}
                Err(error) if error.kind == FailureKind::Yielded => {
                    ::metrics::counter!(metric::REFRESHES_SKIPPED, "cause" => "yielded").increment(1);
                    debug!(key = %slot.key, %error, "background refresh gave way to live requests");
                }
                Err(error) => {
                    warn!(key = %slot.key, %error, reason = reason.label(), "background refresh failed; the old value stays until it dies");
                }
            }
        }));
    }

    /// Puts Redis's copy of `key` in memory if it was computed after `held`, is fresh and no
    /// invalidation has overtaken it; whether it did.
    async fn take_fresher_from_redis(&self, key: &str, held: i64) -> bool {
        let Some(redis) = &self.inner.redis else { return false };
        let Some(entry) = redis.get(key).await else { return false };
        // Not `judge`: its XFetch draw would turn down a fresh copy at random.
        let usable = entry.created_at_ms > held
            && entry.freshness(crate::clock::now_millis()) == Freshness::Fresh
            && !self.inner.versions.is_stale(&entry.tags, &entry.watermark);
        if usable {
            self.inner.memory.insert(key, Arc::new(entry)).await;
        }
        usable
    }

    /// For a cache warmer: recomputes `key` and writes it through without serving it. Returns
    /// at once if a refresh of the key is already running.
    pub async fn refresh<F>(
        &self,
        key: &CacheKey,
        tags: &[String],
        policy: CachePolicy,
        compute: F,
    ) -> Result<(), ComputeError>
    where
        F: Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static,
    {
        let key = key.as_str();
        if !self.inner.in_flight.claim_refresh(key) {
            return Ok(());
        }
        let _slot = RefreshSlot { in_flight: self.inner.in_flight.clone(), key: key.to_string() };
        self.inner.count_refresh(RefreshReason::Warmer);
        self.compute_and_store(key, tags.to_vec(), policy, compute).await.map(|_| ())
    }

    /// Empties this process's memory layer (Redis and disk keep their entries).
    pub async fn clear_memory(&self) {
        self.inner.memory.clear();
        self.inner.memory.settle().await;
    }

    /// Empties this instance's disk layer.
    pub async fn clear_disk(&self) {
        if let Some(disk) = &self.inner.disk {
            disk.clear().await;
        }
    }

    /// Waits until every entry queued for the disk layer before the call is written: before a
    /// process stops, or before its folder is read by another.
    pub async fn flush_disk(&self) {
        if let Some(disk) = &self.inner.disk {
            disk.flush().await;
        }
    }

    /// Applies the memory layer's pending evictions and invalidations, writes the disk layer's
    /// queue, deletes dead entries from the disk folder, and updates the byte gauges.
    pub async fn settle(&self) {
        self.inner.memory.settle().await;
        if let Some(disk) = &self.inner.disk {
            disk.flush().await;
            disk.evict().await;
            ::metrics::gauge!(metric::BYTES, "layer" => "disk").set(disk.bytes() as f64);
        }
    }

    /// Whether Redis is in use now (false while serving without it).
    pub fn redis_is_up(&self) -> bool {
        self.inner.redis.as_ref().is_some_and(RedisLayer::is_up)
    }

    /// Whether a background refresh of `key` is running.
    pub fn is_refreshing(&self, key: &CacheKey) -> bool {
        self.inner.in_flight.is_refreshing(key.as_str())
    }

    /// The watermark a computation starting now would run under.
    pub fn watermark(&self) -> Watermark {
        self.inner.versions.watermark()
    }

    /// Counters since this cache was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }
}

impl Inner {
    /// Serve, serve and refresh, or drop an entry a layer returned.
    fn judge(&self, entry: &Entry) -> Verdict {
        if self.versions.is_stale(&entry.tags, &entry.watermark) {
            return Verdict::Unusable;
        }
        let now = crate::clock::now_millis();
        match entry.freshness(now) {
            Freshness::Dead => Verdict::Unusable,
            Freshness::Stale => Verdict::ServeAndRefresh(RefreshReason::Stale),
            Freshness::Fresh => {
                let early = xfetch::should_recompute_early(
                    now,
                    entry.expires_at_ms(),
                    entry.compute_cost,
                    self.settings.xfetch_beta,
                    xfetch::draw(),
                );
                if early { Verdict::ServeAndRefresh(RefreshReason::Xfetch) } else { Verdict::Serve }
            }
        }
    }

    /// The answer for an entry a layer held, counted as a hit (and as stale if it is).
    /// Every request a layer answers counts as a hit, coalesced ones included, so hits plus
    /// misses plus coalesced waiters of a computation add up to requests.
    fn served(&self, key: &str, entry: &Entry, layer: CacheLayer) -> Cached {
        let now = crate::clock::now_millis();
        let stale = entry.freshness(now) != Freshness::Fresh;
        let counter = match layer {
            CacheLayer::Memory => Some(&self.counters.memory_hits),
            CacheLayer::Redis => Some(&self.counters.redis_hits),
            CacheLayer::Disk => Some(&self.counters.disk_hits),
            CacheLayer::None => None,
        };
        if let Some(counter) = counter {
            bump(counter);
            ::metrics::counter!(metric::HITS, "layer" => layer.as_str(), "use" => metric::use_of(key)).increment(1);
        }
        if stale {
            bump(&self.counters.stale_served);
            ::metrics::counter!(metric::STALE_SERVED, "layer" => layer.as_str()).increment(1);
        }
        Cached { value: entry.payload.clone(), layer, age: Some(entry.age(now)), stale, coalesced: false }
    }

    fn refused(&self, layer: &'static str) {
        bump(&self.counters.writes_refused);
        ::metrics::counter!(metric::WRITES_REFUSED, "layer" => layer).increment(1);
        debug!(layer, "write-through refused: a tag was invalidated after the computation started");
    }

    fn count_miss(&self, key: &str) {
        bump(&self.counters.misses);
        ::metrics::counter!(metric::MISSES, "use" => metric::use_of(key)).increment(1);
    }

    fn count_refresh(&self, reason: RefreshReason) {
        bump(&self.counters.refreshes);
        ::metrics::counter!(metric::REFRESHES, "reason" => reason.label()).increment(1);
    }

    fn count_invalidated(&self, layer: &'static str, count: u64) {
        if count > 0 {
            self.counters.invalidated_entries.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
            ::metrics::counter!(metric::INVALIDATED_ENTRIES, "layer" => layer).increment(count);
        }
    }
}
