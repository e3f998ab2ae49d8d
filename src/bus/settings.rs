//! `[kafka]` and `[bus]`: how every process reaches Kafka, and the consumer loop every worker
//! runs on. Owned by the bus; the aggregate settings only place them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{InvalidSetting, positive};

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

    /// Whether consumer groups use KIP-848's protocol (`group.protocol = "consumer"` among the
    /// client settings) rather than the classic one.
    pub fn uses_kip_848_groups(&self) -> bool {
        self.client_settings().any(|(key, value)| key == "group.protocol" && value.eq_ignore_ascii_case("consumer"))
    }
}

/// The consumer loop shared by every worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSettings {
    /// Messages handled concurrently per process; offsets still commit in order.
    pub max_in_flight: usize,
    /// The most one produced record (key, value and headers) may take. An output over it is
    /// not sent: its input is dead-lettered and the worker may answer with an error instead.
    /// Keep it at or below the producer's `message.max.bytes` (1,000,000 by default) and the
    /// topics' `max.message.bytes`.
    pub max_message_bytes: usize,
    /// The most array items and map entries one consumed value may decode into, all levels
    /// together; a value announcing more is dead-lettered (`too_large`) before anything is
    /// allocated for it.
    pub max_decoded_items: usize,
    /// The deepest nesting of records, arrays, maps and unions a consumed value may have.
    pub max_nesting_depth: usize,
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
            max_message_bytes: 1_000_000,
            max_decoded_items: crate::bus::codec::DecodeLimits::default().max_items,
            max_nesting_depth: crate::bus::codec::DecodeLimits::default().max_depth,
            dlq_topic: "frontier.dlq".into(),
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(20),
            status_topic: "frontier.workers.status".into(),
            status_interval: Duration::from_secs(10),
        }
    }
}

/// librdkafka settings the bus owns: overriding them would break at-least-once delivery.
const RESERVED_CLIENT_KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    ("group.id", "group ids come from kafka.group_prefix and the worker"),
    ("enable.auto.offset.store", "the bus stores an offset only once the message's outputs are acknowledged"),
    ("enable.auto.commit", "the bus commits stored offsets itself"),
    (
        "enable.idempotence",
        "librdkafka's idempotent producer busy-polls while a batch is in flight (see bus::kafka::producer_config)",
    ),
    ("max.in.flight.requests.per.connection", "one request in flight keeps each partition's order through retries"),
    ("acks", "outputs must be acknowledged by all in-sync replicas"),
];

impl KafkaSettings {
    /// Checks what serde cannot; keys are relative to `[kafka]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(InvalidSetting::new("bootstrap_servers", "must name at least one broker"));
        }
        for server in self.bootstrap_servers.split(',') {
            if !server
                .trim()
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            {
                return Err(InvalidSetting::new("bootstrap_servers", format!("`{server}` is not host:port")));
            }
        }
        if self.group_prefix.trim().is_empty() {
            return Err(InvalidSetting::new("group_prefix", "must not be empty"));
        }
        positive("delivery_timeout", self.delivery_timeout)?;
        positive("statistics_interval", self.statistics_interval)?;
        positive("request_timeout", self.request_timeout)?;
        for (key, _) in self.client_settings() {
            if let Some((_, why)) = RESERVED_CLIENT_KEYS.iter().find(|(reserved, _)| *reserved == key) {
                return Err(InvalidSetting::new(format!("client.{key}"), format!("reserved: {why}")));
            }
        }
        Ok(())
    }

    /// The consumer group id of a worker: `<group_prefix>.<worker>`.
    pub fn group_id(&self, worker: &str) -> String {
        format!("{}.{worker}", self.group_prefix)
    }
}

impl BusSettings {
    /// What decoding one consumed value may cost.
    pub fn decode_limits(&self) -> crate::bus::codec::DecodeLimits {
        crate::bus::codec::DecodeLimits { max_items: self.max_decoded_items, max_depth: self.max_nesting_depth }
    }

    /// Checks what serde cannot; keys are relative to `[bus]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.max_in_flight == 0 {
            return Err(InvalidSetting::new("max_in_flight", "must be at least 1"));
        }
        if !(4096..=64 * 1024 * 1024).contains(&self.max_message_bytes) {
            return Err(InvalidSetting::new("max_message_bytes", "must be from 4096 to 64 MiB"));
        }
        if self.max_decoded_items == 0 || self.max_nesting_depth == 0 {
            let key = if self.max_decoded_items == 0 { "max_decoded_items" } else { "max_nesting_depth" };
            return Err(InvalidSetting::new(key, "must be at least 1"));
        }
        if self.dlq_topic.trim().is_empty() {
            return Err(InvalidSetting::new("dlq_topic", "must name a topic"));
        }
        positive("retry_initial_backoff", self.retry_initial_backoff)?;
        positive("shutdown_timeout", self.shutdown_timeout)?;
        if !self.status_interval.is_zero() && self.status_interval < Duration::from_secs(1) {
            return Err(InvalidSetting::new("status_interval", "must be 0s (off) or at least 1s"));
        }
        if !self.status_interval.is_zero() && self.status_topic.trim().is_empty() {
            return Err(InvalidSetting::new("status_topic", "must name a topic (or set bus.status_interval = \"0s\")"));
        }
        if self.retry_max_backoff < self.retry_initial_backoff {
            return Err(InvalidSetting::new("retry_max_backoff", "must not be shorter than bus.retry_initial_backoff"));
        }
        Ok(())
    }
}
