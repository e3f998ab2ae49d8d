//! JWT bearer tokens signed by OpenSSL (an implementation independent of the gateway's), checked
//! against a JWKS served over HTTP as an identity provider publishes it.

use std::process::Command;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{World, json_of};

const ISSUER: &str = "https://idp.frontier.test";

/// An RSA key made by `openssl genpkey`, and its public half as a JWK.
struct SigningKey {
    dir: tempfile::TempDir,
    jwk: Value,
}

impl SigningKey {
    fn new(kid: &str) -> SigningKey {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        let made = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&pem)
            .output()
            .expect("openssl runs (Debian package openssl)");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let modulus = Command::new("openssl").args(["rsa", "-noout", "-modulus", "-in"]).arg(&pem).output().unwrap();
        let modulus = String::from_utf8(modulus.stdout).unwrap();
        let modulus = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
        let jwk = json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(modulus), "e": "AQAB",
        });
        SigningKey { dir, jwk }
    }

    /// A compact JWS of `claims`, signed RS256 by `openssl dgst`.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.jwk["kid"]});
        let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let input = format!("{}.{}", encode(&header), encode(claims));
        let message = self.dir.path().join("input");
        std::fs::write(&message, &input).unwrap();
        let signed = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(self.dir.path().join("key.pem"))
            .arg(&message)
            .output()
            .unwrap();
        assert!(signed.status.success());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signed.stdout))
    }
}

/// Serves `{"keys": [jwk]}` as the provider's JWKS; returns its URL.
async fn serve_jwks(jwk: &Value) -> String {
    let set = json!({ "keys": [jwk] });
    let app = Router::new().route("/.well-known/jwks.json", get(move || async move { axum::Json(set) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/.well-known/jwks.json")
}

fn claims(role: &str, expires_in: i64) -> Value {
    let now = frontier::clock::now_millis() / 1000;
    json!({"sub": "ana", "tenant": "acme", "role": role, "iss": ISSUER, "iat": now, "exp": now + expires_in})
}

/// A gateway trusting `key`'s provider; unknown kinds are answered 404 only after admission.
async fn gateway_trusting(world: &mut World, key: &SigningKey) -> String {
    let jwks = serve_jwks(&key.jwk).await;
    world
        .gateway(move |settings| {
            settings.gateway.auth.jwt.jwks_url = Some(jwks);
            settings.gateway.auth.jwt.issuer = Some(ISSUER.into());
        })
        .await
}

const ADMITTED_PROBE: &str = "/v1/analysis/market.weather";

#[tokio::test]
async fn a_token_signed_by_the_providers_key_is_admitted() {
    let mut world = World::new("jwtok").await;
    let key = SigningKey::new("k1");
    let base = gateway_trusting(&mut world, &key).await;
    let token = key.sign(&claims("operator", 300));
    let response = world.post(&base, ADMITTED_PROBE, Some(&token), "{}").await;
    assert_eq!(response.status(), 404, "admitted, then the kind is unknown");
    world.finish().await;
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let mut world = World::new("jwtexpired").await;
    let key = SigningKey::new("k1");
    let base = gateway_trusting(&mut world, &key).await;
    let token = key.sign(&claims("operator", -120));
    assert_eq!(world.post(&base, ADMITTED_PROBE, Some(&token), "{}").await.status(), 401);
    world.finish().await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_unauthenticated() {
    let mut world = World::new("jwtforged").await;
    let trusted = SigningKey::new("k1");
    let base = gateway_trusting(&mut world, &trusted).await;
    // Same key id, different key: a forger who read the JWKS.
    let forger = SigningKey::new("k1");
    let token = forger.sign(&claims("admin", 300));
    assert_eq!(world.post(&base, ADMITTED_PROBE, Some(&token), "{}").await.status(), 401);
    world.finish().await;
}

#[tokio::test]
async fn a_token_signed_with_the_public_key_as_an_hmac_secret_is_unauthenticated() {
    let mut world = World::new("jwthmac").await;
    let key = SigningKey::new("k1");
    let base = gateway_trusting(&mut world, &key).await;
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims("admin", 300).to_string());
    // The classic algorithm confusion: the public modulus, published in the JWKS, as the secret.
    use hmac::{KeyInit, Mac};
    let secret = key.jwk["n"].as_str().unwrap().as_bytes();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    assert_eq!(world.post(&base, ADMITTED_PROBE, Some(&token), "{}").await.status(), 401);
    world.finish().await;
}

#[tokio::test]
async fn a_viewer_token_may_not_post_requests() {
    let mut world = World::new("jwtviewer").await;
    let key = SigningKey::new("k1");
    let base = gateway_trusting(&mut world, &key).await;
    let token = key.sign(&claims("viewer", 300));
    let response = world.post(&base, ADMITTED_PROBE, Some(&token), "{}").await;
    assert_eq!(response.status(), 403);
    assert_eq!(json_of(response).await["error"]["code"], "forbidden");
    world.finish().await;
}
