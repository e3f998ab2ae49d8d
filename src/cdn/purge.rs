//! Sending purges to one target within its documented limits: batches no larger than it
//! accepts, no faster than its token bucket refills, and retries of what failed (after the
//! provider's `Retry-After` when it gives one), each batch on its own so a partial failure
//! resends only the batches that failed.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::provider::{Limits, Provider, ProviderError, PurgeAck, PurgeBatch, PurgeMethod};

/// How failed purge requests are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Requests per batch at most, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled for each next one, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// Longest wait between two attempts, `Retry-After` included.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings { attempts: 4, backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(30) }
    }
}

impl RetrySettings {
    /// The wait before retry `retry` (0 for the first), full jitter over the doubled backoff.
    fn wait(&self, retry: u32, error: &ProviderError) -> Duration {
        if let ProviderError::RateLimited { retry_after: Some(after), .. } = error {
            return (*after).min(self.max_backoff);
        }
        let ceiling = self.backoff.saturating_mul(1u32 << retry.min(16)).min(self.max_backoff);
        let jittered = rand::rng().random_range(ceiling.as_secs_f64() / 2.0..=ceiling.as_secs_f64());
        Duration::from_secs_f64(jittered)
    }
}

/// How one batch ended.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// The batch.
    pub batch: PurgeBatch,
    /// The provider's acknowledgement, or the last error.
    pub result: Result<PurgeAck, ProviderError>,
    /// Requests sent, retries included.
    pub attempts: u32,
    /// From the first request (token wait included) to the outcome.
    pub latency: Duration,
}

/// A purge target: a provider adapter with its token bucket.
#[derive(Debug)]
pub struct Target {
    /// Its configured name (the `target` of a `PurgeResult`).
    pub name: String,
    /// The adapter.
    pub provider: Provider,
    /// Mark stale rather than evict, where the provider can.
    pub soft: bool,
    limits: Limits,
    bucket: DefaultDirectRateLimiter,
}

impl Target {
    /// A target over `provider`, its bucket sized by the provider's limits.
    pub fn new(name: impl Into<String>, provider: Provider, soft: bool) -> Target {
        let limits = provider.limits();
        let period = Duration::from_secs_f64(1.0 / limits.requests_per_second.max(0.001));
        let burst = NonZeroU32::new(limits.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst);
        Target { name: name.into(), provider, soft, limits, bucket: RateLimiter::direct(quota) }
    }

    /// The provider's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the provider purges by `method`.
    pub fn supports(&self, method: PurgeMethod) -> bool {
        self.limits.methods.contains(&method)
    }

    /// `items` cut into batches the provider accepts: at most its items per request, and under
    /// its body limit (counted as a JSON array of strings plus an envelope).
    pub fn batches(&self, method: PurgeMethod, items: &[String]) -> Vec<PurgeBatch> {
        let max_items = self.limits.max_items(method).max(1);
        let max_bytes = self.limits.max_body_bytes.unwrap_or(usize::MAX);
        let soft = self.soft && self.limits.soft_purge;
        let mut batches = Vec::new();
        let mut current: Vec<String> = Vec::new();
        let mut bytes = ENVELOPE_BYTES;
        for item in items {
            // As the item is written in a JSON array: quoted, escaped, a comma.
            let size = serde_json::to_string(item).map_or(item.len() * 6, |json| json.len()) + 1;
            if !current.is_empty() && (current.len() == max_items || bytes + size > max_bytes) {
                batches.push(PurgeBatch { method, items: std::mem::take(&mut current), soft });
                bytes = ENVELOPE_BYTES;
            }
            current.push(item.clone());
            bytes += size;
        }
        if !current.is_empty() {
            batches.push(PurgeBatch { method, items: current, soft });
        }
        batches
    }

    /// Sends `batch`, waiting for a token before each request and retrying what may succeed
    /// later; stops early, with the last error, on `shutdown`.
    pub async fn send(&self, batch: PurgeBatch, retry: &RetrySettings, shutdown: &CancellationToken) -> BatchOutcome {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            tokio::select! {
                () = self.bucket.until_ready() => {}
                () = shutdown.cancelled() => return cancelled(batch, attempts, started),
            }
            attempts += 1;
            let result = tokio::select! {
                result = self.provider.purge(&batch) => result,
                () = shutdown.cancelled() => return cancelled(batch, attempts, started),
            };
            let error = match result {
                Ok(ack) => return BatchOutcome { batch, result: Ok(ack), attempts, latency: started.elapsed() },
                Err(error) => error,
            };
            if !error.is_retryable() || attempts >= retry.attempts.max(1) {
                return BatchOutcome { batch, result: Err(error), attempts, latency: started.elapsed() };
            }
            let wait = retry.wait(attempts - 1, &error);
            tracing::debug!(target = %self.name, %error, ?wait, attempts, "purge failed, retrying");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {
                    return BatchOutcome { batch, result: Err(error), attempts, latency: started.elapsed() };
                }
            }
        }
    }
}

/// Bytes of a request around its items (a JSON envelope such as `{"objects":[...]}`).
const ENVELOPE_BYTES: usize = 64;

fn cancelled(batch: PurgeBatch, attempts: u32, started: Instant) -> BatchOutcome {
    let result = Err(ProviderError::Unavailable { status: None, reason: "shutting down".to_owned() });
    BatchOutcome { batch, result, attempts, latency: started.elapsed() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdn::provider::varnish::{VarnishEdge, VarnishSettings};

    fn target(max_keys: usize) -> Target {
        let settings = VarnishSettings { max_keys_per_request: max_keys, ..VarnishSettings::default() };
        Target::new("edge", Provider::Varnish(VarnishEdge::new(reqwest::Client::new(), &settings).unwrap()), true)
    }

    fn items(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k{i}")).collect()
    }

    #[test]
    fn keys_are_cut_at_the_provider_s_limit_per_request() {
        let sizes: Vec<usize> =
            target(256).batches(PurgeMethod::SurrogateKey, &items(600)).iter().map(|b| b.items.len()).collect();
        assert_eq!(sizes, [256, 256, 88]);
    }

    #[test]
    fn urls_go_one_per_request_where_the_provider_takes_one() {
        assert_eq!(target(256).batches(PurgeMethod::Url, &items(3)).len(), 3);
    }

    #[test]
    fn a_soft_target_sends_soft_batches() {
        assert!(target(256).batches(PurgeMethod::SurrogateKey, &items(1))[0].soft);
    }

    #[test]
    fn a_retry_after_is_honoured_up_to_the_longest_backoff() {
        let retry = RetrySettings::default();
        let limited = ProviderError::RateLimited { status: 429, retry_after: Some(Duration::from_secs(2)) };
        assert_eq!(retry.wait(0, &limited), Duration::from_secs(2));
        let long = ProviderError::RateLimited { status: 429, retry_after: Some(Duration::from_secs(3600)) };
        assert_eq!(retry.wait(0, &long), retry.max_backoff);
    }

    #[tokio::test]
    async fn a_429_from_the_provider_is_retried_after_its_retry_after() {
        use crate::cdn::contract::fastly::{FastlyContract, serve};
        use crate::cdn::provider::Secret;
        use crate::cdn::provider::fastly::{FastlyApi, FastlySettings};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let server = serve(listener, FastlyContract::new("svc1", "tok"), shutdown.clone()).await.unwrap();
        server.fail_next(1, 429, Some(Duration::from_secs(1)));
        let settings = FastlySettings { api_url: server.url(), ..FastlySettings::new("svc1") };
        let api = FastlyApi::with_token(reqwest::Client::new(), &settings, Secret::new("tok")).unwrap();
        let target = Target::new("fastly", Provider::Fastly(api), true);
        let batch = target.batches(PurgeMethod::SurrogateKey, &items(3)).remove(0);

        let started = std::time::SystemTime::now();
        let outcome = target.send(batch, &RetrySettings::default(), &shutdown).await;
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        assert_eq!((outcome.attempts, server.requests()), (2, 2), "one 429, then the purge");
        let purged = server.purges();
        let waited = purged[0].at.duration_since(started).unwrap();
        assert!(
            waited >= Duration::from_secs(1),
            "the retry came {waited:?} after the first request, before Retry-After"
        );
        assert!(purged[0].soft && purged[0].items == items(3));
        shutdown.cancel();
    }

    #[test]
    fn backoff_doubles_with_jitter_below_its_ceiling() {
        let retry = RetrySettings::default();
        let down = ProviderError::Unavailable { status: Some(503), reason: String::new() };
        let third = retry.wait(2, &down);
        assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800), "{third:?}");
    }
}
