//! Request quotas per tenant and per key, shared by every gateway instance through Redis.
//!
//! GCRA (the generic cell rate algorithm): each bucket is one number in Redis, its theoretical
//! arrival time. One Lua script checks both of a call's buckets (its tenant's and its key's)
//! against Redis's own clock and charges both or neither, so instances never disagree and a
//! call refused by its key's bucket does not use up its tenant's. When Redis cannot answer,
//! `on_redis_error` decides: `open` lets calls through a per-instance `governor` limiter with
//! the tenant's quota (each instance still protects itself), `closed` refuses them.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, Quota as GovernorQuota};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{InvalidSetting, RedisSettings};

/// Calls refused, by the bucket that refused them (`tenant`, `key`).
pub const RATE_LIMITED: &str = "frontier_gateway_rate_limited_total";
/// Checks Redis could not answer, by what was done instead (`open`, `closed`).
pub const REDIS_ERRORS: &str = "frontier_gateway_rate_limit_redis_errors_total";
/// 1 when a Redis outage lets calls through (fails open), 0 when it refuses them.
pub const FAIL_MODE: &str = "frontier_gateway_rate_limit_fail_mode";

/// `[gateway.rate_limits]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Off: every call passes and answers carry no `RateLimit-*` headers.
    pub enabled: bool,
    /// Each tenant's quota, unless `tenants` names it.
    pub default_quota: Quota,
    /// Each API key's own quota, within its tenant's.
    pub per_key: Quota,
    /// Quotas of named tenants.
    pub tenants: BTreeMap<String, Quota>,
    /// What a check does when Redis cannot answer: `open` (pass, limited per instance) keeps the
    /// API up through a cache outage; `closed` (refuse) suits quotas that are billed.
    pub on_redis_error: RedisFailure,
    /// Prefix of the bucket keys in Redis.
    pub key_prefix: String,
    /// The longest a check waits for Redis before `on_redis_error` applies.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            default_quota: Quota { per_second: 100, burst: 200 },
            per_key: Quota { per_second: 50, burst: 100 },
            tenants: BTreeMap::new(),
            on_redis_error: RedisFailure::Open,
            key_prefix: "frontier:ratelimit:".into(),
            redis_timeout: Duration::from_millis(200),
        }
    }
}

impl RateLimitSettings {
    /// Checks what serde cannot; keys are relative to `[gateway.rate_limits]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.default_quota.validate().map_err(|e| e.within("default_quota"))?;
        self.per_key.validate().map_err(|e| e.within("per_key"))?;
        for (tenant, quota) in &self.tenants {
            if tenant.trim().is_empty() {
                return Err(InvalidSetting::new("tenants", "names an empty tenant"));
            }
            quota.validate().map_err(|e| e.within(&format!("tenants.{tenant}")))?;
        }
        if self.redis_timeout.is_zero() || self.redis_timeout > Duration::from_secs(5) {
            return Err(InvalidSetting::new("redis_timeout", "must be from 1ms to 5s"));
        }
        Ok(())
    }

    /// The quota of `tenant`.
    pub fn tenant_quota(&self, tenant: &str) -> Quota {
        self.tenants.get(tenant).copied().unwrap_or(self.default_quota)
    }
}

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Calls per second, sustained.
    pub per_second: u32,
    /// Calls allowed at once after a quiet time.
    pub burst: u32,
}

impl Quota {
    fn validate(&self) -> Result<(), InvalidSetting> {
        if self.per_second == 0 || self.per_second > 1_000_000 {
            return Err(InvalidSetting::new("per_second", "must be from 1 to 1000000"));
        }
        if self.burst == 0 || self.burst > 10_000_000 {
            return Err(InvalidSetting::new("burst", "must be from 1 to 10000000"));
        }
        Ok(())
    }

    /// Milliseconds between calls at the sustained rate.
    fn interval_ms(self) -> f64 {
        1000.0 / f64::from(self.per_second)
    }
}

/// What a check does when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailure {
    /// Let calls through a per-instance limiter.
    Open,
    /// Refuse them.
    Closed,
}

/// Who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionSource {
    /// The shared buckets in Redis.
    Redis,
    /// Redis failed; the instance's own limiter decided (`open`).
    Local,
    /// Redis failed and calls are refused (`closed`).
    FailedClosed,
    /// Limits are off.
    Disabled,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Whether the call may proceed.
    pub allowed: bool,
    /// The burst of the tighter bucket.
    pub limit: u32,
    /// Calls left in it right now.
    pub remaining: u32,
    /// Until it is full again.
    pub reset_after: Duration,
    /// When refused: how long until a call would pass.
    pub retry_after: Option<Duration>,
    /// Who decided.
    pub source: DecisionSource,
}

impl Decision {
    /// The `RateLimit-*` headers (draft-ietf-httpapi-ratelimit-headers) and, when refused,
    /// `Retry-After`; seconds rounded up. Names are lowercase, as HTTP/2 requires.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        if self.source == DecisionSource::Disabled {
            return Vec::new();
        }
        let mut headers = vec![
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", seconds_up(self.reset_after).to_string()),
        ];
        if let Some(retry) = self.retry_after.filter(|_| !self.allowed) {
            headers.push(("retry-after", seconds_up(retry).max(1).to_string()));
        }
        headers
    }
}

/// Whole seconds, rounded up.
fn seconds_up(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000).try_into().unwrap_or(u64::MAX)
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
}

/// Both buckets of a call, checked and charged at once against Redis's clock. Returns
/// `{allowed, diff_tenant, diff_key, reset_tenant, reset_key}` as strings (Lua numbers would
/// be truncated to integers): a negative diff is how long until that bucket lets a call pass.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function bucket(key, interval, tolerance)
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  return new_tat, now - (new_tat - tolerance)
end
local tat1, diff1 = bucket(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
local tat2, diff2 = bucket(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if diff1 < 0 or diff2 < 0 then
  return {0, tostring(diff1), tostring(diff2), tostring(tat1 - now), tostring(tat2 - now)}
end
redis.call('SET', KEYS[1], tostring(tat1), 'PX', math.ceil(tat1 - now))
redis.call('SET', KEYS[2], tostring(tat2), 'PX', math.ceil(tat2 - now))
return {1, tostring(diff1), tostring(diff2), tostring(tat1 - now), tostring(tat2 - now)}
";

/// The quotas of one gateway instance. Cheap to share behind an `Arc`.
pub struct RateLimiter {
    settings: RateLimitSettings,
    connection: Arc<RwLock<Option<ConnectionManager>>>,
    script: redis::Script,
    local: DashMap<String, Arc<DefaultDirectRateLimiter>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter over the Redis at `redis`. A Redis that is down at start is not an error: the
    /// limiter connects when it can, and until then `on_redis_error` applies.
    /// Connecting goes on in the background until it succeeds or `shutdown`; once connected,
    /// the connection reconnects by itself.
    pub async fn connect(
        redis: &RedisSettings,
        settings: RateLimitSettings,
        shutdown: CancellationToken,
    ) -> Result<RateLimiter, RateLimitError> {
        let client = redis::Client::open(redis.url.as_str())
            .map_err(|source| RateLimitError::InvalidUrl { url: crate::health::redact(&redis.url), source })?;
        let open = if settings.on_redis_error == RedisFailure::Open { 1.0 } else { 0.0 };
        ::metrics::describe_gauge!(
            FAIL_MODE,
            "1 when a Redis outage lets gateway calls through, 0 when it refuses them."
        );
        ::metrics::describe_counter!(RATE_LIMITED, "Gateway calls refused over quota, by bucket.");
        ::metrics::describe_counter!(REDIS_ERRORS, "Quota checks Redis could not answer, by what was done instead.");
        ::metrics::gauge!(FAIL_MODE).set(open);
        let limiter = RateLimiter {
            settings,
            connection: Arc::new(RwLock::new(None)),
            script: redis::Script::new(GCRA),
            local: DashMap::new(),
        };
        if limiter.settings.enabled {
            connect(client, limiter.connection.clone(), shutdown).await;
        }
        Ok(limiter)
    }

    /// Checks and charges one call of `key` (its subject) for `tenant`.
    pub async fn check(&self, tenant: &str, key: &str) -> Decision {
        if !self.settings.enabled {
            let forever = Duration::ZERO;
            return Decision {
                allowed: true,
                limit: 0,
                remaining: 0,
                reset_after: forever,
                retry_after: None,
                source: DecisionSource::Disabled,
            };
        }
        let tenant_quota = self.settings.tenant_quota(tenant);
        let key_quota = self.settings.per_key;
        let checked = match self.connection() {
            Some(connection) => {
                let run = self.run_script(connection, tenant, key, tenant_quota, key_quota);
                match tokio::time::timeout(self.settings.redis_timeout, run).await {
                    Ok(Ok(reply)) => Ok(reply),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err(format!("no answer within {:?}", self.settings.redis_timeout)),
                }
            }
            None => Err("not connected".to_owned()),
        };
        match checked {
            Ok(reply) => decide(&reply, tenant_quota, key_quota),
            Err(reason) => self.without_redis(tenant, tenant_quota, &reason),
        }
    }

    async fn run_script(
        &self,
        mut connection: ConnectionManager,
        tenant: &str,
        key: &str,
        tenant_quota: Quota,
        key_quota: Quota,
    ) -> Result<Vec<String>, redis::RedisError> {
        let prefix = &self.settings.key_prefix;
        let tolerance = |quota: Quota| quota.interval_ms() * f64::from(quota.burst);
        self.script
            .key(format!("{prefix}tenant:{tenant}"))
            .key(format!("{prefix}key:{tenant}:{key}"))
            .arg(tenant_quota.interval_ms())
            .arg(tolerance(tenant_quota))
            .arg(key_quota.interval_ms())
            .arg(tolerance(key_quota))
            .invoke_async(&mut connection)
            .await
    }

    /// The connection, if one was made: a check never waits for connecting (the connector task
    /// does), so a Redis that is down costs each call nothing but the failure path.
    fn connection(&self) -> Option<ConnectionManager> {
        self.connection.read().ok().and_then(|connection| connection.clone())
    }

    /// Redis did not answer: count it (with what is done instead), log it, then pass through
    /// the instance's own limiter or refuse.
    fn without_redis(&self, tenant: &str, quota: Quota, reason: &str) -> Decision {
        let mode = match self.settings.on_redis_error {
            RedisFailure::Open => "open",
            RedisFailure::Closed => "closed",
        };
        ::metrics::counter!(REDIS_ERRORS, "mode" => mode).increment(1);
        tracing::warn!(reason, mode, "rate limits: Redis did not answer a check");
        match self.settings.on_redis_error {
            RedisFailure::Closed => Decision {
                allowed: false,
                limit: quota.burst,
                remaining: 0,
                reset_after: Duration::from_secs(1),
                retry_after: Some(Duration::from_secs(1)),
                source: DecisionSource::FailedClosed,
            },
            RedisFailure::Open => {
                let limiter =
                    self.local.entry(tenant.to_owned()).or_insert_with(|| Arc::new(local_limiter(quota))).clone();
                let passed = limiter.check();
                if passed.is_err() {
                    ::metrics::counter!(RATE_LIMITED, "scope" => "tenant").increment(1);
                }
                let retry_after = passed.err().map(|not_until| {
                    not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()))
                });
                Decision {
                    allowed: retry_after.is_none(),
                    limit: quota.burst,
                    remaining: 0,
                    reset_after: Duration::from_secs_f64(f64::from(quota.burst) / f64::from(quota.per_second)),
                    retry_after,
                    source: DecisionSource::Local,
                }
            }
        }
    }
}

/// Connects to Redis into `slot`: once now (a start with Redis up is checked by Redis from the
/// first call), then in a background task every second until it succeeds.
async fn connect(client: redis::Client, slot: Arc<RwLock<Option<ConnectionManager>>>, shutdown: CancellationToken) {
    let attempt = |client: redis::Client| async move {
        match tokio::time::timeout(Duration::from_secs(2), ConnectionManager::new(client)).await {
            Ok(Ok(connection)) => Some(connection),
            Ok(Err(error)) => {
                tracing::warn!(%error, "rate limits: cannot connect to Redis; retrying every second");
                None
            }
            Err(_) => {
                tracing::warn!("rate limits: connecting to Redis timed out; retrying every second");
                None
            }
        }
    };
    let store = |slot: &RwLock<Option<ConnectionManager>>, connection| {
        if let Ok(mut slot) = slot.write() {
            *slot = Some(connection);
        }
    };
    if let Some(connection) = attempt(client.clone()).await {
        store(&slot, connection);
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Some(connection) = attempt(client.clone()).await {
                store(&slot, connection);
                tracing::info!("rate limits: connected to Redis");
                return;
            }
        }
    });
}

/// A per-instance limiter with `quota` (both numbers were validated non-zero).
fn local_limiter(quota: Quota) -> DefaultDirectRateLimiter {
    let per_second = NonZeroU32::new(quota.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN);
    governor::RateLimiter::direct(GovernorQuota::per_second(per_second).allow_burst(burst))
}

/// The decision from the script's reply; the tighter bucket's numbers are reported.
fn decide(reply: &[String], tenant: Quota, key: Quota) -> Decision {
    let number = |index: usize| reply.get(index).and_then(|text| text.parse::<f64>().ok()).unwrap_or(0.0);
    let allowed = number(0) >= 1.0;
    let buckets = [(number(1), number(3), tenant, "tenant"), (number(2), number(4), key, "key")];
    let remaining = |(diff, _, quota, _): (f64, f64, Quota, &str)| (diff / quota.interval_ms()).floor().max(0.0);
    let (tightest, _) = buckets
        .iter()
        .map(|bucket| (bucket, remaining(*bucket)))
        .fold(None::<(&(f64, f64, Quota, &str), f64)>, |best, (bucket, left)| match best {
            Some((_, best_left)) if best_left <= left => best,
            _ => Some((bucket, left)),
        })
        .unwrap_or((&buckets[0], 0.0));
    let (_, reset_ms, quota, _) = *tightest;
    let millis = |ms: f64| Duration::from_secs_f64(ms.max(0.0) / 1000.0);
    let mut retry_after = None;
    if !allowed {
        let wait = buckets.iter().filter(|(diff, ..)| *diff < 0.0).map(|(diff, ..)| -diff).fold(0.0, f64::max);
        for (diff, _, _, scope) in &buckets {
            if *diff < 0.0 {
                ::metrics::counter!(RATE_LIMITED, "scope" => *scope).increment(1);
            }
        }
        retry_after = Some(millis(wait));
    }
    Decision {
        allowed,
        limit: quota.burst,
        remaining: if allowed { remaining(*tightest) as u32 } else { 0 },
        reset_after: millis(reset_ms),
        retry_after,
        source: DecisionSource::Redis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(values: [&str; 5]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    const TENANT: Quota = Quota { per_second: 10, burst: 20 };
    const KEY: Quota = Quota { per_second: 5, burst: 10 };

    #[test]
    fn an_allowed_call_reports_the_tighter_buckets_calls_left() {
        // Tenant: 15 intervals of 100 ms in hand; key: 3 intervals of 200 ms.
        let decision = decide(&reply(["1", "1500", "600", "500", "1400"]), TENANT, KEY);
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (10, 3));
    }

    #[test]
    fn a_refusal_says_how_long_until_a_call_passes() {
        let decision = decide(&reply(["0", "300", "-250", "500", "2000"]), TENANT, KEY);
        assert!(!decision.allowed);
        assert_eq!(decision.retry_after, Some(Duration::from_millis(250)));
        let headers = decision.headers();
        assert!(headers.contains(&("retry-after", "1".to_owned())), "{headers:?}");
    }

    #[test]
    fn header_seconds_round_up() {
        assert_eq!(seconds_up(Duration::from_millis(1001)), 2);
        assert_eq!(seconds_up(Duration::from_millis(1000)), 1);
        assert_eq!(seconds_up(Duration::ZERO), 0);
    }

    #[test]
    fn a_named_tenant_has_its_own_quota() {
        let mut settings = RateLimitSettings::default();
        settings.tenants.insert("acme".into(), Quota { per_second: 1, burst: 2 });
        assert_eq!(settings.tenant_quota("acme").burst, 2);
        assert_eq!(settings.tenant_quota("globex"), settings.default_quota);
    }

    #[test]
    fn a_zero_rate_is_refused() {
        let mut settings = RateLimitSettings::default();
        settings.per_key.per_second = 0;
        assert_eq!(settings.validate().unwrap_err().key, "per_key.per_second");
    }

    #[test]
    fn disabled_limits_add_no_headers() {
        let decision = Decision {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: None,
            source: DecisionSource::Disabled,
        };
        assert!(decision.headers().is_empty());
    }
}
