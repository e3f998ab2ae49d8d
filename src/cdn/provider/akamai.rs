//! Akamai Fast Purge (CCU v3), as documented (<https://techdocs.akamai.com/purge-cache/reference/api-summary>):
//!
//! - `POST /ccu/v3/{invalidate|delete}/{url|tag|cpcode}/{staging|production}` on the API
//!   client's host, body `{"objects": [...]}`, signed with EdgeGrid ([`super::edgegrid`]);
//!   accepted purges answer `201 {"httpStatus": 201, "detail": "Request accepted",
//!   "estimatedSeconds": 5, "purgeId": …, "supportId": …}`.
//! - Invalidate "marks the cached content as invalid" and revalidates with the origin (the
//!   purger's soft purge); delete "removes the content from the Akamai edge server cache"
//!   (<https://techdocs.akamai.com/purge-cache/docs/purge-methods>).
//! - Limits (<https://techdocs.akamai.com/purge-cache/reference/rate-limiting>), per account, as
//!   token buckets: API requests 50 per second, bucket 100; URLs/ARLs 200 per second, bucket
//!   10,000; cache tags 500 per minute, bucket 5,000; CP codes 30 per minute, bucket 300. "Purge
//!   requests have a body size limit of 50KB. Requests with body sizes greater than 50KB result
//!   in a 413 error" (the 413 page: "the maximum message body size, which is 50,000 bytes").
//!   A request with more objects than its type's bucket holds can never be accepted, so those
//!   buckets' sizes are the per-request maxima; the 50,000 bytes usually bind first.
//! - A 429 means "Wait five seconds, then retry once there are enough tokens"
//!   (<https://techdocs.akamai.com/purge-cache/reference/429>); Akamai documents no
//!   `Retry-After`, so without one the adapter reports those five seconds.
//! - A cache tag is at most 128 characters
//!   (<https://techdocs.akamai.com/purge-cache/docs/purge-content-cache-tag>).

use std::time::{Duration, SystemTime};

use reqwest::{Client, Url};
use serde::{Deserialize, Serialize};

use super::edgegrid::{self, Credentials, Signable};
use super::{Limits, ProviderError, PurgeAck, PurgeBatch, PurgeMethod, Secret, refused};

/// Largest request body Fast Purge accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 50_000;
/// Most URLs in one request: the URL/ARL bucket's size.
pub const MAX_URLS: usize = 10_000;
/// Most cache tags in one request: the cache-tag bucket's size.
pub const MAX_TAGS: usize = 5_000;
/// The wait Akamai's 429 page asks for.
pub const RATE_LIMIT_WAIT: Duration = Duration::from_secs(5);

/// Which Akamai network a purge applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AkamaiNetwork {
    /// The staging network, where configurations are tested.
    Staging,
    /// The production network, which serves the site.
    Production,
}

impl AkamaiNetwork {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            AkamaiNetwork::Staging => "staging",
            AkamaiNetwork::Production => "production",
        }
    }
}

/// `provider = "akamai"`: Fast Purge through one API client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AkamaiSettings {
    /// The API client's base URL, `https://akab-….purge.akamaiapis.net` (the `host` of its
    /// `.edgerc` section, with the scheme).
    pub host: String,
    /// The network purged.
    #[serde(default = "default_network")]
    pub network: AkamaiNetwork,
    /// The environment variable holding the client token.
    #[serde(default = "default_client_token_env")]
    pub client_token_env: String,
    /// The environment variable holding the client secret.
    #[serde(default = "default_client_secret_env")]
    pub client_secret_env: String,
    /// The environment variable holding the access token.
    #[serde(default = "default_access_token_env")]
    pub access_token_env: String,
    /// Deadline of one purge request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_network() -> AkamaiNetwork {
    AkamaiNetwork::Production
}
fn default_client_token_env() -> String {
    "AKAMAI_CLIENT_TOKEN".to_owned()
}
fn default_client_secret_env() -> String {
    "AKAMAI_CLIENT_SECRET".to_owned()
}
fn default_access_token_env() -> String {
    "AKAMAI_ACCESS_TOKEN".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl AkamaiSettings {
    /// Settings for the API client at `host` with every default.
    pub fn new(host: impl Into<String>) -> AkamaiSettings {
        AkamaiSettings {
            host: host.into(),
            network: default_network(),
            client_token_env: default_client_token_env(),
            client_secret_env: default_client_secret_env(),
            access_token_env: default_access_token_env(),
            timeout: default_timeout(),
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let host = super::validate_api_url("host", &self.host)?;
        // Purge paths are joined onto the host: a path there would be silently replaced.
        if host.path() != "/" || host.query().is_some() {
            return Err(format!("host `{}` must be a base URL without a path", self.host));
        }
        for (field, name) in [
            ("client_token_env", &self.client_token_env),
            ("client_secret_env", &self.client_secret_env),
            ("access_token_env", &self.access_token_env),
        ] {
            if name.trim().is_empty() {
                return Err(format!("{field} must name an environment variable"));
            }
        }
        Ok(())
    }
}

/// Fast Purge, as the purger talks to it.
#[derive(Debug, Clone)]
pub struct AkamaiApi {
    client: Client,
    host: Url,
    credentials: Credentials,
    settings: AkamaiSettings,
}

impl AkamaiApi {
    /// An adapter for `settings` (validated first), with credentials from the environment.
    pub fn new(client: Client, settings: &AkamaiSettings) -> Result<AkamaiApi, String> {
        settings.validate()?;
        let read = |field: &str, name: &str| Secret::from_env(name).map_err(|error| format!("{field}: {error}"));
        let credentials = Credentials {
            client_token: read("client_token_env", &settings.client_token_env)?.expose().to_owned(),
            client_secret: read("client_secret_env", &settings.client_secret_env)?,
            access_token: read("access_token_env", &settings.access_token_env)?.expose().to_owned(),
        };
        AkamaiApi::with_credentials(client, settings, credentials)
    }

    /// An adapter with `credentials` given rather than read from the environment.
    pub fn with_credentials(
        client: Client,
        settings: &AkamaiSettings,
        credentials: Credentials,
    ) -> Result<AkamaiApi, String> {
        settings.validate()?;
        let host = super::validate_api_url("host", &settings.host)?;
        Ok(AkamaiApi { client, host, credentials, settings: settings.clone() })
    }

    /// Fast Purge's documented limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_urls: MAX_URLS,
            max_keys: MAX_TAGS,
            max_body_bytes: Some(MAX_BODY_BYTES),
            requests_per_second: 50.0,
            burst: 100,
            methods: vec![PurgeMethod::SurrogateKey, PurgeMethod::Url],
            soft_purge: true,
        }
    }

    /// Sends one purge request: invalidate when `soft`, delete otherwise.
    pub async fn purge(&self, batch: &PurgeBatch) -> Result<PurgeAck, ProviderError> {
        let (kind, max) = match batch.method {
            PurgeMethod::Url => ("url", MAX_URLS),
            PurgeMethod::SurrogateKey => ("tag", MAX_TAGS),
            PurgeMethod::Ban => {
                return Err(refused("Fast Purge purges by cache tag or URL; it has no bans".to_owned()));
            }
        };
        if batch.items.is_empty() || batch.items.len() > max {
            return Err(refused(format!("a {kind} purge takes 1 to {max} objects, got {}", batch.items.len())));
        }
        let body = serde_json::to_vec(&serde_json::json!({ "objects": batch.items }))
            .map_err(|error| refused(format!("encoding the objects: {error}")))?;
        if body.len() > MAX_BODY_BYTES {
            let reason = format!("{} bytes of body, over Fast Purge's {MAX_BODY_BYTES}", body.len());
            return Err(ProviderError::Refused { status: 413, reason });
        }
        let operation = if batch.soft { "invalidate" } else { "delete" };
        let path = format!("ccu/v3/{operation}/{kind}/{}", self.settings.network.as_str());
        let url = self.host.join(&path).map_err(|error| refused(format!("purge URL `{path}`: {error}")))?;
        let authorization = self.sign(&url, &body)?;
        let request = self
            .client
            .post(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(self.settings.timeout);
        let answer = super::send(request).await?;
        if answer.status != 201 {
            let retry_after = super::retry_after(&answer.headers).or((answer.status == 429).then_some(RATE_LIMIT_WAIT));
            return Err(answer.error(retry_after));
        }
        let accepted = serde_json::from_str::<Accepted>(&answer.body).ok();
        Ok(PurgeAck { http_status: answer.status, purged: None, provider_id: accepted.and_then(|a| a.purge_id) })
    }

    /// The EdgeGrid `Authorization` header for a `POST` of `body` to `url`, signed now.
    fn sign(&self, url: &Url, body: &[u8]) -> Result<String, ProviderError> {
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(refused(format!("purge URL `{url}` has no host"))),
        };
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let request =
            Signable { method: "POST", scheme: url.scheme(), host: &host, path_and_query: &path_and_query, body };
        let nonce = uuid::Uuid::new_v4().to_string();
        Ok(edgegrid::authorization(&self.credentials, &request, &edgegrid::timestamp(SystemTime::now()), &nonce))
    }
}

/// The answer to an accepted purge.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    purge_id: Option<String>,
}

#[cfg(test)]
mod tests;
