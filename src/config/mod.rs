//! Typed configuration: one TOML file per environment (`config/<environment>.toml`), every value
//! overridable by `FRONTIER_*` environment variables (`__` separates levels:
//! `FRONTIER_KAFKA__BOOTSTRAP_SERVERS`, `FRONTIER_BUS__SHUTDOWN_TIMEOUT=10s`).
//!
//! Every field has a default that points at the `ops/stack` services, so a missing key is never
//! an error, while an unknown key always is (a typo must not silently fall back to a default).

mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist (set --config-dir or FRONTIER_CONFIG_DIR)")]
    MissingFile(PathBuf),
    #[error("invalid configuration at `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("unknown environment `{0}` (expected development, staging or production)")]
    UnknownEnvironment(String),
}

/// The deployment environment, which picks the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    #[default]
    Development,
    Staging,
    Production,
}

impl FromStr for Environment {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" | "dev" => Ok(Environment::Development),
            "staging" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            other => Err(ConfigError::UnknownEnvironment(other.into())),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        })
    }
}

/// The whole configuration of a `frontier` process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Kafka connection and client settings shared by every worker and command.
    pub kafka: KafkaSettings,
    /// The consumer loop every worker runs on.
    pub bus: BusSettings,
    /// Redis, the shared cache layer.
    pub redis: RedisSettings,
    /// PostgreSQL, the system of record for analytics data.
    pub postgres: PostgresSettings,
    /// Where schemas and topic definitions live.
    pub paths: PathSettings,
    /// Environment-wide overrides of the topic files.
    pub topics: TopicOverrides,
    /// Prometheus exposition.
    pub metrics: MetricsSettings,
    /// Log output.
    pub log: LogSettings,
    /// The request cache of the serving worker and the cache warmer: sizes, lifetimes per
    /// kind, encryption keys, Redis behaviour.
    pub cache: crate::cache::CacheSettings,
    /// Per-worker settings.
    pub workers: WorkerSettings,
}

/// Kafka connection and client tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list of brokers.
    pub bootstrap_servers: String,
    /// Prefix of every consumer group id; the worker name follows (`frontier.passthrough`).
    pub group_prefix: String,
    /// How long the producer waits to fill a batch; a little latency buys a lot of throughput.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long a produced record may take to be acknowledged before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// How often librdkafka reports statistics (consumer lag gauges come from these).
    #[serde(with = "humantime_serde")]
    pub statistics_interval: Duration,
    /// Timeout of admin and metadata requests.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Any other librdkafka setting, passed through as is (`security.protocol`, `sasl.mechanisms`,
    /// `ssl.ca.location`, ...). In environment variables write dots as underscores:
    /// `FRONTIER_KAFKA__CLIENT__SASL_USERNAME` sets `sasl.username`.
    #[serde(deserialize_with = "scalars_as_strings")]
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_prefix: "frontier".into(),
            linger: Duration::from_millis(5),
            delivery_timeout: Duration::from_secs(30),
            statistics_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            client: BTreeMap::new(),
        }
    }
}

/// Accepts `true` or `5000` as well as `"true"` or `"5000"`: environment variables carry no
/// types, and librdkafka wants every value as a string anyway.
fn scalars_as_strings<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Flag(bool),
        Integer(i64),
        Number(f64),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Text(s) => s,
                Scalar::Flag(b) => b.to_string(),
                Scalar::Integer(n) => n.to_string(),
                Scalar::Number(n) => n.to_string(),
            };
            (k, v)
        })
        .collect())
}

impl KafkaSettings {
    /// The pass-through client settings, with environment-style keys turned back into Kafka's.
    pub fn client_settings(&self) -> impl Iterator<Item = (String, &str)> {
        // Kafka setting names never contain underscores, so the mapping is unambiguous.
        self.client.iter().map(|(k, v)| (k.replace('_', "."), v.as_str()))
    }
}

/// The consumer loop shared by every worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSettings {
    /// Messages handled concurrently per process; offsets still commit in order.
    pub max_in_flight: usize,
    /// Where undecodable and rejected messages go, with headers saying why.
    pub dlq_topic: String,
    /// First wait before retrying a transient failure; doubles up to `retry_max_backoff`.
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Longest wait between retries of a transient failure.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// On SIGTERM, how long in-flight work may take to finish before the loop commits and leaves.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Topic every worker publishes its `WorkerStatus` to (lag, memory, CPU, descriptors).
    pub status_topic: String,
    /// How often a worker publishes its status; `0s` turns reports off. The SLA monitor takes
    /// a worker that stays silent for its `signal_stale_after` as gone.
    #[serde(with = "humantime_serde")]
    pub status_interval: Duration,
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            max_in_flight: 10_000,
            dlq_topic: "frontier.dlq".into(),
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(20),
            status_topic: "frontier.workers.status".into(),
            status_interval: Duration::from_secs(10),
        }
    }
}

/// Redis connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URL.
    pub url: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings { url: "redis://127.0.0.1:6379".into() }
    }
}

/// PostgreSQL connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// `postgres://user:password@host:port/database` URL.
    pub url: String,
    /// Size of each process's connection pool.
    pub max_connections: u32,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings { url: "postgres://frontier:frontier@127.0.0.1:5432/frontier".into(), max_connections: 8 }
    }
}

/// Where the declarative files live; relative paths are taken from the working directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathSettings {
    /// Folder of `.avsc` schemas (and `history/` with older versions).
    pub schemas: PathBuf,
    /// Folder of topic definitions (`<topic>.toml`).
    pub topics: PathBuf,
}

impl Default for PathSettings {
    fn default() -> Self {
        PathSettings { schemas: "schemas".into(), topics: "topics".into() }
    }
}

/// Environment-wide overrides of the topic files, e.g. replication 1 on a one-broker laptop.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicOverrides {
    /// Replaces every topic's `replication_factor` when set.
    pub replication_factor: Option<i32>,
    /// Replaces every topic's `min_insync_replicas` when set.
    pub min_insync_replicas: Option<i32>,
}

/// Prometheus exposition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Address of the `/metrics` endpoint of `frontier run`; unset turns it off.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))) }
    }
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `human` for terminals, `json` for log pipelines.
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info,frontier=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { format: LogFormat::Human, filter: "info".into() }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Per-worker settings, one table each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// The passthrough worker, which measures the bus itself.
    pub passthrough: PassthroughSettings,
    /// The SLA monitor: SLIs, rules and SLOs over `frontier.metrics`, alerts to `frontier.alerts`.
    pub sla: crate::sla::SlaWorkerSettings,
    /// The inference batcher: jobs from `frontier.inference.jobs` batched onto model instances,
    /// results to `frontier.inference.results`.
    pub inference: crate::inference::worker::InferenceWorkerSettings,
    /// The serving worker: requests from `frontier.requests` answered from the cache,
    /// responses to `frontier.responses`, events to `frontier.metrics`.
    pub serve: crate::cache::serve::ServeSettings,
    /// The cache warmer: hot keys from `frontier.metrics` recomputed before they expire.
    pub cache_warmer: crate::cache::warmer::CacheWarmerSettings,
}

/// The passthrough worker: consumes one topic and re-produces every message to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassthroughSettings {
    /// Topic to consume.
    pub input_topic: String,
    /// Topic to re-produce to.
    pub output_topic: String,
    /// Consumer group id; defaults to `<group_prefix>.passthrough`.
    pub group_id: Option<String>,
}

impl Default for PassthroughSettings {
    fn default() -> Self {
        PassthroughSettings {
            input_topic: "frontier.requests".into(),
            output_topic: "frontier.passthrough".into(),
            group_id: None,
        }
    }
}

impl Settings {
    /// Loads `<config_dir>/<environment>.toml`, applies `FRONTIER_*` overrides and validates.
    pub fn load(environment: Environment, config_dir: &Path) -> Result<Settings, ConfigError> {
        let file = config_dir.join(format!("{environment}.toml"));
        if !file.is_file() {
            return Err(ConfigError::MissingFile(file));
        }
        Self::from_figment(Figment::from(Serialized::defaults(Settings::default())).merge(Toml::file(file)))
    }

    /// Defaults plus `FRONTIER_*` overrides, no file: for tests and tools.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Self::from_figment(Figment::from(Serialized::defaults(Settings::default())))
    }

    fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        // FRONTIER_ENV and FRONTIER_CONFIG_DIR choose the file; they are not settings.
        let env = Env::prefixed("FRONTIER_").split("__").ignore(&["env", "config_dir"]);
        let settings: Settings = figment.merge(env).extract().map_err(|e| {
            let key = if e.path.is_empty() { "(root)".to_string() } else { e.path.join(".") };
            let origin = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                Some(source) => format!(" (from {source})"),
                None => e.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default(),
            };
            ConfigError::Invalid { key, message: format!("{}{origin}", e.kind) }
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// A copy safe to print: passwords in URLs and secret client settings are masked.
    pub fn redacted(&self) -> Settings {
        let mut copy = self.clone();
        copy.redis.url = crate::health::redact(&copy.redis.url);
        copy.postgres.url = crate::health::redact(&copy.postgres.url);
        copy.cache = copy.cache.redacted();
        for (key, value) in copy.kafka.client.iter_mut() {
            let key = key.to_lowercase();
            if ["password", "secret", "key", "token"].iter().any(|s| key.contains(s)) {
                *value = "***".into();
            }
        }
        copy
    }

    /// The consumer group id for a worker.
    pub fn group_id(&self, worker: &str) -> String {
        format!("{}.{worker}", self.kafka.group_prefix)
    }
}
