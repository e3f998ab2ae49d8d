//! Typed configuration: one TOML file per environment (`config/<environment>.toml`), every value
//! overridable by `FRONTIER_*` environment variables (`__` separates levels:
//! `FRONTIER_KAFKA__BOOTSTRAP_SERVERS`, `FRONTIER_BUS__SHUTDOWN_TIMEOUT=10s`).
//!
//! Every field has a default that points at the `ops/stack` services, so a missing key is never
//! an error, while an unknown key always is (a typo must not silently fall back to a default).
//!
//! This module is the ground floor: loading and validation helpers, and the sections no single
//! part of the system owns (Redis, PostgreSQL, paths, metrics, logs). Each library and worker owns
//! its own settings type; `crate::settings::Settings` puts them together.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
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

/// A value serde accepted that cannot work, with the key to fix: relative to its section, until
/// [`InvalidSetting::within`] puts the section in front.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration at `{key}`: {message}")]
pub struct InvalidSetting {
    /// Dotted key, e.g. `max_in_flight` or, once placed, `bus.max_in_flight`.
    pub key: String,
    /// What is wrong and what would do.
    pub message: String,
}

impl InvalidSetting {
    /// The setting `key` is invalid because of `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidSetting { key: key.into(), message: message.into() }
    }

    /// The same error with `section.` in front of its key.
    pub fn within(self, section: &str) -> Self {
        InvalidSetting { key: format!("{section}.{}", self.key), message: self.message }
    }
}

impl From<InvalidSetting> for ConfigError {
    fn from(error: InvalidSetting) -> Self {
        ConfigError::Invalid { key: error.key, message: error.message }
    }
}

/// Refuses a zero duration.
pub fn positive(key: &str, value: Duration) -> Result<(), InvalidSetting> {
    if value.is_zero() { Err(InvalidSetting::new(key, "must be greater than zero")) } else { Ok(()) }
}

/// Refuses a blank topic name.
pub fn topic_named(key: &str, topic: &str) -> Result<(), InvalidSetting> {
    if topic.trim().is_empty() { Err(InvalidSetting::new(key, "must name a topic")) } else { Ok(()) }
}

/// Loads `<config_dir>/<environment>.toml` over `T`'s defaults and applies `FRONTIER_*`
/// overrides; validation is the caller's.
pub fn load_file<T: Serialize + DeserializeOwned + Default>(
    environment: Environment,
    config_dir: &Path,
) -> Result<T, ConfigError> {
    let file = config_dir.join(format!("{environment}.toml"));
    if !file.is_file() {
        return Err(ConfigError::MissingFile(file));
    }
    extract(Figment::from(Serialized::defaults(T::default())).merge(Toml::file(file)))
}

/// `T`'s defaults plus `FRONTIER_*` overrides, no file: for tests and tools.
pub fn load_env<T: Serialize + DeserializeOwned + Default>() -> Result<T, ConfigError> {
    extract(Figment::from(Serialized::defaults(T::default())))
}

fn extract<T: DeserializeOwned>(figment: Figment) -> Result<T, ConfigError> {
    // FRONTIER_ENV and FRONTIER_CONFIG_DIR choose the file; they are not settings.
    let env = Env::prefixed("FRONTIER_").split("__").ignore(&["env", "config_dir"]);
    figment.merge(env).extract().map_err(|e| {
        let key = if e.path.is_empty() { "(root)".to_string() } else { e.path.join(".") };
        let origin = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
            Some(source) => format!(" (from {source})"),
            None => e.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default(),
        };
        ConfigError::Invalid { key, message: format!("{}{origin}", e.kind) }
    })
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

/// Redis connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS) URL.
    pub url: String,
    /// PEM file of the CA that signed the server's certificate, for a `rediss://` server the
    /// system does not trust (the local stack's: `.stack/tls/ca.pem`); unset: the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings { url: "redis://127.0.0.1:6379".into(), ca_file: None }
    }
}

impl RedisSettings {
    /// Settings for a plain `url` (tests and benchmarks that pick their own server).
    pub fn at(url: impl Into<String>) -> RedisSettings {
        RedisSettings { url: url.into(), ca_file: None }
    }

    /// A client for these settings (it connects on first use): over TLS for `rediss://`,
    /// trusting `ca_file` when set. Every Redis client of the project is made here.
    pub fn client(&self) -> Result<redis::Client, redis::RedisError> {
        let Some(ca_file) = self.ca_file.as_ref().filter(|_| self.url.starts_with("rediss://")) else {
            return redis::Client::open(self.url.as_str());
        };
        let root_cert = std::fs::read(ca_file).map_err(|error| {
            let detail = format!("reading the CA file {}: {error}", ca_file.display());
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "redis.ca_file", detail))
        })?;
        redis::Client::build_with_tls(
            self.url.as_str(),
            redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) },
        )
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

impl RedisSettings {
    /// Checks what serde cannot; keys are relative to `[redis]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            return Err(InvalidSetting::new("url", "must start with redis:// or rediss://"));
        }
        if let Some(ca_file) = &self.ca_file {
            if !self.url.starts_with("rediss://") {
                return Err(InvalidSetting::new("ca_file", "is only read for a rediss:// url"));
            }
            if !ca_file.is_file() {
                return Err(InvalidSetting::new("ca_file", format!("{} is not a readable file", ca_file.display())));
            }
        }
        Ok(())
    }
}

impl PostgresSettings {
    /// Checks what serde cannot; keys are relative to `[postgres]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(InvalidSetting::new("url", "must start with postgres:// or postgresql://"));
        }
        if self.max_connections == 0 {
            return Err(InvalidSetting::new("max_connections", "must be at least 1"));
        }
        Ok(())
    }
}

impl TopicOverrides {
    /// Checks what serde cannot; keys are relative to `[topics]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if let Some(rf) = self.replication_factor.filter(|rf| *rf < 1) {
            return Err(InvalidSetting::new("replication_factor", format!("{rf} is below 1")));
        }
        if let Some(isr) = self.min_insync_replicas.filter(|isr| *isr < 1) {
            return Err(InvalidSetting::new("min_insync_replicas", format!("{isr} is below 1")));
        }
        Ok(())
    }
}
