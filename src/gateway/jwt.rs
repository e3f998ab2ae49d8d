//! JWT bearer tokens from an identity provider, verified against its JWKS (the public keys it
//! publishes): signature, expiry, issuer and audience, then the tenant and role claims.
//!
//! Only asymmetric algorithms are accepted (RS*, PS*, ES*, EdDSA): a JWKS holds public keys,
//! and accepting HS256 with one would let anybody who read it sign tokens.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use super::keys::{Identity, Role};
use crate::config::InvalidSetting;

/// The algorithms a token may be signed with.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The least time between two fetches of the JWKS for a key id it did not hold, so tokens with
/// made-up key ids cannot make the gateway hammer the identity provider.
const REFETCH_PAUSE: Duration = Duration::from_secs(30);

/// `[gateway.auth.jwt]`: tokens are accepted only when `jwks_url` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// URL of the identity provider's JWKS (e.g. `https://idp.example.com/.well-known/jwks.json`).
    pub jwks_url: Option<String>,
    /// The `iss` every token must carry; any when unset.
    pub issuer: Option<String>,
    /// The `aud` every token must carry; any when unset.
    pub audience: Option<String>,
    /// The claim that names the tenant.
    pub tenant_claim: String,
    /// The claim that names the role (`viewer`, `operator` or `admin`).
    pub role_claim: String,
    /// How often the JWKS is fetched again, for keys the provider rotated in.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            jwks_url: None,
            issuer: None,
            audience: None,
            tenant_claim: "tenant".into(),
            role_claim: "role".into(),
            refresh: Duration::from_secs(300),
        }
    }
}

impl JwtSettings {
    /// Checks what serde cannot; keys are relative to `[gateway.auth.jwt]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if let Some(url) = &self.jwks_url
            && reqwest::Url::parse(url).map(|url| !matches!(url.scheme(), "http" | "https")).unwrap_or(true)
        {
            return Err(InvalidSetting::new("jwks_url", "must be an http(s) URL"));
        }
        if self.refresh < Duration::from_secs(10) {
            return Err(InvalidSetting::new("refresh", "must be at least 10s"));
        }
        if self.tenant_claim.is_empty() || self.role_claim.is_empty() {
            return Err(InvalidSetting::new("tenant_claim", "tenant_claim and role_claim must name claims"));
        }
        Ok(())
    }
}

/// Why the JWKS could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The JWKS could not be fetched or read.
    #[error("fetching the JWKS from {url}: {reason}")]
    Jwks {
        /// Its URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// Verifies tokens against the JWKS at one URL, fetched at start and again every `refresh`
/// (or when a token names a key id it does not hold).
pub struct JwtVerifier {
    settings: JwtSettings,
    url: String,
    http: reqwest::Client,
    keys: RwLock<(JwkSet, Instant)>,
    last_refetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("url", &self.url).finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier when `settings` names a JWKS (fetched now: a gateway configured for tokens it
    /// cannot check should not start), `None` when tokens are not accepted.
    pub async fn connect(settings: &JwtSettings) -> Result<Option<JwtVerifier>, JwtError> {
        let Some(url) = settings.jwks_url.clone() else { return Ok(None) };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| JwtError::Jwks { url: url.clone(), reason: error.to_string() })?;
        let keys = fetch(&http, &url).await?;
        Ok(Some(JwtVerifier {
            settings: settings.clone(),
            url,
            http,
            keys: RwLock::new((keys, Instant::now())),
            last_refetch: Mutex::new(None),
        }))
    }

    /// The identity a token proves, or `None` for one that is malformed, badly signed, expired,
    /// for another issuer or audience, or without a tenant, a subject or a known role.
    pub async fn verify(&self, token: &str) -> Option<Identity> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !ASYMMETRIC.contains(&header.alg) {
            return None;
        }
        let jwk = self.key(header.kid.as_deref()).await?;
        if jwk.common.key_algorithm.is_some_and(|alg| alg.to_string() != format!("{:?}", header.alg)) {
            return None;
        }
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.settings.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).ok()?.claims;
        let claim = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let tenant = claim(&self.settings.tenant_claim)?;
        let role: Role = claim(&self.settings.role_claim)?.parse().ok()?;
        let subject = claim("sub")?;
        if tenant.is_empty() || subject.is_empty() {
            return None;
        }
        Some(Identity { subject: format!("jwt:{subject}"), tenant, role })
    }

    /// The key a token names (or the set's only key, for a token without `kid`), fetching the
    /// set again when it is old or lacks the id.
    async fn key(&self, kid: Option<&str>) -> Option<Jwk> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let refresh = self.settings.refresh;
        {
            let keys = self.keys.read().await;
            if let Some(jwk) = find(&keys.0)
                && keys.1.elapsed() < refresh
            {
                return Some(jwk);
            }
        }
        if self.may_refetch() {
            match fetch(&self.http, &self.url).await {
                Ok(set) => *self.keys.write().await = (set, Instant::now()),
                Err(error) => tracing::warn!(%error, "keeping the JWKS fetched before"),
            }
        }
        find(&self.keys.read().await.0)
    }

    /// Whether a fetch is allowed now (one per [`REFETCH_PAUSE`]).
    fn may_refetch(&self) -> bool {
        let Ok(mut last) = self.last_refetch.lock() else { return false };
        if last.is_some_and(|at| at.elapsed() < REFETCH_PAUSE) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<JwkSet, JwtError> {
    let failed = |reason: String| JwtError::Jwks { url: url.to_owned(), reason };
    let response = http.get(url).send().await.map_err(|error| failed(error.to_string()))?;
    let response = response.error_for_status().map_err(|error| failed(error.to_string()))?;
    response.json::<JwkSet>().await.map_err(|error| failed(format!("not a JWK set: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_url_must_be_http() {
        let settings = JwtSettings { jwks_url: Some("file:///etc/passwd".into()), ..JwtSettings::default() };
        assert_eq!(settings.validate().unwrap_err().key, "jwks_url");
    }

    #[test]
    fn no_jwks_url_accepts_no_tokens_and_validates() {
        JwtSettings::default().validate().unwrap();
    }
}
