//! Fastly's purge API, as documented:
//!
//! - Surrogate keys: `POST /service/{service_id}/purge` purges "up to 256 surrogate keys … in one
//!   batch request", given as a JSON body `{"surrogate_keys": [...]}` or, alternatively, a
//!   `Surrogate-Key: k1 k2` request header; it answers a map from each key to its purge id
//!   (<https://www.fastly.com/documentation/reference/api/purging/>, "Purge multiple surrogate key
//!   tags"). The adapter sends the JSON body: a request header of 256 long keys can outgrow what
//!   HTTP stacks accept in headers, a body cannot.
//! - One URL: `POST /purge/{cached_url}`, the cached URL without its scheme, answering
//!   `{"status": "ok", "id": "…"}`; Fastly replaced the older `PURGE <url>` form with it in 2022
//!   (<https://www.fastly.com/documentation/reference/changes/2022/09/change-single-purge-default-endpoint/>).
//! - `Fastly-Key: <token>` authenticates; `Fastly-Soft-Purge: 1` marks content stale instead of
//!   evicting it (both endpoints).
//! - Rate limits: "Surrogate key and URL purge requests are also not limited, but purge all
//!   requests count against the per-hour rate limit" (<https://docs.fastly.com/api/>, "Rate
//!   limiting"); a 429 carries `Fastly-RateLimit-Reset` (UTC epoch seconds). With no documented
//!   purge limit, the bucket is a conservative setting (10/s, burst 50) rather than a fact.
//!
//! Purge-all is never sent: the purger purges what a deploy changed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Client, Url};
use serde::{Deserialize, Serialize};

use super::{Limits, ProviderError, PurgeAck, PurgeBatch, PurgeMethod, Secret, refused};

/// Most surrogate keys in one request: "Up to 256 surrogate keys can be purged in one batch".
pub const MAX_KEYS: usize = 256;

/// `provider = "fastly"`: one Fastly service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastlySettings {
    /// Fastly's API.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The service whose surrogate keys are purged (URL purges name the URL's host instead).
    pub service_id: String,
    /// The environment variable holding the API token (scope `purge_select`).
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// Purge soft (mark stale, serve stale while revalidating) when a batch asks for it; `false`
    /// makes every purge hard (for takedowns that must not serve the old bytes again).
    #[serde(default = "default_soft")]
    pub soft: bool,
    /// Purge requests per second. Fastly documents no limit for key and URL purges; this keeps a
    /// runaway purger polite.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: f64,
    /// Requests the purger may send at once after a quiet spell.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Deadline of one purge request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_api_url() -> String {
    "https://api.fastly.com".to_owned()
}
fn default_token_env() -> String {
    "FASTLY_API_TOKEN".to_owned()
}
fn default_soft() -> bool {
    true
}
fn default_requests_per_second() -> f64 {
    10.0
}
fn default_burst() -> u32 {
    50
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl FastlySettings {
    /// Settings for `service_id` with every default.
    pub fn new(service_id: impl Into<String>) -> FastlySettings {
        FastlySettings {
            api_url: default_api_url(),
            service_id: service_id.into(),
            token_env: default_token_env(),
            soft: default_soft(),
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
            timeout: default_timeout(),
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        super::validate_api_url("api_url", &self.api_url)?;
        super::validate_id("service_id", &self.service_id)?;
        if self.token_env.trim().is_empty() {
            return Err("token_env must name an environment variable".to_owned());
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(format!("requests_per_second must be positive, not {}", self.requests_per_second));
        }
        if self.burst == 0 {
            return Err("burst must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// A Fastly service the purger talks to.
#[derive(Debug, Clone)]
pub struct FastlyApi {
    client: Client,
    api: Url,
    token: Secret,
    settings: FastlySettings,
}

impl FastlyApi {
    /// An adapter for `settings` (validated first), with the token from `settings.token_env`.
    pub fn new(client: Client, settings: &FastlySettings) -> Result<FastlyApi, String> {
        settings.validate()?;
        let token = Secret::from_env(&settings.token_env).map_err(|error| format!("token_env: {error}"))?;
        FastlyApi::with_token(client, settings, token)
    }

    /// An adapter with `token` given rather than read from the environment.
    pub fn with_token(client: Client, settings: &FastlySettings, token: Secret) -> Result<FastlyApi, String> {
        settings.validate()?;
        let api = super::validate_api_url("api_url", &settings.api_url)?;
        Ok(FastlyApi { client, api, token, settings: settings.clone() })
    }

    /// What Fastly documents: 256 keys a request, one URL a request, soft purge.
    pub fn limits(&self) -> Limits {
        Limits {
            max_urls: 1,
            max_keys: MAX_KEYS,
            max_body_bytes: None,
            requests_per_second: self.settings.requests_per_second,
            burst: self.settings.burst,
            methods: vec![PurgeMethod::SurrogateKey, PurgeMethod::Url],
            soft_purge: self.settings.soft,
        }
    }

    /// Sends one purge request.
    pub async fn purge(&self, batch: &PurgeBatch) -> Result<PurgeAck, ProviderError> {
        let request = match batch.method {
            PurgeMethod::SurrogateKey => {
                if batch.items.is_empty() || batch.items.len() > MAX_KEYS {
                    return Err(refused(format!("a key purge takes 1 to {MAX_KEYS} keys, got {}", batch.items.len())));
                }
                let url = self.endpoint(&format!("service/{}/purge", self.settings.service_id))?;
                self.client.post(url).json(&serde_json::json!({ "surrogate_keys": batch.items }))
            }
            PurgeMethod::Url => {
                let [url] = batch.items.as_slice() else {
                    return Err(refused(format!("a URL purge takes one URL, got {}", batch.items.len())));
                };
                self.client.post(self.endpoint(&format!("purge/{}", cached_url(url)?))?)
            }
            PurgeMethod::Ban => {
                return Err(refused("Fastly purges by surrogate key or URL; it has no bans".to_owned()));
            }
        };
        let request = request
            .header("Fastly-Key", self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.settings.timeout);
        let request = if batch.soft && self.settings.soft { request.header("Fastly-Soft-Purge", "1") } else { request };
        let answer = super::send(request).await?;
        if answer.status != 200 {
            return Err(answer.error(super::retry_after(&answer.headers).or_else(|| rate_limit_reset(&answer.headers))));
        }
        let id = match batch.method {
            PurgeMethod::Url => serde_json::from_str::<SinglePurge>(&answer.body).ok().map(|single| single.id),
            // One purge id per key, in the batch's order: the ack keeps them all.
            _ => serde_json::from_str::<std::collections::HashMap<String, String>>(&answer.body)
                .ok()
                .map(|ids| batch.items.iter().filter_map(|key| ids.get(key).cloned()).collect::<Vec<_>>().join(",")),
        };
        Ok(PurgeAck { http_status: answer.status, purged: None, provider_id: id.filter(|id| !id.is_empty()) })
    }

    fn endpoint(&self, path: &str) -> Result<Url, ProviderError> {
        let base = self.api.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{path}")).map_err(|error| refused(format!("purge URL for `{path}`: {error}")))
    }
}

/// `{"status": "ok", "id": "…"}`, the answer to a URL purge.
#[derive(Deserialize)]
struct SinglePurge {
    id: String,
}

/// The `{cached_url}` of `POST /purge/{cached_url}`: the public URL without its scheme, its path
/// and query appended as they are (as Fastly's own `fastly-api` client interpolates it).
fn cached_url(url: &str) -> Result<String, ProviderError> {
    let public = Url::parse(url).map_err(|error| refused(format!("URL `{url}`: {error}")))?;
    let Some(host) = public.host_str().filter(|_| matches!(public.scheme(), "http" | "https")) else {
        return Err(refused(format!("URL `{url}` is not an http(s) URL with a host")));
    };
    let port = public.port().map(|port| format!(":{port}")).unwrap_or_default();
    let query = public.query().map(|query| format!("?{query}")).unwrap_or_default();
    Ok(format!("{host}{port}{}{query}", public.path()))
}

/// Fastly's own hint on a 429: `Fastly-RateLimit-Reset`, the UTC epoch second the window resets.
fn rate_limit_reset(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let reset = headers.get("Fastly-RateLimit-Reset")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

#[cfg(test)]
mod tests;
