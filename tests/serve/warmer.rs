//! The cache warmer keeping a hot key fresh.

use frontier::cache::KindLifetime;
use frontier::workers::cache_warmer::{CacheWarmer, CacheWarmerSettings, WarmerError, run_warmer};

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

    let warmer = Warmer::start(&world, &cache, &redis, |settings| {
        settings.scan_interval = Duration::from_millis(100);
        settings.refresh_ahead = 0.5;
    })
    .await;

    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(instance.ask(&mut world, volatility("SYN0003", 30)).await["status"], "ok");
    }
    let deadline = Instant::now() + PATIENCE;
    while warmer.warmer.refreshed() == 0 {
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
    warmer.stop().await;
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn a_new_instance_answers_the_hot_keys_from_memory_from_its_first_request() {
    let mut world = World::new("warm-start").await;
    let redis = stack_redis(&world.settings).await;
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = world.instance("a", world.cache_settings(&disk_a), Some(&redis)).await;
    let warmer = Warmer::start(&world, &world.cache_settings(&disk_a), &redis, |settings| {
        settings.hot_set_interval = Duration::from_millis(100);
    })
    .await;
    for symbol in ["SYN0001", "SYN0002"] {
        for _ in 0..3 {
            assert_eq!(a.ask(&mut world, volatility(symbol, 30)).await["status"], "ok");
        }
    }
    // The hot set names both keys once the warmer has counted their events.
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let hot: usize =
            redis::cmd("ZCARD").arg(format!("{}:hot", world.redis_prefix)).query_async(&mut connection).await.unwrap();
        if hot == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the warmer never published a hot set of both keys ({hot} so far)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let b = world.instance("b", world.cache_settings(&disk_b), Some(&redis)).await;
    for symbol in ["SYN0001", "SYN0002"] {
        let first = b.ask(&mut world, volatility(symbol, 30)).await;
        assert_eq!((first["status"].as_str(), layer(&first)), (Some("ok"), "memory"), "{first}");
    }
    assert_eq!(b.worker.computations(), 0);
    warmer.stop().await;
    a.stop().await;
    b.stop().await;
    world.drop_schema().await;
}

/// A cache warmer on the world's request-completed events, sharing the instances' Redis.
struct Warmer {
    warmer: Arc<CacheWarmer>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<LoopReport, WarmerError>>,
}

impl Warmer {
    /// Starts a warmer counting keys hot from 1.5 requests, with `configure`'s settings.
    async fn start(
        world: &World,
        cache: &CacheSettings,
        redis: &str,
        configure: impl FnOnce(&mut CacheWarmerSettings),
    ) -> Warmer {
        let mut settings = world.settings.clone();
        let warmer_settings = &mut settings.workers.cache_warmer;
        warmer_settings.group_id = Some(unique("warmer.group"));
        warmer_settings.min_score = 1.5;
        configure(warmer_settings);
        let mut warmer_cache = cache.clone();
        warmer_cache.disk_bytes = 0;
        let warmer_cache = TieredCache::connect(&warmer_cache, Some(redis)).await.unwrap();
        let token = CancellationToken::new();
        let warmer = Arc::new(CacheWarmer::new(
            &settings.workers.cache_warmer,
            warmer_cache,
            world.store.clone(),
            Duration::from_secs(600),
            token.clone(),
        ));
        let task = {
            let (warmer, catalog, token) = (warmer.clone(), world.catalog.clone(), token.clone());
            tokio::spawn(async move {
                let shared = settings.shared();
                run_warmer(&shared, &settings.workers.cache_warmer, warmer, catalog, &unique("warmer"), token).await
            })
        };
        Warmer { warmer, token, task }
    }

    async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().expect("the warmer stops cleanly");
    }
}
