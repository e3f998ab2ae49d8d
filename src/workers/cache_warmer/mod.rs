//! `frontier run cache-warmer`: keeps hot keys fresh so requests keep hitting the cache.
//!
//! It reads the serving instances' per-key answer counts (`CacheHeat`, one record per instance
//! and second on `frontier.cache.heat`, in its own consumer group; or request-completed
//! events, one per answer), counts the keys of ok answers into a bounded heavy-hitter table
//! with exponentially decayed counts ([`hot`]), and every `scan_interval` recomputes the hot
//! keys that enter the last `refresh_ahead` part of their ttl, from the recipe the serving worker stored sealed in the
//! cache ([`crate::cache::recipe`]), via `TieredCache::refresh`, which writes through to
//! Redis where every serving instance finds it. Its own load is bounded: at most
//! `max_concurrent_refreshes` at once and `max_refreshes_per_second` started ([`budget`]).
//! Every `hot_set_interval` it publishes its hottest keys to Redis (the hot set), from which a
//! starting serving instance warms its memory layer.
//! Like every process that writes to the cache it also follows the invalidation topic, in a
//! group of its own, so Redis accepts its writes.

pub mod budget;
pub mod hot;
pub mod metric;
mod settings;
mod worker;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use self::settings::CacheWarmerSettings;
pub use self::worker::CacheWarmer;
use super::{Shared, WorkerConfig};
use crate::bus::{BusError, CodecError, ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog};
use crate::cache::invalidation::{SideBySideError, invalidation_loop, run_beside_invalidations};
use crate::cache::{CacheError, CacheSettings, TieredCache};
use crate::market::{ConnectStoreError, connect_store};

/// Why a warmer process could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WarmerError {
    /// The price store could not be opened.
    #[error(transparent)]
    Store(#[from] ConnectStoreError),
    /// The cache could not start.
    #[error("starting the cache: {0}")]
    Cache(#[from] CacheError),
    /// A consumer loop could not start.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A consumer loop failed or did not finish.
    #[error(transparent)]
    Loops(#[from] SideBySideError),
    /// A schema is missing.
    #[error("the warmer's schemas: {0}")]
    Schema(#[from] CodecError),
}

/// The warmer's copy of the cache settings: its own small memory layer and no disk layer (a
/// disk folder belongs to one serving instance; the warmer's refreshes matter in Redis).
pub fn warmer_cache_settings(cache: &CacheSettings, settings: &CacheWarmerSettings) -> CacheSettings {
    let mut cache = cache.clone();
    cache.memory_bytes = settings.memory_bytes;
    cache.disk_bytes = 0;
    cache
}

/// The consumer groups a warmer runs in: its events group, then its invalidation group (one
/// per process, named after `instance`).
pub fn warmer_groups(shared: &Shared, settings: &CacheWarmerSettings, instance: &str) -> [String; 2] {
    [shared.group_id(settings), shared.kafka.group_id(&format!("cache-warmer.invalidations.{instance}"))]
}

/// Runs `warmer` on the events loop beside an invalidation loop until `shutdown`, then waits
/// for its refreshes to stop. `instance` makes the invalidation group unique to the process.
pub async fn run_warmer(
    shared: &Shared,
    settings: &CacheWarmerSettings,
    warmer: Arc<CacheWarmer>,
    catalog: Arc<SchemaCatalog>,
    instance: &str,
    shutdown: CancellationToken,
) -> Result<LoopReport, WarmerError> {
    let [events_group, invalidation_group] = warmer_groups(shared, settings, instance);
    let invalidations = invalidation_loop(
        &shared.kafka,
        &shared.bus,
        &shared.cache.invalidations_topic,
        warmer.cache().clone(),
        catalog.clone(),
        invalidation_group,
    )?;
    let options = LoopOptions::new(&shared.bus, events_group, settings.input_topics());
    let events = ConsumerLoop::new(&shared.kafka, options, warmer.clone(), catalog)?;
    let report = run_beside_invalidations(events, invalidations, shutdown).await;
    warmer.finish().await;
    Ok(report?)
}

/// `frontier run cache-warmer`: connects the price store and the cache, then warms until
/// `shutdown`.
pub async fn run(
    shared: &Shared,
    settings: &CacheWarmerSettings,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
) -> Result<LoopReport, WarmerError> {
    let cache = TieredCache::connect_to(&warmer_cache_settings(&shared.cache, settings), Some(&shared.redis)).await?;
    let store =
        connect_store(&shared.postgres, &shared.prices, &shared.kafka, &catalog, "frontier cache-warmer", &cache)
            .await?;
    let warmer = Arc::new(CacheWarmer::new(settings, cache, store, shared.cache.recipe_ttl, shutdown.clone()));
    let instance = crate::telemetry::instance_id();
    run_warmer(shared, settings, warmer, catalog, &instance, shutdown).await
}
