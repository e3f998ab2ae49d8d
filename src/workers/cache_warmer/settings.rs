//! `[workers.cache_warmer]`: what counts as hot, how early to refresh, and how much load the
//! warmer may add.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{InvalidSetting, topic_named};
use crate::workers::WorkerConfig;

/// `[workers.cache_warmer]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheWarmerSettings {
    /// Topic it counts answers from: the serving workers' `heat_topic` (`CacheHeat`, one record
    /// per instance and second), or a topic of `RequestCompleted` events with cache keys (one
    /// per answer, what other services that answer from the cache may write).
    pub input_topic: String,
    /// Consumer group id; defaults to `<group_prefix>.cache-warmer`.
    pub group_id: Option<String>,
    /// Only answers of this service are counted (the serving worker's `serve`).
    pub service: String,
    /// Keys tracked at most (Space-Saving counters): bounds memory whatever the key space.
    pub tracked_keys: usize,
    /// Half-life of a key's request count: a key nobody asked for in a few half-lives cools off.
    #[serde(with = "humantime_serde")]
    pub half_life: Duration,
    /// Decayed request count from which a key is hot and kept warm.
    pub min_score: f64,
    /// Hot keys considered per scan, hottest first.
    pub max_hot_keys: usize,
    /// How early to refresh, as a fraction of the key's ttl (0.2: in the last fifth of it).
    pub refresh_ahead: f64,
    /// Refreshes running at once, at most: the warmer's share of the database and CPU. A scan
    /// queues up to a scan interval's budget of refreshes for them.
    pub max_concurrent_refreshes: usize,
    /// Refreshes started per second, at most (token bucket with one second of burst).
    pub max_refreshes_per_second: f64,
    /// Nice value (0 to 19) of a refresh's analysis, and of every thread of a `frontier run
    /// cache-warmer` process (consuming, price reads, sealing, Redis writes). Nobody waits for a
    /// refresh, so it runs like a serving instance's own background refreshes: below every live
    /// request on a machine it shares with one, and without taking one of the turns a process
    /// gives its cheap live analyses (one per core). 0 computes like a live request.
    pub refresh_nice: i32,
    /// How often the hot keys are scanned for ones about to expire.
    #[serde(with = "humantime_serde")]
    pub scan_interval: Duration,
    /// Holds refreshes back while a serving instance says, in Redis, that live requests fill
    /// its analysis pool (`<cache.redis_key_prefix>:busy`): the warmer saves latency only if
    /// it never takes cores or connections from the requests it is meant to speed up.
    pub yield_to_busy_serving: bool,
    /// Keys of the hot set published to Redis (`<cache.redis_key_prefix>:hot`), hottest first,
    /// from which a starting serving instance fills its memory layer; 0 publishes none.
    pub hot_set_keys: usize,
    /// How often the hot set is published. It lives ten times this in Redis, so a warmer that
    /// stops leaves a usable set behind for a while, but not forever.
    #[serde(with = "humantime_serde")]
    pub hot_set_interval: Duration,
    /// Memory layer of the warmer's own cache (recipes it reads, values it refreshes); the
    /// warmer has no disk layer, its refreshes go to Redis, where the serving instances look.
    pub memory_bytes: u64,
}

impl Default for CacheWarmerSettings {
    fn default() -> Self {
        CacheWarmerSettings {
            input_topic: "frontier.cache.heat".into(),
            group_id: None,
            // The serving worker's service name in its events (not imported: workers stay apart).
            service: "serve".into(),
            tracked_keys: 10_000,
            half_life: Duration::from_secs(60),
            min_score: 2.0,
            max_hot_keys: 2_000,
            refresh_ahead: 0.2,
            max_concurrent_refreshes: 2,
            max_refreshes_per_second: 50.0,
            // The serving worker's `compute.heavy_nice` as shipped (not imported: workers stay apart).
            refresh_nice: 10,
            scan_interval: Duration::from_millis(250),
            yield_to_busy_serving: true,
            hot_set_keys: 1_000,
            hot_set_interval: Duration::from_secs(5),
            memory_bytes: 16 * 1024 * 1024,
        }
    }
}

impl CacheWarmerSettings {
    /// How long a published hot set lives in Redis.
    pub fn hot_set_ttl(&self) -> Duration {
        self.hot_set_interval * 10
    }
}

impl WorkerConfig for CacheWarmerSettings {
    const SECTION: &'static str = "cache_warmer";
    const NAME: &'static str = "cache-warmer";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        vec![self.input_topic.clone()]
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key: &str, message: &str| Err(InvalidSetting::new(key, message));
        topic_named("input_topic", &self.input_topic)?;
        if self.tracked_keys == 0 || self.max_hot_keys == 0 {
            return invalid(if self.tracked_keys == 0 { "tracked_keys" } else { "max_hot_keys" }, "must be at least 1");
        }
        if self.half_life.is_zero() || self.scan_interval.is_zero() {
            return invalid(
                if self.half_life.is_zero() { "half_life" } else { "scan_interval" },
                "must be greater than zero",
            );
        }
        if !(self.min_score.is_finite() && self.min_score > 0.0) {
            return invalid("min_score", "must be a positive number");
        }
        if !(self.refresh_ahead.is_finite() && self.refresh_ahead > 0.0 && self.refresh_ahead < 1.0) {
            return invalid("refresh_ahead", "must be a fraction between 0 and 1 (exclusive)");
        }
        if self.max_concurrent_refreshes == 0 {
            return invalid("max_concurrent_refreshes", "must be at least 1");
        }
        if !(self.max_refreshes_per_second.is_finite() && self.max_refreshes_per_second > 0.0) {
            return invalid("max_refreshes_per_second", "must be a positive number");
        }
        if !(0..=19).contains(&self.refresh_nice) {
            return invalid("refresh_nice", "must be from 0 to 19");
        }
        if self.hot_set_interval < Duration::from_millis(100) {
            return invalid("hot_set_interval", "must be at least 100ms");
        }
        if self.hot_set_keys > 100_000 {
            return invalid("hot_set_keys", "must be at most 100000");
        }
        if self.memory_bytes < 1024 * 1024 {
            return invalid("memory_bytes", "must be at least 1 MiB");
        }
        Ok(())
    }
}
