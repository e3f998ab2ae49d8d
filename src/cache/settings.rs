//! `CacheSettings`: sizes, lifetimes per analysis kind, encryption keys and Redis behaviour of
//! the request cache. Every field has a default, so a missing key is never an error; an unknown
//! key always is.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::InvalidSetting;

/// Longest accepted lifetime (ttl + grace) of an entry: a year. Longer is surely a typo, and
/// keeps millisecond arithmetic far from overflow.
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// The request cache: memory, Redis and disk layers in front of the analytics.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Upper bound of the memory layer, in bytes of cached payload (plus a small per-entry
    /// overhead). Admission and eviction are TinyLFU, so rarely used values do not push out
    /// popular ones.
    pub memory_bytes: u64,
    /// Folder of the disk layer (created if missing); relative paths are taken from the working
    /// directory. Each serving instance should have its own.
    pub disk_dir: PathBuf,
    /// Upper bound of the disk layer in bytes of stored files; 0 turns the disk layer off.
    pub disk_bytes: u64,
    /// Prefix of every Redis key the cache writes (`<prefix>:e:<key>` entries, `<prefix>:t:<tag>`
    /// tag sets, `<prefix>:v:<tag>` invalidation versions). Instances that share entries share it.
    pub redis_key_prefix: String,
    /// How long an entry is fresh when its kind has no entry in `kinds`.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// How long after expiry an entry may still be served (once refreshed in the background)
    /// when its kind has no entry in `kinds`. 0 turns stale-while-revalidate off.
    #[serde(with = "humantime_serde")]
    pub default_grace: Duration,
    /// Lifetimes per analysis kind (`market.volatility`, `portfolio.risk`, ...).
    pub kinds: BTreeMap<String, KindLifetime>,
    /// Values whose serialized entry is larger than this many bytes are LZ4-compressed before
    /// encryption; smaller ones are not worth the CPU.
    pub compression_threshold_bytes: usize,
    /// Encryption keys by id: 32 random bytes each, in standard base64. Every listed key can
    /// decrypt; only `current_key_id` encrypts, so keys rotate by adding a new one, making it
    /// current, and removing the old one once its entries have expired.
    pub encryption_keys: BTreeMap<String, String>,
    /// Id of the key that encrypts new entries; must be in `encryption_keys` or in the variable
    /// named by `encryption_keys_env`.
    pub current_key_id: String,
    /// Environment variable holding more keys as `id=base64[,id=base64...]`, so secrets need not
    /// sit in a config file; merged over `encryption_keys`. Empty to disable. A `FRONTIER_*`
    /// name is also read by the configuration loader as an override (an unknown key there)
    /// unless that loader ignores it; `FRONTIER_CACHE__ENCRYPTION_KEYS__<id>` is that route.
    pub encryption_keys_env: String,
    /// Background refreshes (stale-while-revalidate and XFetch) running at once in this
    /// process. One more is skipped, not queued: the entry is served as it is and a later
    /// request tries again, so a burst of expiring keys cannot take the database from live
    /// misses. The warmer has its own budget.
    pub max_background_refreshes: usize,
    /// XFetch's beta: how eagerly a fresh but hot entry is recomputed before it expires. 1.0 is
    /// the paper's optimum; larger recomputes earlier, 0 never early.
    pub xfetch_beta: f64,
    /// After a Redis failure, how long the cache serves without Redis before trying it again.
    #[serde(with = "humantime_serde")]
    pub redis_retry_backoff: Duration,
    /// Longest a Redis connect or command may take before it counts as a failure: a slow Redis
    /// must not make requests slower than computing.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// How long an invalidation version is remembered per tag (in memory and in Redis). Must
    /// exceed the longest entry lifetime and computation, so a late write is always caught.
    #[serde(with = "humantime_serde")]
    pub tag_version_retention: Duration,
    /// Topic of cache invalidation orders. Every process that writes to the cache (serving
    /// instances, the warmer) reads all of it, in a consumer group of its own.
    pub invalidations_topic: String,
    /// How long the recipe of a computed key (kind, params, tenant, entitlements, stored sealed
    /// in the cache for the warmer) is kept; the warmer extends it while the key stays hot.
    #[serde(with = "humantime_serde")]
    pub recipe_ttl: Duration,
}

/// Lifetime of the entries of one analysis kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KindLifetime {
    /// How long an entry is fresh; `default_ttl` when unset.
    #[serde(with = "humantime_serde")]
    pub ttl: Option<Duration>,
    /// How long after expiry it may be served stale while refreshed; `default_grace` when unset.
    #[serde(with = "humantime_serde")]
    pub grace: Option<Duration>,
}

/// How long one entry lives, as the tiered cache applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long the entry is fresh after it is computed.
    pub ttl: Duration,
    /// How long after `ttl` it may still be served stale while a refresh runs.
    pub grace: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            memory_bytes: 256 * 1024 * 1024,
            // Outside the working tree; set one folder per instance where several share a host.
            disk_dir: std::env::temp_dir().join("frontier-cache"),
            disk_bytes: 1024 * 1024 * 1024,
            redis_key_prefix: "frontier:cache".into(),
            default_ttl: Duration::from_secs(60),
            default_grace: Duration::from_secs(30),
            kinds: BTreeMap::new(),
            compression_threshold_bytes: 1024,
            encryption_keys: BTreeMap::new(),
            current_key_id: String::new(),
            encryption_keys_env: "CACHE_ENCRYPTION_KEYS".into(),
            max_background_refreshes: 8,
            xfetch_beta: 1.0,
            redis_retry_backoff: Duration::from_secs(1),
            redis_timeout: Duration::from_millis(500),
            tag_version_retention: Duration::from_secs(24 * 3600),
            invalidations_topic: "frontier.cache.invalidations".into(),
            recipe_ttl: Duration::from_secs(3600),
        }
    }
}

// Keys are secrets: Debug (logs, panics) shows only their ids.
impl fmt::Debug for CacheSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheSettings")
            .field("memory_bytes", &self.memory_bytes)
            .field("disk_dir", &self.disk_dir)
            .field("disk_bytes", &self.disk_bytes)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("default_ttl", &self.default_ttl)
            .field("default_grace", &self.default_grace)
            .field("kinds", &self.kinds)
            .field("compression_threshold_bytes", &self.compression_threshold_bytes)
            .field("encryption_keys", &self.encryption_keys.keys().collect::<Vec<_>>())
            .field("current_key_id", &self.current_key_id)
            .field("encryption_keys_env", &self.encryption_keys_env)
            .field("max_background_refreshes", &self.max_background_refreshes)
            .field("xfetch_beta", &self.xfetch_beta)
            .field("redis_retry_backoff", &self.redis_retry_backoff)
            .field("redis_timeout", &self.redis_timeout)
            .field("tag_version_retention", &self.tag_version_retention)
            .field("invalidations_topic", &self.invalidations_topic)
            .field("recipe_ttl", &self.recipe_ttl)
            .finish()
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> InvalidSetting {
    InvalidSetting::new(key, message)
}

impl CacheSettings {
    /// The lifetime of entries of `kind`.
    pub fn policy_for(&self, kind: &str) -> CachePolicy {
        let lifetime = self.kinds.get(kind).copied().unwrap_or_default();
        CachePolicy {
            ttl: lifetime.ttl.unwrap_or(self.default_ttl),
            grace: lifetime.grace.unwrap_or(self.default_grace),
        }
    }

    /// A copy safe to print: encryption keys are masked.
    pub fn redacted(&self) -> CacheSettings {
        let mut copy = self.clone();
        for value in copy.encryption_keys.values_mut() {
            *value = "***".into();
        }
        copy
    }

    /// Checks what serde cannot: sizes, lifetimes, beta and key syntax. Keys from the
    /// environment are checked when the keyring is built.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.memory_bytes < 1024 * 1024 {
            return Err(invalid("memory_bytes", "must be at least 1 MiB"));
        }
        if self.disk_bytes > 0 && self.disk_dir.as_os_str().is_empty() {
            return Err(invalid("disk_dir", "must be set while disk_bytes > 0"));
        }
        if self.redis_key_prefix.is_empty() || self.redis_key_prefix.chars().any(char::is_whitespace) {
            return Err(invalid("redis_key_prefix", "must be non-empty and without spaces"));
        }
        check_lifetime("default_ttl", "default_grace", self.default_ttl, self.default_grace)?;
        for (kind, lifetime) in &self.kinds {
            let policy = self.policy_for(kind);
            check_lifetime(&format!("kinds.{kind}.ttl"), &format!("kinds.{kind}.grace"), policy.ttl, policy.grace)?;
            if lifetime.ttl.is_none() && lifetime.grace.is_none() {
                return Err(invalid(format!("kinds.{kind}"), "sets neither ttl nor grace"));
            }
        }
        if self.max_background_refreshes == 0 {
            return Err(invalid("max_background_refreshes", "must be at least 1"));
        }
        if !(self.xfetch_beta.is_finite() && (0.0..=100.0).contains(&self.xfetch_beta)) {
            return Err(invalid("xfetch_beta", "must be a number from 0 to 100 (1.0 is the usual choice)"));
        }
        if self.redis_retry_backoff.is_zero() || self.redis_retry_backoff > Duration::from_secs(600) {
            return Err(invalid("redis_retry_backoff", "must be more than 0 and at most 10m"));
        }
        if self.redis_timeout.is_zero() || self.redis_timeout > Duration::from_secs(60) {
            return Err(invalid("redis_timeout", "must be more than 0 and at most 60s"));
        }
        let longest = self.kinds.keys().map(|k| self.policy_for(k)).chain([self.policy_for("")]);
        let longest = longest.map(|p| p.ttl + p.grace).max().unwrap_or_default();
        if self.tag_version_retention <= longest {
            return Err(invalid(
                "tag_version_retention",
                format!("must exceed the longest entry lifetime (ttl + grace = {longest:?})"),
            ));
        }
        if self.invalidations_topic.trim().is_empty() {
            return Err(invalid("invalidations_topic", "must name a topic"));
        }
        if self.recipe_ttl.is_zero() {
            return Err(invalid("recipe_ttl", "must be greater than zero"));
        }
        for (id, key) in &self.encryption_keys {
            super::keyring::check_key(id, key).map_err(|e| invalid(format!("encryption_keys.{id}"), e.to_string()))?;
        }
        if !self.current_key_id.is_empty()
            && !self.encryption_keys.contains_key(&self.current_key_id)
            && self.encryption_keys_env.is_empty()
        {
            return Err(invalid("current_key_id", "names no key in encryption_keys"));
        }
        Ok(())
    }
}

fn check_lifetime(ttl_key: &str, grace_key: &str, ttl: Duration, grace: Duration) -> Result<(), InvalidSetting> {
    if ttl.is_zero() {
        return Err(invalid(ttl_key, "must be more than 0"));
    }
    if ttl + grace > MAX_LIFETIME {
        return Err(invalid(grace_key, "ttl + grace must be at most a year"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        CacheSettings::default().validate().unwrap();
    }

    #[test]
    fn a_kind_overrides_only_what_it_sets() {
        let settings: CacheSettings =
            toml::from_str("default_ttl = \"60s\"\ndefault_grace = \"10s\"\n[kinds.\"option.price\"]\nttl = \"5s\"\n")
                .unwrap();
        assert_eq!(
            settings.policy_for("option.price"),
            CachePolicy { ttl: Duration::from_secs(5), grace: Duration::from_secs(10) }
        );
        assert_eq!(settings.policy_for("other").ttl, Duration::from_secs(60));
        settings.validate().unwrap();
    }

    #[test]
    fn settings_survive_a_toml_round_trip() {
        let mut settings = CacheSettings::default();
        settings.kinds.insert("option.price".into(), KindLifetime { ttl: Some(Duration::from_secs(5)), grace: None });
        let text = toml::to_string(&settings).unwrap();
        let back: CacheSettings = toml::from_str(&text).unwrap();
        assert_eq!(back.kinds, settings.kinds);
        assert_eq!(back.policy_for("option.price"), settings.policy_for("option.price"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(toml::from_str::<CacheSettings>("memory_byte = 5").is_err());
        let settings = CacheSettings { xfetch_beta: -1.0, ..CacheSettings::default() };
        assert_eq!(settings.validate().unwrap_err().key, "xfetch_beta");
        let settings = CacheSettings { default_ttl: Duration::ZERO, ..CacheSettings::default() };
        assert_eq!(settings.validate().unwrap_err().key, "default_ttl");
        let settings = CacheSettings { max_background_refreshes: 0, ..CacheSettings::default() };
        assert_eq!(settings.validate().unwrap_err().key, "max_background_refreshes");
    }

    #[test]
    fn redacted_and_debug_hide_keys() {
        let mut settings = CacheSettings::default();
        settings.encryption_keys.insert("k1".into(), "c2VjcmV0".into());
        assert!(!format!("{settings:?}").contains("c2VjcmV0"));
        assert_eq!(settings.redacted().encryption_keys["k1"], "***");
    }
}
