//! `frontier run cache-warmer`: keeps hot keys fresh so requests keep hitting the cache.
//!
//! It reads the serving workers' request-completed events (its own consumer group), counts the
//! `cache_key` of every ok answer into a bounded heavy-hitter table with exponentially decayed
//! counts ([`hot`]), and every `scan_interval` recomputes the hot keys that enter the last
//! `refresh_ahead` part of their ttl, from the recipe the serving worker stored sealed in the
//! cache ([`crate::cache::serve::recipe`]), via `TieredCache::refresh`, which writes through to
//! Redis where every serving instance finds it. Its own load is bounded: at most
//! `max_concurrent_refreshes` at once and `max_refreshes_per_second` started ([`budget`]).
//! Like every process that writes to the cache it also follows the invalidation topic, in a
//! group of its own, so Redis accepts its writes.

pub mod budget;
pub mod hot;
pub mod metric;
pub mod settings;
mod worker;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use self::settings::CacheWarmerSettings;
pub use self::worker::CacheWarmer;
use crate::bus::{ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog};
use crate::cache::TieredCache;
use crate::cache::serve::{ServeError, connect_store, invalidation_loop, run_beside_invalidations};
use crate::config::Settings;

/// The warmer's copy of the cache settings: its own small memory layer and no disk layer (a
/// disk folder belongs to one serving instance; the warmer's refreshes matter in Redis).
pub fn warmer_cache_settings(settings: &Settings) -> crate::cache::CacheSettings {
    let mut cache = settings.cache.clone();
    cache.memory_bytes = settings.workers.cache_warmer.memory_bytes;
    cache.disk_bytes = 0;
    cache
}

/// Runs `warmer` on the events loop beside an invalidation loop until `shutdown`, then waits
/// for its refreshes to stop. `instance` makes the invalidation group unique to the process.
pub async fn run_warmer(
    settings: &Settings,
    warmer: Arc<CacheWarmer>,
    catalog: Arc<SchemaCatalog>,
    instance: &str,
    shutdown: CancellationToken,
) -> Result<LoopReport, ServeError> {
    let config = &settings.workers.cache_warmer;
    let group = config.group_id.clone().unwrap_or_else(|| settings.group_id("cache-warmer"));
    let invalidation_group = settings.group_id(&format!("cache-warmer.invalidations.{instance}"));
    let invalidations = invalidation_loop(settings, warmer.cache().clone(), catalog.clone(), invalidation_group)?;
    let options = LoopOptions::new(&settings.bus, group, vec![config.input_topic.clone()]);
    let events = ConsumerLoop::new(&settings.kafka, options, warmer.clone(), catalog)?;
    let report = run_beside_invalidations(events, invalidations, shutdown).await;
    warmer.finish().await;
    report
}

/// `frontier run cache-warmer`: connects the price store and the cache, then warms until
/// `shutdown`.
pub async fn run(settings: &Settings, catalog: Arc<SchemaCatalog>, shutdown: CancellationToken) -> Result<LoopReport, ServeError> {
    let store = connect_store(settings, &catalog, "frontier cache-warmer").await?;
    let cache = TieredCache::connect(&warmer_cache_settings(settings), Some(&settings.redis.url)).await?;
    let recipe_ttl = settings.workers.serve.recipe_ttl;
    let warmer = Arc::new(CacheWarmer::new(&settings.workers.cache_warmer, cache, store, recipe_ttl, shutdown.clone()));
    let instance = crate::cache::serve::settings::default_instance();
    run_warmer(settings, warmer, catalog, &instance, shutdown).await
}
