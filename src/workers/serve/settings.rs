//! `[workers.serve]`: where the serving worker reads and writes, and who it says it is.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{InvalidSetting, topic_named};
use crate::market::pool::ComputeSettings;
use crate::workers::WorkerConfig;

/// `[workers.serve]`: topics, groups and identity of a serving process. The cache itself
/// (invalidation topic and recipe lifetime included) is configured in `[cache]`, the price store
/// in `[prices]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSettings {
    /// Topic of `AnalysisRequest`s.
    pub input_topic: String,
    /// Topic of the answers when a request names no `reply_to`.
    pub responses_topic: String,
    /// Topic of the `RequestCompleted` events (one per answer, keyed by service), read by the
    /// SLA monitor and the cache warmer.
    pub metrics_topic: String,
    /// Topic of the instance's per-key answer counts (`CacheHeat`, one record per
    /// `heat_interval`, keyed by service), read by the cache warmer.
    pub heat_topic: String,
    /// How long the instance counts its answers per key before writing them to `heat_topic`.
    #[serde(with = "humantime_serde")]
    pub heat_interval: Duration,
    /// Keys one `CacheHeat` record holds at most: a window that reaches this many is set aside
    /// whole and written with the next one at the next `heat_interval`, so no key is dropped
    /// and a record stays far below a Kafka message's size limit.
    pub heat_max_keys: usize,
    /// Consumer group of the request loop, shared by every instance; defaults to
    /// `<group_prefix>.serve`.
    pub group_id: Option<String>,
    /// Consumer group of the invalidation loop; must be unique per process, because every
    /// instance has to see every invalidation. Defaults to
    /// `<group_prefix>.serve.invalidations.<instance>`.
    pub invalidations_group_id: Option<String>,
    /// The instance id in `served_by` and in the events; defaults to `<host>-<pid>`.
    pub instance: Option<String>,
    /// Each computed entry lives its kind's ttl shortened by a random fraction up to this, so
    /// entries computed together (a cold start, a burst) do not all expire in the same second
    /// and stampede the database. Keep it below the warmer's `refresh_ahead`.
    pub ttl_jitter: f64,
    /// The longest `id`, `tenant`, `user`, `kind` or entitlement a request may carry, in bytes.
    /// They are echoed into answers and events and become cache-key parts: a longer one is
    /// dead-lettered (`field_too_long`).
    pub max_field_bytes: usize,
    /// The most entitlements one request may carry.
    pub max_entitlements: usize,
    /// Before taking partitions, the instance loads the entries of up to this many of the
    /// hottest keys (the cache warmer's hot set in Redis) into its memory layer, so its first
    /// requests are memory hits; 0 starts cold.
    pub warm_start_keys: usize,
    /// The longest a start waits for that warming and for opening its price store
    /// connections (all of `[postgres] max_connections`, side by side with the warming); past
    /// it the instance takes partitions with what it has loaded and opened.
    #[serde(with = "humantime_serde")]
    pub warm_start_timeout: Duration,
    /// How long the request loop's producer gathers answers and `RequestCompleted` events into
    /// a batch before sending (librdkafka's `linger.ms`), in place of `[kafka] linger` for this
    /// worker. Every answer waits for it: 1 ms against `[kafka] linger`'s 5 ms took the cached
    /// median of `frontier bench serve` from 9.1-9.7 to 5.4-5.8 ms (README, "Request serving"),
    /// and with one request in flight per broker the batches still grow with the load.
    #[serde(with = "humantime_serde")]
    pub answer_linger: Duration,
    /// How much analysis work the worker takes on: the cost limit of one request, and how
    /// heavy analyses take turns (`[workers.serve.compute]`).
    pub compute: ComputeSettings,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            input_topic: "frontier.requests".into(),
            responses_topic: "frontier.responses".into(),
            metrics_topic: "frontier.metrics".into(),
            heat_topic: "frontier.cache.heat".into(),
            heat_interval: Duration::from_secs(1),
            heat_max_keys: 2_000,
            group_id: None,
            invalidations_group_id: None,
            instance: None,
            ttl_jitter: 0.1,
            max_field_bytes: 256,
            max_entitlements: 64,
            warm_start_keys: 1_000,
            warm_start_timeout: Duration::from_secs(3),
            answer_linger: Duration::from_millis(1),
            compute: ComputeSettings::default(),
        }
    }
}

impl WorkerConfig for ServeSettings {
    const SECTION: &'static str = "serve";
    const NAME: &'static str = "serve";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        vec![self.input_topic.clone()]
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key: &str, message: &str| Err(InvalidSetting::new(key, message));
        topic_named("input_topic", &self.input_topic)?;
        topic_named("responses_topic", &self.responses_topic)?;
        topic_named("metrics_topic", &self.metrics_topic)?;
        topic_named("heat_topic", &self.heat_topic)?;
        if [&self.responses_topic, &self.metrics_topic, &self.heat_topic].contains(&&self.input_topic) {
            return invalid(
                "input_topic",
                "must differ from responses_topic, metrics_topic and heat_topic (answers would be read as requests)",
            );
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&self.heat_interval) {
            return invalid("heat_interval", "must be from 100ms to 60s");
        }
        if !(1..=10_000).contains(&self.heat_max_keys) {
            return invalid("heat_max_keys", "must be from 1 to 10000");
        }
        self.compute.validate().map_err(|e| e.within("compute"))?;
        if !(16..=65_536).contains(&self.max_field_bytes) {
            return invalid("max_field_bytes", "must be from 16 to 65536");
        }
        if self.invalidations_group_id.is_some() && self.invalidations_group_id == self.group_id {
            return invalid(
                "invalidations_group_id",
                "must differ from group_id (every instance must see every invalidation)",
            );
        }
        if self.instance.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return invalid("instance", "must not be empty when set");
        }
        if self.warm_start_keys > 100_000 {
            return invalid("warm_start_keys", "must be at most 100000");
        }
        if self.warm_start_timeout > Duration::from_secs(60) {
            return invalid("warm_start_timeout", "must be at most 60s (a start must not hang on Redis)");
        }
        if self.answer_linger > Duration::from_secs(1) {
            return invalid("answer_linger", "must be at most 1s (every answer waits for it)");
        }
        if !(self.ttl_jitter.is_finite() && (0.0..0.5).contains(&self.ttl_jitter)) {
            return invalid("ttl_jitter", "must be a fraction from 0 to below 0.5");
        }
        Ok(())
    }
}

impl ServeSettings {
    /// The instance id: configured, or `<host>-<pid>`.
    pub fn instance_id(&self) -> String {
        self.instance.clone().unwrap_or_else(crate::telemetry::instance_id)
    }
}
