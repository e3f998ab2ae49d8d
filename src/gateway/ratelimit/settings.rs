//! `[gateway.rate_limits]`: the quotas, and what a check does when Redis cannot answer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::InvalidSetting;

/// The highest `per_second` a quota may have: one call a microsecond, the resolution of the
/// shared buckets (see [`Quota::interval_us`]).
const MAX_PER_SECOND: u32 = 1_000_000;
/// The highest `burst`: far above any real quota, low enough that a bucket's window in
/// microseconds stays an exact integer in Lua's doubles.
const MAX_BURST: u32 = 10_000_000;

/// `[gateway.rate_limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Off: every call passes and answers carry no `RateLimit-*` headers.
    pub enabled: bool,
    /// Each tenant's quota, unless `tenants` names it.
    pub default_quota: Quota,
    /// Each API key's own quota, within its tenant's: one key cannot use up its tenant's quota.
    pub per_key: Quota,
    /// Quotas of named tenants, replacing `default_quota` for them.
    pub tenants: BTreeMap<String, Quota>,
    /// What a check does when Redis cannot answer: `open` (pass, limited per instance by the
    /// same quotas) keeps the API up through a cache outage; `closed` (refuse, `Retry-After: 1`)
    /// suits tenants billed by quota, where letting calls through unmetered costs money.
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
        if self.key_prefix.is_empty() {
            // Bucket keys would then be bare tenant names, colliding with anything else in Redis.
            return Err(InvalidSetting::new("key_prefix", "must not be empty"));
        }
        if self.redis_timeout.is_zero() || self.redis_timeout > Duration::from_secs(5) {
            return Err(InvalidSetting::new("redis_timeout", "must be from 1ms to 5s"));
        }
        Ok(())
    }

    /// The quota of `tenant`: its own under `tenants`, else `default_quota`.
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
        if self.per_second == 0 || self.per_second > MAX_PER_SECOND {
            return Err(InvalidSetting::new("per_second", format!("must be from 1 to {MAX_PER_SECOND}")));
        }
        if self.burst == 0 || self.burst > MAX_BURST {
            return Err(InvalidSetting::new("burst", format!("must be from 1 to {MAX_BURST}")));
        }
        Ok(())
    }

    /// Microseconds between calls at the sustained rate, rounded to the nearest (at least 1).
    /// Whole microseconds keep the script's arithmetic exact, so a full bucket lets exactly
    /// `burst` calls through; the rounding moves a rate by at most 0.5 µs per call (0.05% at
    /// 1,000 calls a second, 5% at 100,000).
    pub fn interval_us(self) -> u64 {
        let per_second = u64::from(self.per_second.max(1));
        ((1_000_000 + per_second / 2) / per_second).max(1)
    }

    /// How far ahead of now a bucket's theoretical arrival time may run: `burst` intervals.
    pub fn tolerance_us(self) -> u64 {
        self.interval_us() * u64::from(self.burst)
    }
}

/// What a check does when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailure {
    /// Let calls through the instance's own limiter, with the same quotas.
    Open,
    /// Refuse them.
    Closed,
}

impl RedisFailure {
    /// The `mode` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            RedisFailure::Open => "open",
            RedisFailure::Closed => "closed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(RateLimitSettings::default().validate(), Ok(()));
    }

    #[test]
    fn a_zero_rate_is_refused_with_its_key() {
        let mut settings = RateLimitSettings::default();
        settings.per_key.per_second = 0;
        assert_eq!(settings.validate().map_err(|e| e.key), Err("per_key.per_second".to_owned()));
    }

    #[test]
    fn a_zero_burst_is_refused_with_its_key() {
        let mut settings = RateLimitSettings::default();
        settings.default_quota.burst = 0;
        assert_eq!(settings.validate().map_err(|e| e.key), Err("default_quota.burst".to_owned()));
    }

    #[test]
    fn a_named_tenants_quota_is_checked_under_its_name() {
        let mut settings = RateLimitSettings::default();
        settings.tenants.insert("acme".into(), Quota { per_second: 1, burst: 0 });
        assert_eq!(settings.validate().map_err(|e| e.key), Err("tenants.acme.burst".to_owned()));
    }

    #[test]
    fn an_empty_tenant_name_is_refused() {
        let mut settings = RateLimitSettings::default();
        settings.tenants.insert(" ".into(), Quota { per_second: 1, burst: 1 });
        assert_eq!(settings.validate().map_err(|e| e.key), Err("tenants".to_owned()));
    }

    #[test]
    fn a_redis_timeout_of_zero_is_refused() {
        let settings = RateLimitSettings { redis_timeout: Duration::ZERO, ..RateLimitSettings::default() };
        assert_eq!(settings.validate().map_err(|e| e.key), Err("redis_timeout".to_owned()));
    }

    #[test]
    fn a_named_tenant_has_its_own_quota_and_others_the_default() {
        let mut settings = RateLimitSettings::default();
        settings.tenants.insert("acme".into(), Quota { per_second: 1, burst: 2 });
        assert_eq!(settings.tenant_quota("acme"), Quota { per_second: 1, burst: 2 });
        assert_eq!(settings.tenant_quota("globex"), settings.default_quota);
    }

    #[test]
    fn settings_read_from_toml_with_lowercase_modes_and_human_durations() {
        let settings: RateLimitSettings = toml::from_str(
            r#"
            on_redis_error = "closed"
            redis_timeout = "250ms"
            per_key = { per_second = 5, burst = 10 }
            [tenants.acme]
            per_second = 1
            burst = 3
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.on_redis_error, RedisFailure::Closed);
        assert_eq!(settings.redis_timeout, Duration::from_millis(250));
        assert_eq!(settings.per_key, Quota { per_second: 5, burst: 10 });
        assert_eq!(settings.tenant_quota("acme"), Quota { per_second: 1, burst: 3 });
        assert_eq!(settings.default_quota, RateLimitSettings::default().default_quota);
    }

    #[test]
    fn an_unknown_field_is_refused() {
        assert!(toml::from_str::<RateLimitSettings>("fail_open = true").is_err());
        assert!(toml::from_str::<RateLimitSettings>("per_key = { per_second = 1, burst = 1, x = 1 }").is_err());
    }

    #[test]
    fn intervals_are_whole_microseconds_and_tolerance_is_burst_intervals() {
        assert_eq!(Quota { per_second: 1, burst: 3 }.interval_us(), 1_000_000);
        assert_eq!(Quota { per_second: 3, burst: 3 }.interval_us(), 333_333);
        assert_eq!(Quota { per_second: 1_000_000, burst: 3 }.interval_us(), 1);
        assert_eq!(Quota { per_second: 4, burst: 10 }.tolerance_us(), 2_500_000);
    }
}
