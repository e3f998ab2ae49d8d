//! Lookup latency per layer of `frontier bench serve`, measured on the tiered cache itself.

use std::time::Instant;

use serde_json::json;

use super::{Bench, ScratchDir};
use crate::cache::{CacheKey, CacheSettings, TieredCache};

/// Lookup latency per layer on the tiered cache itself, over 1000 keys: memory hits; Redis hits
/// (memory and disk cleared); disk hits (a cache without Redis, memory cleared).
pub(super) async fn lookup_latencies(bench: &Bench) -> anyhow::Result<Vec<(&'static str, Vec<f64>)>> {
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
    let time_all = |cache: TieredCache| {
        let (keys, tags, payload) = (keys.clone(), tags.clone(), payload.clone());
        async move {
            let mut times = Vec::with_capacity(keys.len());
            for key in &keys {
                let value = payload.clone();
                let started = Instant::now();
                cache
                    .get_or_compute(key, &tags, policy, async move { Ok(value) })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                times.push(started.elapsed().as_secs_f64() * 1e6);
            }
            times.sort_by(f64::total_cmp);
            anyhow::Ok(times)
        }
    };
    let cache = TieredCache::connect(&settings, Some(&bench.settings.redis.url)).await?;
    time_all(cache.clone()).await?; // computes and writes every layer
    let memory = time_all(cache.clone()).await?;
    cache.clear_memory().await;
    cache.clear_disk().await;
    let redis = time_all(cache.clone()).await?;
    let disk_dir = ScratchDir::new("lookups-disk")?;
    let disk_settings = CacheSettings { disk_dir: disk_dir.path().to_path_buf(), ..settings.clone() };
    let disk_only = TieredCache::connect(&disk_settings, None).await?;
    time_all(disk_only.clone()).await?;
    disk_only.clear_memory().await;
    let disk = time_all(disk_only).await?;
    Ok(vec![("memory", memory), ("redis", redis), ("disk", disk)])
}
