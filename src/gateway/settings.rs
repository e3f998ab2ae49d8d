//! `[gateway]`: where the gateway listens, where requests go, how long it waits for answers,
//! and who may call it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dashboard::DashboardSettings;
use super::jwt::JwtSettings;
use super::ratelimit::RateLimitSettings;
use crate::config::{InvalidSetting, positive, topic_named};

/// `[gateway]`: one HTTP gateway instance. Many run side by side; each reads the answers to its
/// own requests from a reply topic of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Address of the HTTP listener.
    pub listen: SocketAddr,
    /// `[gateway.tls]`: serve HTTPS with this certificate; unset serves plain HTTP (behind a
    /// TLS-terminating load balancer, or on loopback).
    pub tls: Option<GatewayTls>,
    /// The instance id: names the reply topic and appears in logs; defaults to `<host>-<pid>`.
    /// Two instances must not share one while either deletes its topic on stop.
    pub instance: Option<String>,
    /// Topic of `AnalysisRequest`s (the serving workers' input).
    pub analysis_topic: String,
    /// Topic of `InferenceJob`s (the inference batchers' input).
    pub inference_topic: String,
    /// The reply topic is this prefix followed by the instance id. The gateway creates it at
    /// start (one partition: the gateway reads all of it) and deletes it on a clean stop.
    pub reply_topic_prefix: String,
    /// `retention.ms` of the reply topic: answers older than the longest wait are never read.
    #[serde(with = "humantime_serde")]
    pub reply_topic_retention: Duration,
    /// Delete the reply topic on a clean stop. Off when instance ids are stable and the topic
    /// should outlive restarts (its retention keeps it small either way).
    pub delete_reply_topic_on_stop: bool,
    /// How long the producer gathers requests into a batch before sending (librdkafka's
    /// `linger.ms`), in place of `[kafka] linger` for the gateway: every HTTP answer waits for
    /// it, like the serving worker's `answer_linger`.
    #[serde(with = "humantime_serde")]
    pub request_linger: Duration,
    /// How long a request waits for its answer when it names no `timeout_ms`; also the
    /// request's `deadline`, after which a worker answers `timeout` without computing.
    #[serde(with = "humantime_serde")]
    pub default_timeout: Duration,
    /// The longest `timeout_ms` a request may ask for.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// How long an answer stays readable at `/v1/results/{id}` after the request's deadline,
    /// for `?async=true` callers that poll late.
    #[serde(with = "humantime_serde")]
    pub result_retention: Duration,
    /// The most requests in flight or kept for polling at once; beyond it new requests get 503
    /// (the gateway protects its memory rather than forget answers callers wait for).
    pub max_pending: u64,
    /// The largest request body, in bytes; a larger one is refused with 413 before it is read.
    pub max_body_bytes: usize,
    /// The model an inference request runs when its body names none.
    pub default_model: String,
    /// Who may call the gateway (`[gateway.auth]`).
    pub auth: AuthSettings,
    /// Request quotas per tenant and key (`[gateway.rate_limits]`).
    pub rate_limits: RateLimitSettings,
    /// The live dashboard's sources and files (`[gateway.dashboard]`).
    pub dashboard: DashboardSettings,
}

/// `[gateway.tls]`: the gateway's certificate (TLS 1.2 and 1.3 through rustls, HTTP/1.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayTls {
    /// PEM file of the certificate chain, the gateway's own certificate first.
    pub cert_file: PathBuf,
    /// PEM file of its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            instance: None,
            analysis_topic: "frontier.requests".into(),
            inference_topic: "frontier.inference.jobs".into(),
            reply_topic_prefix: "frontier.gateway.replies.".into(),
            reply_topic_retention: Duration::from_secs(3600),
            delete_reply_topic_on_stop: true,
            request_linger: Duration::from_millis(1),
            default_timeout: Duration::from_secs(10),
            max_timeout: Duration::from_secs(60),
            result_retention: Duration::from_secs(300),
            max_pending: 100_000,
            max_body_bytes: 256 * 1024,
            tls: None,
            default_model: "all-minilm-l6-v2".into(),
            auth: AuthSettings::default(),
            rate_limits: RateLimitSettings::default(),
            dashboard: DashboardSettings::default(),
        }
    }
}

/// `[gateway.auth]`: how callers prove who they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// How long a verified (or refused) API key is remembered. Verifying runs argon2, tens of
    /// milliseconds of CPU, so it cannot run per request; a revoked key stops working on every
    /// gateway within this time.
    #[serde(with = "humantime_serde")]
    pub key_cache_ttl: Duration,
    /// The most keys remembered at once.
    pub key_cache_capacity: u64,
    /// The PostgreSQL schema of the key table; the connection's default `search_path` when
    /// unset.
    pub schema: Option<String>,
    /// JWT bearer tokens from an identity provider (`[gateway.auth.jwt]`); off unless
    /// `jwks_url` is set.
    pub jwt: JwtSettings,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            key_cache_ttl: Duration::from_secs(30),
            key_cache_capacity: 100_000,
            schema: None,
            jwt: JwtSettings::default(),
        }
    }
}

impl GatewaySettings {
    /// The instance id: configured, or `<host>-<pid>`.
    pub fn instance_id(&self) -> String {
        self.instance.clone().unwrap_or_else(crate::telemetry::instance_id)
    }

    /// This instance's reply topic: the prefix and the instance id, with every character a
    /// topic name cannot hold replaced by `_`.
    pub fn reply_topic(&self) -> String {
        let instance: String = self
            .instance_id()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
            .collect();
        format!("{}{instance}", self.reply_topic_prefix)
    }

    /// Checks what serde cannot; keys are relative to `[gateway]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key: &str, message: &str| Err(InvalidSetting::new(key, message));
        if let Some(tls) = &self.tls {
            for (key, path) in [("tls.cert_file", &tls.cert_file), ("tls.key_file", &tls.key_file)] {
                if !path.is_file() {
                    return Err(InvalidSetting::new(key, format!("{} is not a readable file", path.display())));
                }
            }
        }
        topic_named("analysis_topic", &self.analysis_topic)?;
        topic_named("inference_topic", &self.inference_topic)?;
        topic_named("reply_topic_prefix", &self.reply_topic())?;
        if self.reply_topic().len() > 249 {
            return invalid("reply_topic_prefix", "with the instance id makes a topic name over 249 characters");
        }
        if self.instance.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return invalid("instance", "must not be empty when set");
        }
        positive("default_timeout", self.default_timeout)?;
        if self.request_linger > Duration::from_secs(1) {
            return invalid("request_linger", "must be at most 1s (every HTTP answer waits for it)");
        }
        self.dashboard.validate()?;
        positive("result_retention", self.result_retention)?;
        if self.max_timeout < self.default_timeout || self.max_timeout > Duration::from_secs(3600) {
            return invalid("max_timeout", "must be from default_timeout to 1h");
        }
        if self.reply_topic_retention < self.max_timeout {
            return invalid("reply_topic_retention", "must be at least max_timeout (answers would be deleted unread)");
        }
        if !(1..=10_000_000).contains(&self.max_pending) {
            return invalid("max_pending", "must be from 1 to 10000000");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return invalid("max_body_bytes", "must be from 1 KiB to 64 MiB");
        }
        if self.default_model.trim().is_empty() {
            return invalid("default_model", "must not be empty");
        }
        positive("auth.key_cache_ttl", self.auth.key_cache_ttl)?;
        if self.auth.key_cache_capacity == 0 {
            return invalid("auth.key_cache_capacity", "must be at least 1");
        }
        self.auth.jwt.validate().map_err(|e| e.within("auth.jwt"))?;
        self.rate_limits.validate().map_err(|e| e.within("rate_limits"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_topic_replaces_characters_a_topic_cannot_hold() {
        let settings = GatewaySettings { instance: Some("gw 1/eu:west".into()), ..GatewaySettings::default() };
        assert_eq!(settings.reply_topic(), "frontier.gateway.replies.gw_1_eu_west");
    }

    #[test]
    fn shipped_defaults_validate() {
        GatewaySettings::default().validate().unwrap();
    }

    #[test]
    fn a_retention_shorter_than_the_longest_wait_is_refused() {
        let settings = GatewaySettings { reply_topic_retention: Duration::from_secs(30), ..GatewaySettings::default() };
        let error = settings.validate().unwrap_err();
        assert_eq!(error.key, "reply_topic_retention");
    }

    #[test]
    fn a_request_linger_over_a_second_is_refused() {
        let settings = GatewaySettings { request_linger: Duration::from_millis(1_001), ..GatewaySettings::default() };
        assert_eq!(settings.validate().unwrap_err().key, "request_linger");
    }
}
