//! Starting warm: the hot set a warmer publishes to Redis, loaded into a new instance's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use frontier::cache::{CacheLayer, InvalidationVersion, TieredCache, WarmStart};

use super::support::*;

#[tokio::test]
async fn a_new_instance_answers_the_published_hot_keys_from_memory() {
    let url = stack_redis().await;
    let prefix = unique_prefix();
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TieredCache::connect(&settings(&prefix, &disk_a), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    for symbol in ["AAPL", "MSFT", "IBM"] {
        a.get_or_compute(&key(symbol), &tags(symbol), POLICY, counted(&runs, symbol)).await.unwrap();
    }
    assert!(a.publish_hot_set(&[(key("MSFT"), 9.0), (key("AAPL"), 5.0)], Duration::from_secs(30)).await);

    let b = TieredCache::connect(&settings(&prefix, &disk_b), Some(&url)).await.unwrap();
    assert_eq!(b.warm_memory(10).await, Some(WarmStart { listed: 2, loaded: 2 }));
    for symbol in ["AAPL", "MSFT"] {
        let answer = b.get_or_compute(&key(symbol), &tags(symbol), POLICY, counted(&runs, "unused")).await.unwrap();
        assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::Memory, symbol));
    }
    let cold = b.get_or_compute(&key("IBM"), &tags("IBM"), POLICY, counted(&runs, "unused")).await.unwrap();
    assert_eq!(cold.layer, CacheLayer::Redis, "a key outside the hot set is not loaded");
    assert_eq!(runs.load(Ordering::SeqCst), 3, "nothing computed twice");
}

#[tokio::test]
async fn a_warm_start_takes_the_hottest_keys_first_up_to_its_limit() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let a = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    for symbol in ["AAPL", "MSFT", "IBM"] {
        a.get_or_compute(&key(symbol), &tags(symbol), POLICY, counted(&runs, symbol)).await.unwrap();
    }
    let hot = [(key("AAPL"), 1.0), (key("MSFT"), 3.0), (key("IBM"), 2.0)];
    assert!(a.publish_hot_set(&hot, Duration::from_secs(30)).await);
    a.clear_memory().await;

    assert_eq!(a.warm_memory(2).await, Some(WarmStart { listed: 2, loaded: 2 }));
    let layer = |symbol: &'static str| {
        let (a, runs) = (a.clone(), runs.clone());
        async move { a.get_or_compute(&key(symbol), &tags(symbol), POLICY, counted(&runs, "unused")).await.unwrap().layer }
    };
    assert_eq!(layer("MSFT").await, CacheLayer::Memory);
    assert_eq!(layer("IBM").await, CacheLayer::Memory);
    assert_eq!(layer("AAPL").await, CacheLayer::Redis, "the coolest key was left out");
}

#[tokio::test]
async fn an_entry_invalidated_after_the_hot_set_was_published_is_not_warmed() {
    let url = stack_redis().await;
    let prefix = unique_prefix();
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TieredCache::connect(&settings(&prefix, &disk_a), Some(&url)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    a.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v1")).await.unwrap();
    assert!(a.publish_hot_set(&[(key("AAPL"), 4.0)], Duration::from_secs(30)).await);
    a.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 3)).await;

    let b = TieredCache::connect(&settings(&prefix, &disk_b), Some(&url)).await.unwrap();
    assert_eq!(b.warm_memory(10).await, Some(WarmStart { listed: 1, loaded: 0 }));
    let answer = b.get_or_compute(&key("AAPL"), &tags("AAPL"), POLICY, counted(&runs, "v2")).await.unwrap();
    assert_eq!((answer.layer, text(&answer.value)), (CacheLayer::None, "v2"));
}

#[tokio::test]
async fn without_a_hot_set_or_without_redis_an_instance_starts_cold() {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let cache = TieredCache::connect(&settings(&prefix, &disk), Some(&url)).await.unwrap();
    assert_eq!(cache.warm_memory(10).await, Some(WarmStart::default()));
    let without_redis = TieredCache::connect(&settings(&prefix, &disk), None).await.unwrap();
    assert_eq!(without_redis.warm_memory(10).await, None);
}

#[tokio::test]
async fn a_busy_mark_is_seen_under_its_prefix_until_it_expires() {
    let url = stack_redis().await;
    let (prefix, disk_a, disk_b) = (unique_prefix(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let serving = TieredCache::connect(&settings(&prefix, &disk_a), Some(&url)).await.unwrap();
    let warmer = TieredCache::connect(&settings(&prefix, &disk_b), Some(&url)).await.unwrap();
    let elsewhere = TieredCache::connect(&settings(&unique_prefix(), &disk_b), Some(&url)).await.unwrap();
    assert!(!warmer.serving_is_busy().await);

    assert!(serving.mark_busy("serve-a", Duration::from_millis(300)).await);
    assert!(warmer.serving_is_busy().await);
    assert!(!elsewhere.serving_is_busy().await, "another prefix is another deployment");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!warmer.serving_is_busy().await, "the mark dies with its ttl");
}
