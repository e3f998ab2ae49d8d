//! Helpers of the cache tests: settings, keys, counted computations, Redis access, a private
//! `redis-server`, and log capture.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use frontier::cache::{CacheKey, CachePolicy, CacheSettings, ComputeError};
use serde_json::json;
use tokio::sync::Notify;

use super::common;
pub use super::common::redis::{PrivateRedis, delete_prefix as clear_redis};

pub const POLICY: CachePolicy = CachePolicy { ttl: Duration::from_secs(60), grace: Duration::from_secs(30) };

/// The stack's Redis URL, after checking it answers.
pub async fn stack_redis() -> String {
    common::redis::stack_redis(&common::settings()).await
}

/// Settings of one test: a fresh prefix, a disk folder, one test key, no keys from the
/// environment.
pub fn settings(prefix: &str, disk: &tempfile::TempDir) -> CacheSettings {
    let mut settings = CacheSettings {
        memory_bytes: 8 * 1024 * 1024,
        disk_dir: disk.path().to_path_buf(),
        disk_bytes: 16 * 1024 * 1024,
        redis_key_prefix: prefix.to_string(),
        encryption_keys_env: String::new(),
        current_key_id: "test".into(),
        redis_retry_backoff: Duration::from_millis(200),
        ..CacheSettings::default()
    };
    settings.encryption_keys.insert("test".into(), base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    settings
}

pub fn unique_prefix() -> String {
    format!("test:cache:{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

pub fn key(symbol: &str) -> CacheKey {
    CacheKey::for_request("market.volatility", &json!({"symbol": symbol, "window_days": 30}), "acme", &[])
}

pub fn tags(symbol: &str) -> Vec<String> {
    vec![format!("symbol:{symbol}"), "tenant:acme".into()]
}

/// A computation returning `value` that counts its runs.
pub fn counted(
    runs: &Arc<AtomicUsize>,
    value: &str,
) -> impl Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static {
    let runs = runs.clone();
    let value = value.as_bytes().to_vec();
    async move {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok(value)
    }
}

/// Like [`counted`], taking `delay` first.
pub fn slow(
    runs: &Arc<AtomicUsize>,
    value: &str,
    delay: Duration,
) -> impl Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static {
    let inner = counted(runs, value);
    async move {
        tokio::time::sleep(delay).await;
        inner.await
    }
}

/// `inner`, run only after it has told `started` and `release` has let it go.
pub fn gated(
    started: &Arc<Notify>,
    release: &Arc<Notify>,
    inner: impl Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static,
) -> impl Future<Output = Result<Vec<u8>, ComputeError>> + Send + 'static {
    let (started, release) = (started.clone(), release.clone());
    async move {
        started.notify_one();
        release.notified().await;
        inner.await
    }
}

pub async fn redis_has(url: &str, prefix: &str, key: &CacheKey) -> bool {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("EXISTS").arg(format!("{prefix}:e:{key}")).query_async::<bool>(&mut connection).await.unwrap()
}

/// Waits (at most 5 s) until no background refresh of `symbol`'s key runs in `cache`.
pub async fn until_refreshed(cache: &frontier::cache::TieredCache, symbol: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cache.is_refreshing(&key(symbol)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn text(value: &[u8]) -> &str {
    std::str::from_utf8(value).unwrap()
}

/// Log lines written while a test runs, for counting.
#[derive(Clone, Default)]
pub struct CapturedLog(pub Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    pub fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).matches(needle).count()
    }
}
