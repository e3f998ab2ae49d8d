//! The tiered request cache against real Redis (`ops/stack up`), plus private `redis-server`
//! processes for the outage test. Every test uses its own Redis key prefix and disk folder.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;
#[path = "cache/refresh.rs"]
mod refresh;
#[path = "cache/support.rs"]
mod support;
#[path = "cache/warm.rs"]
mod warm;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use frontier::cache::{CacheLayer, CachePolicy, InvalidationVersion, TieredCache};
use tokio::sync::Notify;

use support::*;

#[tokio::test]
async fn a_repeated_request_is_answered_from_memory() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    let first = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    assert_eq!((first.layer, first.age), (CacheLayer::None, None));
    let second = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v2")).await.unwrap();
    assert_eq!((second.layer, text(&second.value), second.stale), (CacheLayer::Memory, "v1", false));
    assert!(second.age.is_some_and(|age| age < Duration::from_secs(5)));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().memory_hits, 1);
}

#[tokio::test]
async fn with_memory_cleared_redis_answers() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    assert!(redis_has(&url, &prefix, &key("AAPL")).await, "written through to Redis");
    cache.clear_memory().await;
    let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v2")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::Redis, "v1"));
    // Promoted: the next answer comes from memory.
    let again = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v3")).await.unwrap();
    assert_eq!(again.layer, CacheLayer::Memory);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn with_memory_and_redis_cleared_disk_answers() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    cache.clear_memory().await;
    clear_redis(&url, &prefix).await;
    let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v2")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::Disk, "v1"));
    assert!(redis_has(&url, &prefix, &key("AAPL")).await, "a disk hit is promoted to Redis");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn get_answers_from_the_layers_and_never_computes() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    assert!(cache.get(&key("AAPL")).await.is_none());
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    assert_eq!(cache.get(&key("AAPL")).await.map(|c| c.layer), Some(CacheLayer::Memory));
    cache.clear_memory().await;
    assert_eq!(cache.get(&key("AAPL")).await.map(|c| c.layer), Some(CacheLayer::Redis));
    cache.clear_memory().await;
    clear_redis(&url, &prefix).await;
    let from_disk = cache.get(&key("AAPL")).await.unwrap();
    assert_eq!((from_disk.layer, text(&from_disk.value)), (CacheLayer::Disk, "v1"));
    assert_eq!((runs.load(Ordering::SeqCst), cache.stats().misses), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_identical_requests_compute_once() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, slow(&runs, "v1", Duration::from_millis(200)))
                    .await
            })
        })
        .collect();
    for request in requests {
        assert_eq!(text(&request.await.unwrap().unwrap().value), "v1");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation for 100 identical requests");
    let stats = cache.stats();
    assert_eq!(stats.computations, 1);
    assert_eq!(stats.coalesced + stats.memory_hits, 99, "{stats:?}");
    assert!(stats.coalesced > 0, "{stats:?}");
}

#[tokio::test]
async fn tag_invalidation_empties_every_layer_and_reaches_a_second_instance() {
    let url = stack_redis().await;
    let prefix = unique_prefix();
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TieredCache::connect(&settings(&prefix, &disk_a), Some(&url)).await.unwrap();
    let b = TieredCache::connect(&settings(&prefix, &disk_b), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    a.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "aapl-1")).await.unwrap();
    a.get_or_compute(&key("MSFT"), &tags("MSFT"), POLICY, counted(&runs, "msft-1")).await.unwrap();
    let on_b = b.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "unused")).await.unwrap();
    assert_eq!((on_b.layer, text(&on_b.value)), (CacheLayer::Redis, "aapl-1"));

    let outcome = a.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 10)).await;
    assert_eq!((outcome.redis_dropped, outcome.disk_dropped), (Some(1), 1));
    assert!(!redis_has(&url, &prefix, &key("AAPL")).await);
    assert!(redis_has(&url, &prefix, &key("MSFT")).await, "other tags are untouched");
    a.clear_memory().await;
    // Memory of A and Redis are empty; A's disk too: the next lookup computes.
    let after = a.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "aapl-2")).await.unwrap();
    assert_eq!((after.layer, text(&after.value)), (CacheLayer::None, "aapl-2"));

    // B's own consumer delivers the same order (same version) to B.
    let outcome = b.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 10)).await;
    assert_eq!(outcome.redis_dropped, Some(0), "idempotent: A's new value (computed after it) stays");
    let on_b = b.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "unused")).await.unwrap();
    assert_eq!((on_b.layer, text(&on_b.value)), (CacheLayer::Redis, "aapl-2"));
    let msft_on_b = b.get_or_compute(&key("MSFT"), &tags("MSFT"), POLICY, counted(&runs, "unused")).await.unwrap();
    assert_eq!(text(&msft_on_b.value), "msft-1");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn offsets_of_different_partitions_are_not_compared() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    cache.invalidate(&["symbol:MSFT".to_string()], InvalidationVersion::new(1, 500)).await;
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    // Offset 20 < 500, but in partition 3, which the entry's watermark has not seen.
    let outcome = cache.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(3, 20)).await;
    assert_eq!((outcome.redis_dropped, outcome.disk_dropped), (Some(1), 1));
    let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v2")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::None, "v2"));
    // Replaying the same order spares the entry computed after it.
    let outcome = cache.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(3, 20)).await;
    assert_eq!((outcome.redis_dropped, outcome.disk_dropped), (Some(0), 0));
    cache.clear_memory().await;
    let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v3")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::Redis, "v2"));
}

#[tokio::test]
async fn an_instance_starting_up_drops_disk_entries_invalidated_while_it_was_down() {
    let url = stack_redis().await;
    let prefix = unique_prefix();
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let runs = Arc::new(AtomicUsize::new(0));
    let a = TieredCache::connect(&settings(&prefix, &disk_a), Some(&url)).await.unwrap();
    a.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    a.get_or_compute(&key("MSFT"), &tags("MSFT"), POLICY, counted(&runs, "msft")).await.unwrap();
    // As a stopping instance does: the disk layer writes behind the answers.
    a.flush_disk().await;
    drop(a);

    let b = TieredCache::connect(&settings(&prefix, &disk_b), Some(&url)).await.unwrap();
    b.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(2, 5)).await;
    clear_redis(&url, &format!("{prefix}:e")).await;

    let a = TieredCache::connect(&settings(&prefix, &disk_a), Some(&url)).await.unwrap();
    assert_eq!(a.watermark().offset(2), 5, "the watermark Redis recorded is taken over");
    let msft = a.get_or_compute(&key("MSFT"), &tags("MSFT"), POLICY, counted(&runs, "unused")).await.unwrap();
    assert_eq!(msft.layer, CacheLayer::Disk);
    let aapl = a.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v2")).await.unwrap();
    assert_eq!((aapl.layer, text(&aapl.value)), (CacheLayer::None, "v2"));
    assert_eq!(a.stats().writes_refused, 0);
}

#[tokio::test]
async fn an_invalidation_during_a_computation_refuses_its_write() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());

    let started = Arc::new(Notify::new());
    let computation = gated(&started, &release, counted(&runs, "computed-before-the-change"));
    let lookup = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, computation).await }
    });
    // The computation runs: its watermark was taken when it started.
    started.notified().await;
    cache.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 42)).await;
    release.notify_one();
    let answer = lookup.await.unwrap().unwrap();
    assert_eq!(answer.layer, CacheLayer::None, "the request itself still gets its answer");
    assert_eq!(cache.stats().writes_refused, 1);
    assert!(!redis_has(&url, &prefix, &key("AAPL")).await, "nothing written to Redis");
    let next = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "fresh")).await.unwrap();
    assert_eq!((next.layer, text(&next.value)), (CacheLayer::None, "fresh"), "nothing written to memory or disk");
    assert!(redis_has(&url, &prefix, &key("AAPL")).await, "a computation after the order is stored");
}

#[tokio::test]
async fn redis_refuses_a_late_write_after_another_instance_invalidated() {
    let url = stack_redis().await;
    let prefix = unique_prefix();
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TieredCache::connect(&settings(&prefix, &disk_a), Some(&url)).await.unwrap();
    let b = TieredCache::connect(&settings(&prefix, &disk_b), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    // B computes under its watermark (no invalidation seen); meanwhile A applies one that B's
    // consumer has not delivered yet.
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let lookup = tokio::spawn({
        let (b, computation) = (b.clone(), gated(&started, &release, counted(&runs, "stale")));
        async move { b.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, computation).await }
    });
    started.notified().await;
    a.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 7)).await;
    release.notify_one();
    assert_eq!(lookup.await.unwrap().unwrap().layer, CacheLayer::None);
    assert_eq!(b.stats().writes_refused, 1, "the Lua write saw tag version 7 > watermark");
    assert!(!redis_has(&url, &prefix, &key("AAPL")).await);
    let again = b.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "fresh")).await.unwrap();
    assert_eq!(again.layer, CacheLayer::None, "B's memory was not written either");
}

#[tokio::test]
async fn a_stale_entry_is_served_during_one_background_refresh() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let mut settings = settings(&prefix, &disk);
    settings.xfetch_beta = 0.0;
    let cache = TieredCache::connect(&settings, Some(&url)).await.unwrap();
    let policy = CachePolicy { ttl: Duration::from_millis(300), grace: Duration::from_secs(30) };
    let runs = Arc::new(AtomicUsize::new(0));

    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), policy, counted(&runs, "v1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..5 {
        let answer = cache
            .get_or_compute(&key("AAPL"), &tags("AAPL"), policy, slow(&runs, "v2", Duration::from_millis(300)))
            .await
            .unwrap();
        assert_eq!((answer.layer, text(&answer.value), answer.stale), (CacheLayer::Memory, "v1", true));
    }
    assert!(cache.is_refreshing(&key("AAPL")));
    until_refreshed(&cache, "AAPL").await;
    let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), policy, counted(&runs, "v3")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value), answer.stale), (CacheLayer::Memory, "v2", false));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "one computation, one refresh");
    assert_eq!((cache.stats().stale_served, cache.stats().refreshes), (5, 1));
}

#[tokio::test]
async fn a_stale_entry_takes_a_fresher_copy_from_redis_instead_of_recomputing() {
    let url = stack_redis().await;
    let prefix = unique_prefix();
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut settings_a, mut settings_b) = (settings(&prefix, &disk_a), settings(&prefix, &disk_b));
    (settings_a.xfetch_beta, settings_b.xfetch_beta) = (0.0, 0.0);
    let a = TieredCache::connect(&settings_a, Some(&url)).await.unwrap();
    let b = TieredCache::connect(&settings_b, Some(&url)).await.unwrap();
    let policy = CachePolicy { ttl: Duration::from_millis(300), grace: Duration::from_secs(30) };
    let (a_runs, b_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    a.get_or_compute(&key("AAPL"), &tags("AAPL"), policy, counted(&a_runs, "v1")).await.unwrap();
    let in_b = b.get_or_compute(&key("AAPL"), &tags("AAPL"), policy, counted(&b_runs, "b")).await.unwrap();
    assert_eq!((in_b.layer, text(&in_b.value)), (CacheLayer::Redis, "v1"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A (or a warmer) refreshes the key in Redis; B's memory still holds the expired v1.
    a.refresh(&key("AAPL"), &tags("AAPL"), policy, counted(&a_runs, "v2")).await.unwrap();

    let stale = b.get_or_compute(&key("AAPL"), &tags("AAPL"), policy, counted(&b_runs, "b")).await.unwrap();
    assert_eq!((text(&stale.value), stale.stale), ("v1", true));
    until_refreshed(&b, "AAPL").await;
    let answer = b.get(&key("AAPL")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value), answer.stale), (CacheLayer::Memory, "v2", false));
    assert_eq!(b_runs.load(Ordering::SeqCst), 0, "B computed nothing: it took A's v2 from Redis");
}

#[tokio::test]
async fn background_refreshes_beyond_the_limit_are_skipped_not_queued() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let mut settings = settings(&prefix, &disk);
    (settings.xfetch_beta, settings.max_background_refreshes) = (0.0, 1);
    let cache = TieredCache::connect(&settings, Some(&url)).await.unwrap();
    let policy = CachePolicy { ttl: Duration::from_millis(300), grace: Duration::from_secs(30) };
    let runs = Arc::new(AtomicUsize::new(0));
    for symbol in ["AAPL", "MSFT"] {
        cache.get_or_compute(&key(symbol), &tags(symbol), policy, counted(&runs, "v1")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    let slow_refresh = slow(&runs, "v2", Duration::from_millis(500));
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), policy, slow_refresh).await.unwrap();
    let msft = cache.get_or_compute(&key("MSFT"), &tags("MSFT"), policy, counted(&runs, "v2")).await.unwrap();
    assert_eq!((text(&msft.value), msft.stale), ("v1", true), "served stale at once");
    assert!(cache.is_refreshing(&key("AAPL")));
    assert!(!cache.is_refreshing(&key("MSFT")), "the only refresh slot is AAPL's: MSFT's refresh is skipped");

    until_refreshed(&cache, "AAPL").await;
    cache.get_or_compute(&key("MSFT"), &tags("MSFT"), policy, counted(&runs, "v2")).await.unwrap();
    until_refreshed(&cache, "MSFT").await;
    let msft = cache.get(&key("MSFT")).await.unwrap();
    assert_eq!((text(&msft.value), msft.stale), ("v2", false), "a later request refreshed it");
    assert_eq!(runs.load(Ordering::SeqCst), 4, "two computations and two refreshes, none queued");
}

#[tokio::test]
async fn xfetch_refreshes_a_hot_entry_once_before_it_expires() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let policy = CachePolicy { ttl: Duration::from_secs(1), grace: Duration::from_secs(30) };
    let runs = Arc::new(AtomicUsize::new(0));

    // A 400 ms computation: 100 ms before expiry each request fires with p = e^-0.25 = 0.78.
    let cost = Duration::from_millis(400);
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), policy, slow(&runs, "v1", cost)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    for _ in 0..50 {
        let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), policy, slow(&runs, "v2", cost)).await.unwrap();
        assert_eq!(text(&answer.value), "v1");
    }
    assert!(cache.is_refreshing(&key("AAPL")), "refreshed early");
    until_refreshed(&cache, "AAPL").await;
    // `get`, not `get_or_compute`: v2 took 400 ms too, so XFetch may already fire for it
    // (p = e^-2.5 = 8% a second before its expiry).
    let answer = cache.get(&key("AAPL")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::Memory, "v2"));
    assert_eq!((runs.load(Ordering::SeqCst), cache.stats().refreshes), (2, 1), "one refresh, not a stampede");
}

#[tokio::test]
async fn a_tampered_redis_value_is_a_counted_miss() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let mut settings = settings(&prefix, &disk);
    settings.disk_bytes = 0;
    let cache = TieredCache::connect(&settings, Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let redis_key = format!("{prefix}:e:{}", key("AAPL"));
    let mut sealed: Vec<u8> = redis::cmd("GET").arg(&redis_key).query_async(&mut connection).await.unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x80;
    let _: () = redis::cmd("SET").arg(&redis_key).arg(sealed).query_async(&mut connection).await.unwrap();
    cache.clear_memory().await;

    let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v2")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::None, "v2"));
    assert_eq!(cache.stats().unreadable, 1);
}

#[tokio::test]
async fn the_warmer_refresh_rewrites_without_serving() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    cache.refresh(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v2")).await.unwrap();
    let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v3")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::Memory, "v2"));
    cache.clear_memory().await;
    let answer = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v3")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::Redis, "v2"));
}

// Current-thread runtime: every task runs on this thread, under the capturing subscriber.
#[tokio::test(flavor = "current_thread")]
async fn requests_are_served_while_redis_is_down_and_redis_is_used_again_when_back() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let port = PrivateRedis::free_port();
    let mut server = PrivateRedis::start(port).await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let mut settings = settings(&prefix, &disk);
    settings.disk_bytes = 0;
    let cache = TieredCache::connect(&settings, Some(&server.url())).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    assert!(cache.redis_is_up());

    server.stop();
    for i in 0..20 {
        cache.clear_memory().await;
        let answer = cache
            .get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, &format!("down-{i}")))
            .await
            .unwrap();
        assert_eq!(answer.layer, CacheLayer::None, "computed while Redis is down");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let stats = cache.stats();
    assert_eq!(stats.redis_outages, 1, "{stats:?}");
    assert!(stats.redis_errors >= 1, "{stats:?}");
    assert_eq!(log.count("Redis is unreachable"), 1, "logged once, not per request");
    assert!(!cache.redis_is_up());

    let _server = PrivateRedis::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        cache.clear_memory().await;
        cache.get_or_compute(&key("MSFT"), &tags("MSFT"), POLICY, counted(&runs, "msft")).await.unwrap();
        if cache.redis_is_up() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cache.redis_is_up(), "Redis used again without a restart");
    assert_eq!(cache.stats().redis_recoveries, 1);
    assert_eq!(log.count("Redis is reachable again"), 1);
    cache.get_or_compute(&key("TSLA"), &tags("TSLA"), POLICY, counted(&runs, "tsla")).await.unwrap();
    cache.clear_memory().await;
    let answer = cache.get_or_compute(&key("TSLA"), &tags("TSLA"), POLICY, counted(&runs, "unused")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::Redis, "tsla"));
}

#[tokio::test]
async fn an_invalidation_redis_missed_is_replayed_when_it_is_back() {
    let port = PrivateRedis::free_port();
    let mut server = PrivateRedis::start(port).await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&server.url())).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();

    server.stop();
    let outcome = cache.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 9)).await;
    assert_eq!((outcome.redis_dropped, outcome.disk_dropped), (None, 1));
    let server = PrivateRedis::start(port).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = cache.get_or_compute(&key("MSFT"), &tags("MSFT"), POLICY, counted(&runs, "msft")).await.unwrap();
    assert_eq!(answer.layer, CacheLayer::None);

    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let version: Option<i64> =
        redis::cmd("HGET").arg(format!("{prefix}:v:symbol:AAPL")).arg(0).query_async(&mut connection).await.unwrap();
    assert_eq!(version, Some(9), "the missed order reached Redis");
}

#[tokio::test]
async fn one_slow_redis_answer_is_a_miss_and_three_in_a_row_take_redis_down() {
    let port = PrivateRedis::free_port();
    let server = PrivateRedis::start(port).await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let mut settings = settings(&prefix, &disk);
    settings.disk_bytes = 0;
    settings.redis_timeout = Duration::from_millis(100);
    let cache = TieredCache::connect(&settings, Some(&server.url())).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    assert!(cache.redis_is_up());

    // Redis holds every command for 5 s: each of the cache's times out at 100 ms.
    let client = redis::Client::open(server.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(5000).arg("ALL").query_async(&mut admin).await.unwrap();
    cache.clear_memory().await;
    let slow = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "slow")).await.unwrap();
    assert_eq!(slow.layer, CacheLayer::None, "the timed-out read is a miss");
    let stats = cache.stats();
    assert_eq!((stats.redis_errors, stats.redis_outages), (2, 0), "its read and its write timed out: {stats:?}");
    assert!(cache.redis_is_up(), "two slow answers are not an outage");

    cache.clear_memory().await;
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "slower")).await.unwrap();
    assert!(!cache.redis_is_up(), "the third timeout in a row takes Redis down");
    assert_eq!(cache.stats().redis_outages, 1);
}
