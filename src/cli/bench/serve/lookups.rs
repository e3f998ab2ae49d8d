//! Lookup latency per layer of `frontier bench serve`, measured on the tiered cache itself,
//! with a bare Redis `GET` of the same stored bytes beside the Redis layer as its baseline.

use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use super::{Bench, ScratchDir};
use crate::cache::{CacheKey, CacheSettings, TieredCache};

/// What [`lookup_latencies`] measured: per layer, lookup times in microseconds, sorted.
pub(super) type LayerLatencies = Vec<(&'static str, Vec<f64>)>;

/// Lookup latency per layer on the tiered cache itself, over 1000 keys: memory hits; Redis hits
/// (memory and disk cleared), each right after a bare `GET` of the same entry on a connection
/// of its own (the baseline: what Redis and the client cost without the layer); disk hits (a
/// cache without Redis, memory cleared).
pub(super) async fn lookup_latencies(bench: &Bench) -> anyhow::Result<LayerLatencies> {
    let dir = ScratchDir::new("lookups")?;
    let settings = bench.cache_settings(dir.path(), None);
    let policy = settings.policy_for("bench");
    let result = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .zip(1..)
        .map(|(name, i)| ((*name).to_owned(), f64::from(i) / 10.0))
        .collect();
    let payload = crate::cache::result::encode(&result)?;
    let keys: Vec<CacheKey> =
        (0..1000).map(|i| CacheKey::for_request("bench", &json!({"i": i}), "acme", &[])).collect();
    let tags = vec!["bench".to_string()];
    let lookup = |cache: &TieredCache, key: &CacheKey| {
        let (cache, key, tags, value) = (cache.clone(), key.clone(), tags.clone(), payload.clone());
        async move {
            let started = Instant::now();
            cache
                .get_or_compute(&key, &tags, policy, async move { Ok(value) })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::Ok(started.elapsed().as_secs_f64() * 1e6)
        }
    };
    let time_all = async |cache: &TieredCache| {
        let mut times = Vec::with_capacity(keys.len());
        for key in &keys {
            times.push(lookup(cache, key).await?);
        }
        times.sort_by(f64::total_cmp);
        anyhow::Ok(times)
    };
    let cache = TieredCache::connect(&settings, Some(&bench.settings.redis.url)).await?;
    time_all(&cache).await?; // computes and writes every layer
    let memory = time_all(&cache).await?;
    cache.clear_memory().await;
    cache.clear_disk().await;

    let client = redis::Client::open(bench.settings.redis.url.as_str()).context("the Redis url")?;
    let mut bare = client.get_multiplexed_async_connection().await.context("connecting to Redis")?;
    let (mut redis, mut baseline) = (Vec::with_capacity(keys.len()), Vec::with_capacity(keys.len()));
    for key in &keys {
        let stored = format!("{}:e:{}", settings.redis_key_prefix, key.as_str());
        let started = Instant::now();
        let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&stored).query_async(&mut bare).await?;
        baseline.push(started.elapsed().as_secs_f64() * 1e6);
        if bytes.is_none() {
            anyhow::bail!("the Redis layer did not store {stored}: the baseline would time a miss");
        }
        redis.push(lookup(&cache, key).await?);
    }
    redis.sort_by(f64::total_cmp);
    baseline.sort_by(f64::total_cmp);

    let disk_dir = ScratchDir::new("lookups-disk")?;
    let disk_settings = CacheSettings { disk_dir: disk_dir.path().to_path_buf(), ..settings.clone() };
    let disk_only = TieredCache::connect(&disk_settings, None).await?;
    time_all(&disk_only).await?;
    // Written before timing: a queued entry is read from the writer's queue, not the disk. And
    // nothing is left for the writer when the folder is deleted (it would race the deletion).
    disk_only.flush_disk().await;
    disk_only.clear_memory().await;
    let disk = time_all(&disk_only).await?;
    Ok(vec![("memory", memory), ("redis", redis), ("GET", baseline), ("disk", disk)])
}
