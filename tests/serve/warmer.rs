//! The cache warmer keeping a hot key fresh, and holding back while serving is busy.

use frontier::bus::Worker;
use frontier::cache::recipe;
use frontier::cache::{CacheKey, CachePolicy, KindLifetime};
use frontier::workers::cache_warmer::{CacheWarmer, CacheWarmerSettings, WarmerError, run_warmer};

use super::*;

#[tokio::test]
async fn the_warmer_refreshes_a_hot_key_before_it_expires_so_the_next_request_is_a_hit() {
    let ttl = Duration::from_secs(4);
    let Expiring { mut world, redis, disk: _disk, cache, instance } = Expiring::start("warmer", ttl).await;

    let warmer = Warmer::start(&world, &cache, &redis, |settings| {
        settings.scan_interval = Duration::from_millis(100);
        settings.refresh_ahead = 0.5;
    })
    .await;

    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(instance.ask(&mut world, volatility("SYN0003", 30)).await["status"], "ok");
    }
    warmer.wait_until_refreshed(1, "the warmer never refreshed the hot key").await;
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
async fn one_scan_refreshes_every_due_key_its_budget_allows_not_only_as_many_as_it_has_permits() {
    let ttl = Duration::from_secs(4);
    let Expiring { mut world, redis, disk: _disk, cache, instance } = Expiring::start("warmer-queue", ttl).await;
    // One permit, and the loop's own scans an hour apart (its first finds nothing due): the
    // test scans once itself, when every key is due.
    let warmer = Warmer::start(&world, &cache, &redis, |settings| {
        settings.scan_interval = Duration::from_secs(3600);
        settings.max_concurrent_refreshes = 1;
        settings.refresh_ahead = 0.9;
    })
    .await;
    let requests = [("SYN0001", 30), ("SYN0001", 60), ("SYN0002", 30), ("SYN0003", 30)];
    for (symbol, window_days) in requests {
        for _ in 0..3 {
            assert_eq!(instance.ask(&mut world, volatility(symbol, window_days)).await["status"], "ok");
        }
    }
    let keys: Vec<CacheKey> = requests
        .iter()
        .map(|(symbol, window_days)| {
            let params = json!({"symbol": symbol, "window_days": window_days});
            CacheKey::for_request("market.volatility", &params, "acme", &[])
        })
        .collect();
    warmer.wait_until_hot(&keys).await;
    // Due 10 % into the ttl.
    tokio::time::sleep(ttl / 10 + Duration::from_millis(100)).await;

    warmer.warmer.tick(std::time::SystemTime::now()).await.unwrap();
    warmer.wait_until_refreshed(4, "one scan refreshed fewer than the 4 due keys").await;
    warmer.stop().await;
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn a_warmer_refresh_computes_niced_without_taking_a_turn_from_live_requests() {
    assert_eq!(live_turns_taken_by_one_warmer_refresh("warmer-niced", None).await, 0);
}

#[tokio::test]
async fn a_warmer_at_nice_zero_computes_like_a_live_request() {
    // The control of the test above: the turns it counts are there to be counted.
    assert_eq!(live_turns_taken_by_one_warmer_refresh("warmer-nice-0", Some(0)).await, 1);
}

/// How many of the process's live analysis turns (one per core) one warmer refresh of an
/// option price takes, with `refresh_nice` set to `nice` (or as shipped). The turns are counted
/// by their wait histogram on a recorder of this test's own thread, where the instance, the
/// warmer and their tasks all run.
async fn live_turns_taken_by_one_warmer_refresh(name: &str, nice: Option<i32>) -> u64 {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let turns = || {
        let count = format!("{}_count ", frontier::market::TURN_WAIT_SECONDS);
        let rendered = metrics.render();
        let line = rendered.lines().find(|line| line.starts_with(&count));
        line.and_then(|line| line[count.len()..].trim().parse::<u64>().ok()).unwrap_or(0)
    };
    let ttl = Duration::from_secs(4);
    let Expiring { mut world, redis, disk: _disk, cache, instance } =
        Expiring::start_with_kind(name, "option.price", ttl).await;
    // Scans only when the test says (the loop's first finds nothing due), due 10 % into the ttl.
    let warmer = Warmer::start(&world, &cache, &redis, |settings| {
        settings.scan_interval = Duration::from_secs(3600);
        settings.refresh_ahead = 0.9;
        if let Some(nice) = nice {
            settings.refresh_nice = nice;
        }
    })
    .await;
    let params = json!({"symbol": "SYN0002", "strike": 100, "expiry_days": 90, "right": "call"});
    for _ in 0..3 {
        let answer = instance.ask(&mut world, request("option.price", params.clone(), None)).await;
        assert_eq!(answer["status"], "ok", "{answer}");
    }
    assert_eq!(instance.worker.computations(), 1);
    assert_eq!(turns(), 1, "the instance's one miss took one live turn");
    warmer.wait_until_hot(&[CacheKey::for_request("option.price", &params, "acme", &[])]).await;
    tokio::time::sleep(ttl / 10 + Duration::from_millis(100)).await;

    warmer.warmer.tick(std::time::SystemTime::now()).await.unwrap();
    warmer.wait_until_refreshed(1, "the warmer never refreshed the due key").await;
    let taken = turns() - 1;
    warmer.stop().await;
    instance.stop().await;
    world.drop_schema().await;
    taken
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

#[tokio::test]
async fn a_new_instance_has_opened_all_its_price_store_connections_by_its_first_answer() {
    let mut world = World::new("open-connections").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    // A store of its own: the world's has served other statements already.
    let store = world.own_store().await;
    assert_eq!(store.pool().size(), 1, "sqlx opens one connection to check the settings");

    let settings = world.instance_settings("open-connections").await;
    let instance = world.instance_with(settings, world.cache_settings(&disk), Some(&redis), store.clone()).await;
    let answer = instance.ask(&mut world, volatility("SYN0001", 30)).await;

    assert_eq!(answer["status"], "ok", "{answer}");
    // One computation needs one connection; the others were opened before it came.
    assert_eq!(store.pool().size(), world.settings.postgres.max_connections);
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn an_instance_whose_live_requests_fill_its_pool_tells_the_warmers_to_hold_back() {
    let mut world = World::new("busy-mark").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let mut settings = world.instance_settings("a").await;
    // Every analysis counts as heavy, and heavy ones take turns on one slot.
    let compute = &mut settings.workers.serve.compute;
    (compute.heavy_cost, compute.heavy_slots) = (Duration::from_micros(1), 1);
    let instance = world.instance_with(settings, world.cache_settings(&disk), Some(&redis), world.store.clone()).await;
    let warmer_side = TieredCache::connect(&world.cache_settings(&disk), Some(&redis)).await.unwrap();
    assert!(!warmer_side.serving_is_busy().await, "idle so far");

    // Four different portfolios of 1,000,000 paths each: while one computes, the others wait.
    let burst: Vec<Value> = [0.2, 0.4, 0.6, 0.8]
        .iter()
        .map(|first| {
            let rest = (1.0 - first) / 2.0;
            let weights = json!({"SYN0001": first, "SYN0002": rest, "SYN0003": rest});
            request("portfolio.risk", json!({"weights": weights, "paths": 1_000_000}), None)
        })
        .collect();
    for doc in &burst {
        instance.send(doc).await;
    }
    let deadline = Instant::now() + PATIENCE;
    while !warmer_side.serving_is_busy().await {
        assert!(Instant::now() < deadline, "the instance never said it was busy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for doc in &burst {
        assert_eq!(world.responses.wait(doc["id"].as_str().unwrap()).await["status"], "ok");
    }
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn the_warmer_holds_its_refreshes_back_while_a_serving_instance_is_busy() {
    let ttl = Duration::from_secs(3);
    let Expiring { mut world, redis, disk: _disk, cache, instance } = Expiring::start("warmer-yields", ttl).await;
    let busy_side = TieredCache::connect(&cache, Some(&redis)).await.unwrap();
    // Another instance says it is busy, and keeps saying so, as a flooded one does.
    assert!(busy_side.mark_busy("flooded", Duration::from_secs(2)).await);
    let calm = CancellationToken::new();
    let flooded = tokio::spawn({
        let calm = calm.clone();
        async move {
            while !calm.is_cancelled() {
                assert!(busy_side.mark_busy("flooded", Duration::from_secs(2)).await);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let warmer = Warmer::start(&world, &cache, &redis, |settings| {
        settings.scan_interval = Duration::from_millis(100);
        settings.refresh_ahead = 0.9;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(instance.ask(&mut world, volatility("SYN0002", 30)).await["status"], "ok");
    }
    // Well past the point where the key was due (10 % into its ttl).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(warmer.warmer.refreshed(), 0, "nothing refreshed while the instance was busy");
    calm.cancel();
    flooded.await.unwrap();

    // Calm again: the mark dies and the warmer catches up.
    warmer.wait_until_refreshed(1, "the warmer never resumed after the instance calmed down").await;
    warmer.stop().await;
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn every_computed_key_has_its_recipe_in_redis_once_its_instance_has_stopped() {
    // The warmer recomputes a key only from its recipe, which it reads from Redis: no instance
    // may stop (right after its last answer, here) and leave a computed key without one.
    let Expiring { mut world, redis, disk: _disk, cache, instance } =
        Expiring::start("recipes", Duration::from_secs(60)).await;
    let windows = [20, 30, 40, 50, 60, 70];
    for window_days in windows {
        assert_eq!(instance.ask(&mut world, volatility("SYN0002", window_days)).await["status"], "ok");
    }
    instance.stop().await;

    let mut reader = cache.clone();
    reader.disk_bytes = 0;
    let reader = TieredCache::connect(&reader, Some(&redis)).await.unwrap();
    let policy = CachePolicy { ttl: world.settings.cache.recipe_ttl, grace: Duration::ZERO };
    for window_days in windows {
        let params = json!({"symbol": "SYN0002", "window_days": window_days});
        let key = CacheKey::for_request("market.volatility", &params, "acme", &[]);
        // `load` also checks that the recipe computes this very key.
        let (recipe, _) = recipe::load(&reader, &key, policy).await.expect("the recipe is in Redis");
        assert_eq!(recipe.kind, "market.volatility");
    }
    world.drop_schema().await;
}

/// A world with one serving instance whose volatility entries live `ttl` without grace: once
/// it passes, the instance's own copy is dead and only a refreshed one (in Redis) can answer
/// without computing.
struct Expiring {
    world: World,
    redis: String,
    /// The instance's disk layer, deleted when dropped.
    disk: tempfile::TempDir,
    cache: CacheSettings,
    instance: Instance,
}

impl Expiring {
    async fn start(name: &str, ttl: Duration) -> Expiring {
        Self::start_with_kind(name, "market.volatility", ttl).await
    }

    /// As [`Expiring::start`], with `kind` living `ttl`.
    async fn start_with_kind(name: &str, kind: &str, ttl: Duration) -> Expiring {
        let world = World::new(name).await;
        let redis = stack_redis(&world.settings).await;
        let disk = tempfile::tempdir().unwrap();
        let mut cache = world.cache_settings(&disk);
        cache.kinds.insert(kind.into(), KindLifetime { ttl: Some(ttl), grace: Some(Duration::ZERO) });
        let instance = world.instance("a", cache.clone(), Some(&redis)).await;
        Expiring { world, redis, disk, cache, instance }
    }
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

    /// Waits until the warmer has refreshed `at_least` keys; fails with `what` after [`PATIENCE`].
    async fn wait_until_refreshed(&self, at_least: u64, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.warmer.refreshed() < at_least {
            let refreshed = self.warmer.refreshed();
            assert!(Instant::now() < deadline, "{what}: {refreshed} of {at_least} refreshed within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the warmer counts every one of `keys` hot (the 1.5 requests it was started
    /// with); fails after [`PATIENCE`].
    async fn wait_until_hot(&self, keys: &[CacheKey]) {
        let deadline = Instant::now() + PATIENCE;
        while keys.iter().any(|key| self.warmer.score(key) < 1.5) {
            assert!(Instant::now() < deadline, "the warmer never counted every key hot");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().expect("the warmer stops cleanly");
    }
}
