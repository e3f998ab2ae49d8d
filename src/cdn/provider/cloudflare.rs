//! Cloudflare's cache purge API, as documented:
//!
//! - `POST /zones/{zone_id}/purge_cache` with `Authorization: Bearer <API token>` and a JSON body
//!   of one kind: `{"files": [...]}`, `{"tags": [...]}`, `{"prefixes": [...]}`,
//!   `{"hosts": [...]}` (or `{"purge_everything": true}`, which the purger never sends); the
//!   answer is the v4 envelope `{"success", "errors": [{"code", "message"}], "messages",
//!   "result": {"id"}}`, where `success: false` is a failure whatever the status.
//! - Rate limits, per account, as token buckets
//!   (<https://developers.cloudflare.com/cache/how-to/purge-cache/>, "Availability and limits"):
//!   Free 5 requests per minute, bucket 25; Pro 5 per second, bucket 25; Business 10 per second,
//!   bucket 50; Enterprise 50 per second, bucket 500. "Max operations per request" 100 for tags,
//!   hostnames and prefixes on every plan (confirmed by cloudflare-docs PR #32906, 2026: "The
//!   API default was raised to 100").
//! - URLs per request: the purge-by-single-file page says "For Zones on Free/Pro/Business plan,
//!   you may purge up to 30 URLs in one API call. For Zones on Enterprise plan, you may purge up
//!   to 500" (<https://developers.cloudflare.com/cache/how-to/purge-cache/purge-by-single-file/>);
//!   the overview's table says 100 for the first three, and cloudflare-docs issue #21338 reports
//!   that the API still refuses more than 30. The adapter uses 30 (500 on Enterprise): a batch of
//!   30 is accepted under either reading.
//! - Single-file purges are also metered in URLs per second (800 Free, 1,500 Pro and Business,
//!   3,000 Enterprise, as a moving average); the request bucket above is the tighter bound for
//!   batches of 30, so the adapter applies it to URL purges too.
//! - A 429 carries `Retry-After`, "the number of seconds, rounded up, until more capacity is
//!   available" (<https://developers.cloudflare.com/fundamentals/api/reference/limits/>).
//! - Cloudflare has no soft purge: every purge evicts.

use std::time::Duration;

use reqwest::{Client, Url};
use serde::{Deserialize, Serialize};

use super::{Limits, ProviderError, PurgeAck, PurgeBatch, PurgeMethod, Secret, refused};

/// A Cloudflare plan, which sets the purge limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudflarePlan {
    /// Free.
    Free,
    /// Pro.
    Pro,
    /// Business.
    Business,
    /// Enterprise.
    Enterprise,
}

impl CloudflarePlan {
    /// The purge request bucket: (requests per second, bucket size).
    pub fn bucket(self) -> (f64, u32) {
        match self {
            CloudflarePlan::Free => (5.0 / 60.0, 25),
            CloudflarePlan::Pro => (5.0, 25),
            CloudflarePlan::Business => (10.0, 50),
            CloudflarePlan::Enterprise => (50.0, 500),
        }
    }

    /// Most URLs (`files`) in one request.
    pub fn max_files(self) -> usize {
        if self == CloudflarePlan::Enterprise { 500 } else { 30 }
    }

    /// Most tags, prefixes or hosts in one request.
    pub fn max_tags(self) -> usize {
        100
    }
}

/// `provider = "cloudflare"`: one Cloudflare zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareSettings {
    /// Cloudflare's v4 API.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The zone (32 hexadecimal characters) whose cache is purged.
    pub zone_id: String,
    /// The environment variable holding an API token with `Zone.Cache Purge` permission.
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// The account's plan, which sets the purge limits.
    #[serde(default = "default_plan")]
    pub plan: CloudflarePlan,
    /// Deadline of one purge request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_api_url() -> String {
    "https://api.cloudflare.com/client/v4".to_owned()
}
fn default_token_env() -> String {
    "CLOUDFLARE_API_TOKEN".to_owned()
}
fn default_plan() -> CloudflarePlan {
    CloudflarePlan::Pro
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl CloudflareSettings {
    /// Settings for `zone_id` with every default.
    pub fn new(zone_id: impl Into<String>) -> CloudflareSettings {
        CloudflareSettings {
            api_url: default_api_url(),
            zone_id: zone_id.into(),
            token_env: default_token_env(),
            plan: default_plan(),
            timeout: default_timeout(),
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        super::validate_api_url("api_url", &self.api_url)?;
        super::validate_id("zone_id", &self.zone_id)?;
        if self.token_env.trim().is_empty() {
            return Err("token_env must name an environment variable".to_owned());
        }
        Ok(())
    }
}

/// A Cloudflare zone the purger talks to.
#[derive(Debug, Clone)]
pub struct CloudflareApi {
    client: Client,
    endpoint: Url,
    token: Secret,
    settings: CloudflareSettings,
}

impl CloudflareApi {
    /// An adapter for `settings` (validated first), with the token from `settings.token_env`.
    pub fn new(client: Client, settings: &CloudflareSettings) -> Result<CloudflareApi, String> {
        settings.validate()?;
        let token = Secret::from_env(&settings.token_env).map_err(|error| format!("token_env: {error}"))?;
        CloudflareApi::with_token(client, settings, token)
    }

    /// An adapter with `token` given rather than read from the environment.
    pub fn with_token(client: Client, settings: &CloudflareSettings, token: Secret) -> Result<CloudflareApi, String> {
        settings.validate()?;
        let base = super::validate_api_url("api_url", &settings.api_url)?;
        let endpoint = format!("{}/zones/{}/purge_cache", base.as_str().trim_end_matches('/'), settings.zone_id);
        let endpoint = Url::parse(&endpoint).map_err(|error| format!("purge endpoint `{endpoint}`: {error}"))?;
        Ok(CloudflareApi { client, endpoint, token, settings: settings.clone() })
    }

    /// The plan's documented limits.
    pub fn limits(&self) -> Limits {
        let (requests_per_second, burst) = self.settings.plan.bucket();
        Limits {
            max_urls: self.settings.plan.max_files(),
            max_keys: self.settings.plan.max_tags(),
            max_body_bytes: None,
            requests_per_second,
            burst,
            methods: vec![PurgeMethod::SurrogateKey, PurgeMethod::Url],
            soft_purge: false,
        }
    }

    /// Sends one purge request (hard: Cloudflare cannot mark content stale, so `soft` is moot).
    pub async fn purge(&self, batch: &PurgeBatch) -> Result<PurgeAck, ProviderError> {
        let limits = self.limits();
        let (field, max) = match batch.method {
            PurgeMethod::Url => ("files", limits.max_urls),
            PurgeMethod::SurrogateKey => ("tags", limits.max_keys),
            PurgeMethod::Ban => return Err(refused("Cloudflare purges by tag or URL; it has no bans".to_owned())),
        };
        if batch.items.is_empty() || batch.items.len() > max {
            return Err(refused(format!("a {field} purge takes 1 to {max} items, got {}", batch.items.len())));
        }
        let request = self
            .client
            .post(self.endpoint.clone())
            .bearer_auth(self.token.expose())
            .json(&serde_json::json!({ field: batch.items }))
            .timeout(self.settings.timeout);
        let answer = super::send(request).await?;
        let envelope = serde_json::from_str::<Envelope>(&answer.body).ok();
        if !(200..300).contains(&answer.status) {
            return Err(answer.error(super::retry_after(&answer.headers)));
        }
        match envelope {
            Some(Envelope { success: true, result, .. }) => {
                Ok(PurgeAck { http_status: answer.status, purged: None, provider_id: result.and_then(|r| r.id) })
            }
            // `success: false` under a 2xx: Cloudflare refused it; the same body would be refused again.
            Some(Envelope { errors, .. }) => Err(ProviderError::Refused {
                status: answer.status,
                reason: errors.iter().map(|e| format!("{} {}", e.code, e.message)).collect::<Vec<_>>().join("; "),
            }),
            None => Err(ProviderError::Unavailable {
                status: Some(answer.status),
                reason: format!("not Cloudflare's envelope: {}", crate::bus::dlq::truncated(&answer.body, 200)),
            }),
        }
    }
}

/// Cloudflare's v4 answer.
#[derive(Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: Option<PurgeResult>,
}

#[derive(Deserialize)]
struct ApiMessage {
    code: i64,
    message: String,
}

#[derive(Deserialize)]
struct PurgeResult {
    id: Option<String>,
}

#[cfg(test)]
mod tests;
