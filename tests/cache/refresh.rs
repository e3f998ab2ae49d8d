//! Background refreshes give way to live requests: their computations know they run in the
//! background, and one that yields leaves the served entry as it was.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use frontier::cache::{CachePolicy, ComputeError, TieredCache, in_background_refresh};

use super::support::*;

const SHORT: CachePolicy = CachePolicy { ttl: Duration::from_millis(300), grace: Duration::from_secs(30) };

/// A computation returning `value` that notes whether it ran as a background refresh.
fn noting(
    seen: &Arc<Mutex<Vec<bool>>>,
    value: &str,
) -> impl Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static {
    let (seen, value) = (seen.clone(), value.as_bytes().to_vec());
    async move {
        seen.lock().unwrap().push(in_background_refresh());
        Ok(value)
    }
}

async fn cache_without_xfetch() -> TieredCache {
    let url = stack_redis().await;
    let (prefix, disk) = (unique_prefix(), tempfile::tempdir().unwrap());
    let mut settings = settings(&prefix, &disk);
    settings.xfetch_beta = 0.0;
    TieredCache::connect(&settings, Some(&url)).await.unwrap()
}

#[tokio::test]
async fn a_refresh_computation_knows_it_runs_in_the_background_and_a_miss_does_not() {
    let cache = cache_without_xfetch().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), SHORT, noting(&seen, "v1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), SHORT, noting(&seen, "v2")).await.unwrap();
    assert!(stale.stale);
    until_refreshed(&cache, "AAPL").await;
    assert_eq!(*seen.lock().unwrap(), [false, true], "the miss is live, the refresh is background");
    assert!(!in_background_refresh(), "nothing outside a refresh is background");
}

#[tokio::test]
async fn a_refresh_that_gives_way_to_live_requests_keeps_the_entry_and_a_later_request_refreshes_it() {
    let cache = cache_without_xfetch().await;
    let runs = Arc::new(AtomicUsize::new(0));
    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), SHORT, counted(&runs, "v1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    let yielding = async { Err(ComputeError::yielded("live requests fill the pool")) };
    let stale = cache.get_or_compute(&key("AAPL"), &tags("AAPL"), SHORT, yielding).await.unwrap();
    assert_eq!(text(&stale.value), "v1");
    until_refreshed(&cache, "AAPL").await;
    let still = cache.get(&key("AAPL")).await.unwrap();
    assert_eq!((text(&still.value), still.stale), ("v1", true), "the stale entry stays");
    assert_eq!(cache.stats().compute_errors, 0, "giving way is not a failed computation");

    cache.get_or_compute(&key("AAPL"), &tags("AAPL"), SHORT, counted(&runs, "v2")).await.unwrap();
    until_refreshed(&cache, "AAPL").await;
    let fresh = cache.get(&key("AAPL")).await.unwrap();
    assert_eq!((text(&fresh.value), fresh.stale), ("v2", false), "the next request's refresh ran");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
