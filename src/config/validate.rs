//! Start-up validation: everything serde cannot check, reported with the key to fix.

use std::time::Duration;

use super::{ConfigError, Settings};

/// librdkafka settings the bus owns: overriding them would break at-least-once delivery.
const RESERVED_CLIENT_KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    ("group.id", "group ids come from kafka.group_prefix and the worker"),
    ("enable.auto.offset.store", "the bus stores an offset only once the message's outputs are acknowledged"),
    ("enable.auto.commit", "the bus commits stored offsets itself"),
    ("enable.idempotence", "the producer must be idempotent so retries never duplicate"),
    ("acks", "outputs must be acknowledged by all in-sync replicas"),
];

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

fn positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() { Err(invalid(key, "must be greater than zero")) } else { Ok(()) }
}

impl Settings {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let kafka = &self.kafka;
        if kafka.bootstrap_servers.trim().is_empty() {
            return Err(invalid("kafka.bootstrap_servers", "must name at least one broker"));
        }
        for server in kafka.bootstrap_servers.split(',') {
            if !server.trim().rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()) {
                return Err(invalid("kafka.bootstrap_servers", format!("`{server}` is not host:port")));
            }
        }
        if kafka.group_prefix.trim().is_empty() {
            return Err(invalid("kafka.group_prefix", "must not be empty"));
        }
        positive("kafka.delivery_timeout", kafka.delivery_timeout)?;
        positive("kafka.statistics_interval", kafka.statistics_interval)?;
        positive("kafka.request_timeout", kafka.request_timeout)?;
        for (key, _) in kafka.client_settings() {
            if let Some((_, why)) = RESERVED_CLIENT_KEYS.iter().find(|(reserved, _)| *reserved == key) {
                return Err(invalid(&format!("kafka.client.{key}"), format!("reserved: {why}")));
            }
        }

        let bus = &self.bus;
        if bus.max_in_flight == 0 {
            return Err(invalid("bus.max_in_flight", "must be at least 1"));
        }
        if bus.dlq_topic.trim().is_empty() {
            return Err(invalid("bus.dlq_topic", "must name a topic"));
        }
        positive("bus.retry_initial_backoff", bus.retry_initial_backoff)?;
        positive("bus.shutdown_timeout", bus.shutdown_timeout)?;
        if !bus.status_interval.is_zero() && bus.status_interval < Duration::from_secs(1) {
            return Err(invalid("bus.status_interval", "must be 0s (off) or at least 1s"));
        }
        if !bus.status_interval.is_zero() && bus.status_topic.trim().is_empty() {
            return Err(invalid("bus.status_topic", "must name a topic (or set bus.status_interval = \"0s\")"));
        }
        if bus.retry_max_backoff < bus.retry_initial_backoff {
            return Err(invalid("bus.retry_max_backoff", "must not be shorter than bus.retry_initial_backoff"));
        }

        if !(self.redis.url.starts_with("redis://") || self.redis.url.starts_with("rediss://")) {
            return Err(invalid("redis.url", "must start with redis:// or rediss://"));
        }
        if !(self.postgres.url.starts_with("postgres://") || self.postgres.url.starts_with("postgresql://")) {
            return Err(invalid("postgres.url", "must start with postgres:// or postgresql://"));
        }
        if self.postgres.max_connections == 0 {
            return Err(invalid("postgres.max_connections", "must be at least 1"));
        }
        if let Some(rf) = self.topics.replication_factor.filter(|rf| *rf < 1) {
            return Err(invalid("topics.replication_factor", format!("{rf} is below 1")));
        }
        if let Some(isr) = self.topics.min_insync_replicas.filter(|isr| *isr < 1) {
            return Err(invalid("topics.min_insync_replicas", format!("{isr} is below 1")));
        }
        let sla = &self.workers.sla;
        positive("workers.sla.evaluation_interval", sla.evaluation_interval)?;
        positive("workers.sla.gauge_interval", sla.gauge_interval)?;
        positive("workers.sla.restore_timeout", sla.restore_timeout)?;
        sla.monitor.validate().map_err(|e| invalid(&format!("workers.sla.monitor.{}", e.key()), e.to_string()))?;
        self.workers
            .inference
            .validate()
            .map_err(|(key, message)| invalid(&format!("workers.inference.{key}"), message))?;
        self.cache.validate().map_err(|e| invalid(&format!("cache.{}", e.key), e.message))?;
        self.workers.serve.validate().map_err(|(key, message)| invalid(&format!("workers.serve.{key}"), message))?;
        self.workers
            .cache_warmer
            .validate()
            .map_err(|(key, message)| invalid(&format!("workers.cache_warmer.{key}"), message))?;
        let passthrough = &self.workers.passthrough;
        if passthrough.input_topic == passthrough.output_topic {
            return Err(invalid("workers.passthrough.output_topic", "must differ from input_topic (it would loop)"));
        }
        Ok(())
    }
}
