//! CDN providers: one adapter per edge API, each turning one [`PurgeBatch`] into one request
//! and its answer into a [`PurgeAck`] or a [`ProviderError`] that says whether to retry.
//!
//! Batching to a provider's limits, its token bucket, retries with backoff and `Retry-After`,
//! and idempotence live once, in the purger (`crate::cdn::purge`); an adapter only knows its
//! API's request shape and its documented [`Limits`].

pub mod akamai;
pub mod cloudflare;
pub mod edgegrid;
pub mod fastly;
pub mod varnish;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::records::PurgeMethod;

/// `[[workers.cdn_purger.targets]]`: one CDN, chosen by `provider = "…"` (lowercase), with that
/// provider's settings beside it. An unknown provider is refused with the list of known ones;
/// an unknown field is refused by the provider's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum ProviderSettings {
    /// A Varnish edge with the project's VCL.
    Varnish(varnish::VarnishSettings),
    /// A Fastly service.
    Fastly(fastly::FastlySettings),
    /// A Cloudflare zone.
    Cloudflare(cloudflare::CloudflareSettings),
    /// Akamai Fast Purge through one API client.
    Akamai(akamai::AkamaiSettings),
}

impl ProviderSettings {
    /// The provider's name, as `provider = "…"` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderSettings::Varnish(_) => "varnish",
            ProviderSettings::Fastly(_) => "fastly",
            ProviderSettings::Cloudflare(_) => "cloudflare",
            ProviderSettings::Akamai(_) => "akamai",
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ProviderSettings::Varnish(settings) => settings.validate(),
            ProviderSettings::Fastly(settings) => settings.validate(),
            ProviderSettings::Cloudflare(settings) => settings.validate(),
            ProviderSettings::Akamai(settings) => settings.validate(),
        }
    }
}

/// The adapter for one target: an enum rather than a trait object, so `purge` stays a plain
/// `async fn` and each adapter keeps its own concrete type.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Varnish with vmod xkey.
    Varnish(varnish::VarnishEdge),
    /// Fastly.
    Fastly(fastly::FastlyApi),
    /// Cloudflare.
    Cloudflare(cloudflare::CloudflareApi),
    /// Akamai Fast Purge.
    Akamai(akamai::AkamaiApi),
}

impl Provider {
    /// The adapter `settings` describe, with its credentials read from the environment now: a
    /// missing one fails at start, naming its variable, not at the first purge.
    pub fn new(client: reqwest::Client, settings: &ProviderSettings) -> Result<Provider, String> {
        let provider = match settings {
            ProviderSettings::Varnish(settings) => varnish::VarnishEdge::new(client, settings).map(Provider::Varnish),
            ProviderSettings::Fastly(settings) => fastly::FastlyApi::new(client, settings).map(Provider::Fastly),
            ProviderSettings::Cloudflare(settings) => {
                cloudflare::CloudflareApi::new(client, settings).map(Provider::Cloudflare)
            }
            ProviderSettings::Akamai(settings) => akamai::AkamaiApi::new(client, settings).map(Provider::Akamai),
        };
        provider.map_err(|error| format!("{}: {error}", settings.name()))
    }

    /// The provider's name (`varnish`, `fastly`, `cloudflare`, `akamai`), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Varnish(_) => "varnish",
            Provider::Fastly(_) => "fastly",
            Provider::Cloudflare(_) => "cloudflare",
            Provider::Akamai(_) => "akamai",
        }
    }

    /// What the provider documents about its purge API.
    pub fn limits(&self) -> Limits {
        match self {
            Provider::Varnish(edge) => edge.limits(),
            Provider::Fastly(api) => api.limits(),
            Provider::Cloudflare(api) => api.limits(),
            Provider::Akamai(api) => api.limits(),
        }
    }

    /// Sends one purge request.
    pub async fn purge(&self, batch: &PurgeBatch) -> Result<PurgeAck, ProviderError> {
        match self {
            Provider::Varnish(edge) => edge.purge(batch).await,
            Provider::Fastly(api) => api.purge(batch).await,
            Provider::Cloudflare(api) => api.purge(batch).await,
            Provider::Akamai(api) => api.purge(batch).await,
        }
    }
}

/// One purge request's worth of work for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeBatch {
    /// What `items` are: URLs (full, with scheme and host), surrogate keys, or ban expressions.
    pub method: PurgeMethod,
    /// The URLs, keys or expressions; never more than the provider's [`Limits::max_items`] for it.
    pub items: Vec<String>,
    /// Mark stale rather than evict, where the provider can (Fastly's soft purge, Varnish's
    /// softpurge, Akamai's invalidate); a provider without it purges hard.
    pub soft: bool,
}

/// What a provider documents about its purge API.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most URLs in one request (1 where each URL is its own request).
    pub max_urls: usize,
    /// Most surrogate keys (tags) in one request.
    pub max_keys: usize,
    /// Largest request body, where the provider limits it (Akamai: 50,000 bytes).
    pub max_body_bytes: Option<usize>,
    /// Sustained purge requests per second its token bucket refills at.
    pub requests_per_second: f64,
    /// Requests its bucket holds (a burst).
    pub burst: u32,
    /// The methods it purges by, in the order the purger prefers them.
    pub methods: Vec<PurgeMethod>,
    /// Whether it can mark content stale instead of evicting it.
    pub soft_purge: bool,
}

impl Limits {
    /// Most items one request of `method` carries (a ban is one expression).
    pub fn max_items(&self, method: PurgeMethod) -> usize {
        match method {
            PurgeMethod::Url => self.max_urls,
            PurgeMethod::SurrogateKey => self.max_keys,
            PurgeMethod::Ban => 1,
        }
    }
}

/// A provider's answer to a purge it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeAck {
    /// HTTP status of the answer.
    pub http_status: u16,
    /// Objects the purge hit, where the provider says (Varnish does; the SaaS APIs do not).
    pub purged: Option<u64>,
    /// The provider's id for the purge (Fastly's purge id, Akamai's purgeId), where it gives one.
    pub provider_id: Option<String>,
}

/// Why a purge request failed, which decides whether the purger retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Over the provider's rate limit (429): retry after `retry_after`, or the purger's backoff.
    #[error("rate limited (HTTP {status}){}", retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// The status (429, or 503 with `Retry-After`).
        status: u16,
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The provider could not be reached, timed out or failed (5xx): retry with backoff.
    #[error("unavailable{}: {reason}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Unavailable {
        /// The status, when it answered.
        status: Option<u16>,
        /// What went wrong.
        reason: String,
    },
    /// The provider refused the request (bad credentials, malformed or over-limit request):
    /// retrying the same request cannot help.
    #[error("refused (HTTP {status}): {reason}")]
    Refused {
        /// The status.
        status: u16,
        /// The provider's reason, from its answer.
        reason: String,
    },
}

impl ProviderError {
    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::Refused { .. })
    }

    /// The HTTP status of the answer, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ProviderError::RateLimited { status, .. } | ProviderError::Refused { status, .. } => Some(*status),
            ProviderError::Unavailable { status, .. } => *status,
        }
    }

    /// Classifies a non-success HTTP answer the way every provider documents them: 429 (and a
    /// 503 with `Retry-After`) is a rate limit, other 5xx a retryable failure, other 4xx final.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &str) -> ProviderError {
        let reason = crate::bus::dlq::truncated(body, 300);
        match status {
            429 => ProviderError::RateLimited { status, retry_after },
            503 if retry_after.is_some() => ProviderError::RateLimited { status, retry_after },
            500..=599 => ProviderError::Unavailable { status: Some(status), reason },
            _ => ProviderError::Refused { status, reason },
        }
    }

    /// A request that got no HTTP answer (connect error, timeout).
    pub fn transport(error: &reqwest::Error) -> ProviderError {
        ProviderError::Unavailable { status: None, reason: error.to_string() }
    }
}

/// `Retry-After` as RFC 9110 allows it: delay-seconds or an HTTP date (relative to now).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// A credential: its `Debug` shows none of it, so a logged adapter or settings error cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value of environment variable `name`; credentials live in the environment (or a
    /// secret store that fills it), never in the settings file.
    pub fn from_env(name: &str) -> Result<Secret, String> {
        match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => Ok(Secret(value.trim().to_owned())),
            Ok(_) => Err(format!("environment variable `{name}` is empty")),
            Err(std::env::VarError::NotPresent) => Err(format!("environment variable `{name}` is not set")),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("environment variable `{name}` is not UTF-8")),
        }
    }

    /// The credential itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(redacted)")
    }
}

/// An answer read whole.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    /// The answer as a [`ProviderError`], for a status the adapter does not accept.
    fn error(&self, retry_after: Option<Duration>) -> ProviderError {
        ProviderError::from_status(self.status, retry_after, &self.body)
    }
}

/// Sends `request` and reads its answer; no answer (or a body cut short) is a transport failure.
async fn send(request: reqwest::RequestBuilder) -> Result<Answer, ProviderError> {
    let response = request.send().await.map_err(|error| ProviderError::transport(&error))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(|error| ProviderError::transport(&error))?;
    Ok(Answer { status, headers, body })
}

/// A request an adapter refuses before sending it: it cannot succeed however often it is sent.
fn refused(reason: String) -> ProviderError {
    ProviderError::Refused { status: 400, reason }
}

/// Checks the settings every SaaS adapter shares: an http(s) API base URL and a sane bucket.
fn validate_api_url(field: &str, value: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(value).map_err(|error| format!("{field} `{value}`: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{field} `{value}` is not an http(s) URL"));
    }
    Ok(url)
}

/// Checks an identifier that becomes a path segment: a zone or service id is alphanumeric, so
/// anything else is a mistake (and must not reach the URL's path unescaped).
fn validate_id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("{field} `{value}` must be a non-empty alphanumeric id"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_is_a_rate_limit_and_retryable() {
        let error = ProviderError::from_status(429, Some(Duration::from_secs(2)), "slow down");
        assert_eq!(error, ProviderError::RateLimited { status: 429, retry_after: Some(Duration::from_secs(2)) });
        assert!(error.is_retryable());
    }

    #[test]
    fn a_403_is_refused_and_not_retried() {
        let error = ProviderError::from_status(403, None, "bad token");
        assert!(!error.is_retryable());
        assert_eq!(error.http_status(), Some(403));
    }

    #[test]
    fn a_502_is_unavailable_and_retried() {
        assert!(ProviderError::from_status(502, None, "").is_retryable());
    }

    #[test]
    fn a_known_provider_parses_from_toml_with_its_own_fields() {
        let settings: ProviderSettings = toml::from_str("provider = \"fastly\"\nservice_id = \"SU1Z0isx\"").unwrap();
        assert_eq!(settings, ProviderSettings::Fastly(fastly::FastlySettings::new("SU1Z0isx")));
        assert_eq!(settings.name(), "fastly");
        let varnish: ProviderSettings = toml::from_str("provider = \"varnish\"").unwrap();
        assert_eq!(varnish, ProviderSettings::Varnish(varnish::VarnishSettings::default()));
    }

    #[test]
    fn an_unknown_provider_is_refused_with_the_known_ones() {
        let error = toml::from_str::<ProviderSettings>("provider = \"bunny\"").unwrap_err().to_string();
        for known in ["varnish", "fastly", "cloudflare", "akamai"] {
            assert!(error.contains(known), "{error}");
        }
        assert!(error.contains("bunny"), "{error}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let text = "provider = \"cloudflare\"\nzone_id = \"abc123\"\nsoft = true";
        let error = toml::from_str::<ProviderSettings>(text).unwrap_err().to_string();
        assert!(error.contains("unknown field `soft`"), "{error}");
        let varnish = toml::from_str::<ProviderSettings>("provider = \"varnish\"\nzone_id = \"x\"");
        assert!(varnish.is_err());
    }

    #[test]
    fn a_missing_provider_is_refused() {
        let error = toml::from_str::<ProviderSettings>("zone_id = \"abc123\"").unwrap_err().to_string();
        assert!(error.contains("provider"), "{error}");
    }

    #[test]
    fn a_provider_without_its_credentials_fails_at_start_naming_the_variable() {
        let mut settings = akamai::AkamaiSettings::new("https://akab-x.purge.akamaiapis.net");
        settings.client_secret_env = "FRONTIER_TEST_NO_SUCH_SECRET".into();
        settings.client_token_env = "FRONTIER_TEST_NO_SUCH_SECRET".into();
        let error = Provider::new(reqwest::Client::new(), &ProviderSettings::Akamai(settings)).unwrap_err();
        assert!(error.starts_with("akamai: ") && error.contains("FRONTIER_TEST_NO_SUCH_SECRET"), "{error}");
        let varnish = Provider::new(reqwest::Client::new(), &ProviderSettings::Varnish(Default::default())).unwrap();
        assert_eq!((varnish.name(), varnish.limits().max_urls), ("varnish", 1));
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(redacted)");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, reqwest::header::HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(later);
        headers.insert(reqwest::header::RETRY_AFTER, reqwest::header::HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
    }
}
