//! Who is calling, and may they: an API key (`Authorization: Bearer frk_...` or `X-API-Key`)
//! becomes an [`Identity`] with a tenant and a role; each route names the least role it needs.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::error::ApiError;
use super::jwt::JwtVerifier;
use super::keys::{Identity, KeyVerifier, Role};

/// The header an API key may come in when `Authorization` is taken by something else.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The credential a request presents, if any: a bearer token or the `X-API-Key` header.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")));
    bearer
        .or_else(|| headers.get(API_KEY_HEADER).and_then(|value| value.to_str().ok()))
        .map(str::trim)
        .filter(|credential| !credential.is_empty())
}

/// The caller's identity, if its credential is a live key or a valid token: 401 without one or
/// with one nobody issued (or that was revoked or expired), 503 when the key store cannot say.
pub async fn authenticate(
    verifier: &KeyVerifier,
    tokens: Option<&JwtVerifier>,
    headers: &HeaderMap,
) -> Result<Identity, ApiError> {
    let Some(credential) = presented(headers) else {
        return Err(ApiError::unauthenticated("an API key or token is required (`Authorization: Bearer ...`)"));
    };
    if !credential.starts_with("frk_") {
        return match tokens {
            Some(tokens) => tokens.verify(credential).await.ok_or_else(|| {
                ApiError::unauthenticated("the token is invalid, expired, or lacks a tenant or known role")
            }),
            None => Err(ApiError::unauthenticated("not an API key, and this gateway accepts no tokens")),
        };
    }
    match verifier.verify(credential).await {
        Ok(Some(identity)) => Ok(identity),
        Ok(None) => Err(ApiError::unauthenticated("the API key is unknown or revoked")),
        Err(error) => {
            tracing::warn!(%error, "the key store could not verify a key");
            Err(ApiError::unavailable("key_store_unavailable", "the key store cannot verify keys now; retry"))
        }
    }
}

/// 403 unless `identity`'s role is at least `needed`.
pub fn authorize(identity: &Identity, needed: Role) -> Result<(), ApiError> {
    if identity.role >= needed {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "this needs the {} role; the key has {}",
            needed.as_str(),
            identity.role.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_bearer_token_is_the_credential() {
        assert_eq!(presented(&headers(&[("authorization", "Bearer frk_a_b")])), Some("frk_a_b"));
    }

    #[test]
    fn the_api_key_header_is_the_credential_without_authorization() {
        assert_eq!(presented(&headers(&[("x-api-key", "frk_a_b")])), Some("frk_a_b"));
    }

    #[test]
    fn basic_authorization_is_no_credential() {
        assert_eq!(presented(&headers(&[("authorization", "Basic YTpi")])), None);
    }

    #[test]
    fn a_lower_role_is_forbidden_and_a_higher_one_allowed() {
        let viewer = Identity { subject: "key:1".into(), tenant: "acme".into(), role: Role::Viewer };
        assert_eq!(authorize(&viewer, Role::Operator).unwrap_err().status, axum::http::StatusCode::FORBIDDEN);
        let admin = Identity { role: Role::Admin, ..viewer };
        assert!(authorize(&admin, Role::Operator).is_ok());
    }
}
