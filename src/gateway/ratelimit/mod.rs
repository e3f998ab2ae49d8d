//! Request quotas per tenant and per key, shared by every gateway instance through Redis.
//!
//! GCRA (the generic cell rate algorithm): each bucket is one number in Redis, its theoretical
//! arrival time. One Lua script (`gcra`) checks both of a call's buckets (its tenant's and its
//! key's) against Redis's own clock and charges both or neither, so instances never disagree
//! and a call refused by its key's bucket does not use up its tenant's. When Redis cannot
//! answer, `on_redis_error` decides: `open` lets calls through a per-instance `governor` limiter
//! with the same quotas (`local`: each instance still protects itself), `closed` refuses them
//! with `Retry-After: 1`.
//!
//! After a failure, checks skip Redis for [`RETRY_REDIS_AFTER`] and take the failure path at
//! once, so during an outage callers wait up to `redis_timeout` once a second rather than on
//! every call; then the next check tries again, and the connection manager reconnects by itself.

mod decision;
mod gcra;
mod local;
mod settings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

pub use self::decision::{Decision, DecisionSource};
use self::gcra::Verdict;
use self::local::LocalLimits;
pub use self::settings::{Quota, RateLimitSettings, RedisFailure};
use crate::config::RedisSettings;

/// Calls refused over quota, by the bucket that refused them (`scope`: `tenant` or `key`; a call
/// both refuse counts once, under the one it must wait longer for).
pub const RATE_LIMITED: &str = "frontier_gateway_rate_limited_total";
/// Checks decided without Redis, because it failed or failed less than [`RETRY_REDIS_AFTER`]
/// ago, by what was done instead (`mode`: `open` or `closed`).
pub const REDIS_ERRORS: &str = "frontier_gateway_rate_limit_redis_errors_total";
/// What a Redis outage does, set at start: 1 lets calls through (fails open), 0 refuses them.
pub const FAIL_MODE: &str = "frontier_gateway_rate_limit_fail_mode";

/// How long checks skip Redis after it failed: long enough that an outage does not make every
/// call wait `redis_timeout`, short enough that recovery is noticed within a second.
pub const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);
/// While Redis stays down, at most one warning this often (with the failures since the last).
const WARN_EVERY: Duration = Duration::from_secs(30);
/// The longest the start waits for Redis to answer a PING before going on without it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the instance's own limiter forgets buckets that are full again.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

static DESCRIBED: Once = Once::new();

/// Registers the metrics' descriptions once per process.
pub fn describe() {
    DESCRIBED.call_once(|| {
        ::metrics::describe_counter!(RATE_LIMITED, "Gateway calls refused over quota, by the bucket that refused.");
        ::metrics::describe_counter!(
            REDIS_ERRORS,
            "Quota checks decided without Redis, by what was done instead (open: passed, closed: refused)."
        );
        ::metrics::describe_gauge!(
            FAIL_MODE,
            "1 when a Redis outage lets gateway calls through, 0 when it refuses them."
        );
    });
}

/// Why a limiter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The Redis URL is not one.
    #[error("invalid Redis URL {url}: {source}")]
    InvalidUrl {
        /// The URL, password masked.
        url: String,
        /// The client's error.
        source: redis::RedisError,
    },
    /// The Redis client refused the connection settings.
    #[error("cannot set up a Redis connection to {url}: {source}")]
    Client {
        /// The URL, password masked.
        url: String,
        /// The client's error.
        source: redis::RedisError,
    },
}

/// The quotas of one gateway instance. Share it behind an `Arc`.
pub struct RateLimiter {
    settings: RateLimitSettings,
    /// Connects on first use and reconnects by itself after a failure.
    redis: ConnectionManager,
    script: redis::Script,
    local: Arc<LocalLimits>,
    outage: Outage,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter over the Redis at `redis`. A Redis that is down at start is not an error (the
    /// API should not need its cache to start): it is logged, checks follow `on_redis_error`,
    /// and they use Redis again as soon as it answers. Fails only on settings the Redis client
    /// refuses. `shutdown` ends the task that forgets the instance's idle buckets.
    pub async fn connect(
        redis: &RedisSettings,
        settings: RateLimitSettings,
        shutdown: CancellationToken,
    ) -> Result<RateLimiter, RateLimitError> {
        describe();
        let fails_open = settings.on_redis_error == RedisFailure::Open;
        ::metrics::gauge!(FAIL_MODE).set(if fails_open { 1.0 } else { 0.0 });
        let url = crate::health::redact(&redis.url);
        let client = redis.client().map_err(|source| RateLimitError::InvalidUrl { url: url.clone(), source })?;
        // No retries inside the manager: they would hold every check of an outage waiting;
        // `RETRY_REDIS_AFTER` paces the attempts instead.
        let config = ConnectionManagerConfig::new().set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|source| RateLimitError::Client { url, source })?;
        let limiter = RateLimiter {
            local: Arc::new(LocalLimits::new(&settings)),
            settings,
            redis: connection,
            script: redis::Script::new(gcra::SCRIPT),
            outage: Outage::new(),
        };
        if limiter.settings.enabled {
            limiter.probe().await;
            if fails_open {
                forget_idle_buckets(Arc::downgrade(&limiter.local), shutdown);
            }
        }
        Ok(limiter)
    }

    /// Checks and charges one call of `tenant` through `key` (an API key's id or a token's
    /// subject, unique within its tenant).
    pub async fn check(&self, tenant: &str, key: &str) -> Decision {
        if !self.settings.enabled {
            return Decision::disabled();
        }
        let tenant_quota = self.settings.tenant_quota(tenant);
        let verdict = match self.shared(tenant, key, tenant_quota).await {
            Some(verdict) => verdict,
            None => self.without_redis(tenant, key, tenant_quota),
        };
        if let Some(scope) = verdict.refused_by {
            ::metrics::counter!(RATE_LIMITED, "scope" => scope.label()).increment(1);
        }
        verdict.decision
    }

    /// The shared buckets' verdict, or `None` when Redis gives none (now, or it failed less
    /// than [`RETRY_REDIS_AFTER`] ago).
    async fn shared(&self, tenant: &str, key: &str, tenant_quota: Quota) -> Option<Verdict> {
        if self.outage.skipping() {
            return None;
        }
        let key_quota = self.settings.per_key;
        let [tenant_bucket, key_bucket] = gcra::bucket_keys(&self.settings.key_prefix, tenant, key);
        let mut connection = self.redis.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(tenant_bucket)
            .key(key_bucket)
            .arg(tenant_quota.interval_us())
            .arg(tenant_quota.tolerance_us())
            .arg(key_quota.interval_us())
            .arg(key_quota.tolerance_us());
        let run = invocation.invoke_async::<Vec<i64>>(&mut connection);
        let failure = match tokio::time::timeout(self.settings.redis_timeout, run).await {
            Ok(Ok(reply)) => match gcra::decide(&reply, tenant_quota, key_quota) {
                Ok(verdict) => {
                    self.outage.answered();
                    return Some(verdict);
                }
                Err(unexpected) => unexpected,
            },
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {:?}", self.settings.redis_timeout),
        };
        self.outage.failed(&failure, self.settings.on_redis_error);
        None
    }

    /// Redis gave no verdict: count it under what is done instead, then pass the call through
    /// the instance's own limiter (`open`) or refuse it (`closed`).
    fn without_redis(&self, tenant: &str, key: &str, tenant_quota: Quota) -> Verdict {
        let mode = self.settings.on_redis_error;
        ::metrics::counter!(REDIS_ERRORS, "mode" => mode.label()).increment(1);
        match mode {
            RedisFailure::Open => self.local.check(tenant, key),
            RedisFailure::Closed => Verdict {
                decision: Decision {
                    allowed: false,
                    limit: tenant_quota.burst,
                    remaining: 0,
                    reset_after: RETRY_REDIS_AFTER,
                    retry_after: Some(RETRY_REDIS_AFTER),
                    source: DecisionSource::FailedClosed,
                },
                // Not over quota: counted as a Redis error only.
                refused_by: None,
            },
        }
    }

    /// Asks Redis for a PING, so a start without Redis is logged (and its first checks take the
    /// failure path at once) rather than found out by the first caller.
    async fn probe(&self) {
        let mut connection = self.redis.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
            Ok(Ok(_)) => tracing::debug!("rate limits: Redis answers"),
            Ok(Err(error)) => self.outage.failed(&error.to_string(), self.settings.on_redis_error),
            Err(_) => self.outage.failed(&format!("no answer within {PROBE_TIMEOUT:?}"), self.settings.on_redis_error),
        }
    }
}

/// Whether Redis is failing, and the log of it: an outage's first failure is logged at once,
/// then at most one warning every [`WARN_EVERY`] (so a busy gateway does not log each call),
/// and its end once.
struct Outage {
    started: Instant,
    /// Microseconds after `started` until which checks skip Redis; 0 while Redis answers.
    skip_until_us: AtomicU64,
    log: Mutex<OutageLog>,
}

#[derive(Default)]
struct OutageLog {
    down_since: Option<Instant>,
    last_warning: Option<Instant>,
    failures_unlogged: u64,
}

impl Outage {
    fn new() -> Outage {
        Outage { started: Instant::now(), skip_until_us: AtomicU64::new(0), log: Mutex::new(OutageLog::default()) }
    }

    fn elapsed_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether Redis failed less than [`RETRY_REDIS_AFTER`] ago.
    fn skipping(&self) -> bool {
        self.elapsed_us() < self.skip_until_us.load(Ordering::Relaxed)
    }

    /// Redis failed with `reason`: skip it for a while, and warn unless warned recently.
    fn failed(&self, reason: &str, mode: RedisFailure) {
        let pause = u64::try_from(RETRY_REDIS_AFTER.as_micros()).unwrap_or(u64::MAX);
        self.skip_until_us.store(self.elapsed_us().saturating_add(pause).max(1), Ordering::Relaxed);
        let now = Instant::now();
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let down_since = *log.down_since.get_or_insert(now);
        if log.last_warning.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            log.failures_unlogged += 1;
            return;
        }
        tracing::warn!(
            reason,
            on_redis_error = mode.label(),
            down_for = ?now.duration_since(down_since),
            failures_since_last_warning = log.failures_unlogged,
            "rate limits: Redis cannot answer; checks follow on_redis_error until it does"
        );
        log.last_warning = Some(now);
        log.failures_unlogged = 0;
    }

    /// Redis answered: if it had failed, say that the outage is over.
    fn answered(&self) {
        // A load first, so the common case (no outage) writes nothing shared.
        if self.skip_until_us.load(Ordering::Relaxed) == 0 || self.skip_until_us.swap(0, Ordering::Relaxed) == 0 {
            return;
        }
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = log.down_since.take() {
            // A Redis starved of CPU flaps: a call fails, the next answers. The warning's clock
            // (last_warning) survives the flap, so such a gateway warns once per WARN_EVERY
            // rather than once per flap, and only an outage worth the name has its end logged.
            if since.elapsed() >= RETRY_REDIS_AFTER {
                tracing::info!(down_for = ?since.elapsed(), "rate limits: Redis answers again; checks use the shared buckets");
            }
        }
    }
}

/// Every [`FORGET_IDLE_EVERY`], drops the instance's buckets that are full again, until
/// `shutdown` or the limiter is gone.
fn forget_idle_buckets(local: Weak<LocalLimits>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(FORGET_IDLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let Some(local) = local.upgrade() else { return };
            local.forget_idle();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_makes_checks_skip_redis_and_an_answer_ends_it() {
        let outage = Outage::new();
        assert!(!outage.skipping());
        outage.failed("connection refused", RedisFailure::Open);
        assert!(outage.skipping(), "checks right after a failure take the failure path");
        outage.answered();
        assert!(!outage.skipping());
    }

    #[test]
    fn failures_within_the_warning_interval_are_counted_not_logged() {
        let outage = Outage::new();
        for _ in 0..3 {
            outage.failed("connection refused", RedisFailure::Closed);
        }
        let log = outage.log.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(log.failures_unlogged, 2, "the first is logged, the next two wait for the next warning");
        assert!(log.down_since.is_some());
    }

    #[test]
    fn a_flapping_redis_warns_once_per_interval_not_once_per_flap() {
        let outage = Outage::new();
        for _ in 0..3 {
            outage.failed("no answer within 200ms", RedisFailure::Open);
            outage.answered();
        }
        let log = outage.log.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(log.failures_unlogged, 2, "one warning for three flaps; the other two are counted");
        assert!(log.down_since.is_none(), "Redis answers now");
    }
}
