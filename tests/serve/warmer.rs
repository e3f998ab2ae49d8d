//! The cache warmer keeping a hot key fresh.

use frontier::cache::KindLifetime;
use frontier::workers::cache_warmer::{CacheWarmer, run_warmer};

use super::*;

#[tokio::test]
async fn the_warmer_refreshes_a_hot_key_before_it_expires_so_the_next_request_is_a_hit() {
    let mut world = World::new("warmer").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    // Short-lived entries without grace: once the ttl passes, the instance's own copy is dead
    // and only a refreshed one (in Redis) can answer without computing.
    let ttl = Duration::from_secs(4);
    let mut cache = world.cache_settings(&disk);
    cache.kinds.insert("market.volatility".into(), KindLifetime { ttl: Some(ttl), grace: Some(Duration::ZERO) });
    let instance = world.instance("a", cache.clone(), Some(&redis)).await;

    let mut settings = world.settings.clone();
    let warmer_settings = &mut settings.workers.cache_warmer;
    warmer_settings.group_id = Some(unique("warmer.group"));
    warmer_settings.min_score = 1.5;
    warmer_settings.scan_interval = Duration::from_millis(100);
    warmer_settings.refresh_ahead = 0.5;
    let mut warmer_cache = cache.clone();
    warmer_cache.disk_bytes = 0;
    let warmer_cache = TieredCache::connect(&warmer_cache, Some(&redis)).await.unwrap();
    let token = CancellationToken::new();
    let warmer = Arc::new(CacheWarmer::new(
        &settings.workers.cache_warmer,
        warmer_cache,
        world.store.clone(),
        Duration::from_secs(600),
        token.clone(),
    ));
    let warmer_task = {
        let (settings, warmer, catalog, token) =
            (settings.clone(), warmer.clone(), world.catalog.clone(), token.clone());
        tokio::spawn(async move {
            run_warmer(&settings.shared(), &settings.workers.cache_warmer, warmer, catalog, &unique("warmer"), token)
                .await
        })
    };

    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(instance.ask(&mut world, volatility("SYN0003", 30)).await["status"], "ok");
    }
    let deadline = Instant::now() + PATIENCE;
    while warmer.refreshed() == 0 {
        assert!(Instant::now() < deadline, "the warmer never refreshed the hot key");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past the first computation's ttl: that copy is dead everywhere.
    if let Some(left) = (ttl + Duration::from_millis(300)).checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let after = instance.ask(&mut world, volatility("SYN0003", 30)).await;
    assert_eq!(after["status"], "ok");
    assert_ne!(layer(&after), "none", "a hit, refreshed by the warmer: {after}");
    assert_eq!(instance.worker.computations(), 1, "only the first request computed");
    token.cancel();
    warmer_task.await.unwrap().expect("the warmer stops cleanly");
    instance.stop().await;
    world.drop_schema().await;
}
