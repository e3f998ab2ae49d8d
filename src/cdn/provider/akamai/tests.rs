use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::cdn::contract::ContractServer;
use crate::cdn::contract::akamai::{AkamaiContract, serve};

fn credentials(secret: &str) -> Credentials {
    Credentials {
        client_token: "akab-client-token-test".into(),
        client_secret: Secret::new(secret),
        access_token: "akab-access-token-test".into(),
    }
}

const SECRET: &str = "c2VjcmV0LXRoYXQtaXMtc2hhcmVkLXdpdGgtdGhlLXNlcnZlcg==";

async fn start() -> (ContractServer, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    (serve(listener, AkamaiContract::new(credentials(SECRET)), shutdown.clone()).await.unwrap(), shutdown)
}

fn adapter(server: &ContractServer, secret: &str) -> AkamaiApi {
    AkamaiApi::with_credentials(Client::new(), &AkamaiSettings::new(server.url()), credentials(secret)).unwrap()
}

fn tags(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i}")).collect()
}

fn batch(method: PurgeMethod, items: Vec<String>, soft: bool) -> PurgeBatch {
    PurgeBatch { method, items, soft }
}

#[tokio::test]
async fn a_soft_tag_purge_is_a_signed_invalidate_and_is_recorded() {
    let (server, _shutdown) = start().await;
    let ack = adapter(&server, SECRET).purge(&batch(PurgeMethod::SurrogateKey, tags(3), true)).await.unwrap();
    assert_eq!(ack.http_status, 201);
    assert!(ack.provider_id.is_some());
    let purges = server.purges();
    assert_eq!(purges[0].operation, "invalidate/tag");
    assert_eq!(purges[0].items, tags(3));
    assert!(purges[0].soft);
}

#[tokio::test]
async fn a_hard_url_purge_is_a_delete() {
    let (server, _shutdown) = start().await;
    let url = "https://assets.example.com/app.js".to_owned();
    adapter(&server, SECRET).purge(&batch(PurgeMethod::Url, vec![url.clone()], false)).await.unwrap();
    let purges = server.purges();
    assert_eq!(
        (purges[0].operation.as_str(), purges[0].items.clone(), purges[0].soft),
        ("delete/url", vec![url], false)
    );
}

#[tokio::test]
async fn a_wrong_secret_fails_the_signature_and_is_refused() {
    let (server, _shutdown) = start().await;
    let error =
        adapter(&server, "another-secret").purge(&batch(PurgeMethod::SurrogateKey, tags(1), true)).await.unwrap_err();
    assert_eq!(error.http_status(), Some(401));
    assert!(!error.is_retryable());
    assert!(server.purges().is_empty());
}

#[tokio::test]
async fn a_tampered_body_or_a_replayed_nonce_fails_verification() {
    let (server, _shutdown) = start().await;
    let api = adapter(&server, SECRET);
    let url = Url::parse(&format!("{}/ccu/v3/invalidate/tag/production", server.url())).unwrap();
    let body = br#"{"objects":["t1"]}"#;
    let authorization = api.sign(&url, body).unwrap();
    let send = |body: &'static [u8]| {
        Client::new()
            .post(url.clone())
            .header("Authorization", authorization.clone())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(send(br#"{"objects":["t2"]}"#).await.unwrap().status(), 401, "tampered body");
    assert_eq!(send(body).await.unwrap().status(), 201, "the body that was signed");
    assert_eq!(send(body).await.unwrap().status(), 401, "the same nonce again");
    assert_eq!(server.purges().len(), 1);
}

#[tokio::test]
async fn a_stale_timestamp_fails_verification_even_when_correctly_signed() {
    let (server, _shutdown) = start().await;
    let url = Url::parse(&format!("{}/ccu/v3/invalidate/tag/production", server.url())).unwrap();
    let body = br#"{"objects":["t1"]}"#;
    let host = format!("127.0.0.1:{}", url.port().unwrap());
    let request = Signable { method: "POST", scheme: "http", host: &host, path_and_query: url.path(), body };
    let an_hour_ago = edgegrid::timestamp(SystemTime::now() - Duration::from_secs(3600));
    let authorization = edgegrid::authorization(&credentials(SECRET), &request, &an_hour_ago, "nonce-1");
    let answer = Client::new()
        .post(url)
        .header("Authorization", authorization)
        .header("Content-Type", "application/json")
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
}

#[tokio::test]
async fn the_adapters_tag_maximum_is_what_one_request_may_carry() {
    let (server, _shutdown) = start().await;
    let api = adapter(&server, SECRET);
    let max = api.limits().max_items(PurgeMethod::SurrogateKey);
    api.purge(&batch(PurgeMethod::SurrogateKey, tags(max), true)).await.unwrap();
    assert_eq!(server.purges()[0].items.len(), max);
    let error = api.purge(&batch(PurgeMethod::SurrogateKey, tags(max + 1), true)).await.unwrap_err();
    assert!(!error.is_retryable(), "more tags than the bucket holds can never be accepted");
}

#[tokio::test]
async fn the_body_limit_is_fast_purges_and_a_larger_body_is_413() {
    let (server, _shutdown) = start().await;
    let api = adapter(&server, SECRET);
    assert_eq!(api.limits().max_body_bytes, Some(50_000));
    // Tags of 45 characters: 48 bytes each in the body (quotes and comma), so 1,041 of them
    // make 49,981 bytes with `{"objects":[…]}` around them.
    let long_tags = |n: usize| (0..n).map(|i| format!("{i:0>45}")).collect::<Vec<_>>();
    api.purge(&batch(PurgeMethod::SurrogateKey, long_tags(1041), true)).await.unwrap();
    // One more is over 50,000 bytes: the adapter refuses it, and so does the server.
    let over = long_tags(1042);
    let error = api.purge(&batch(PurgeMethod::SurrogateKey, over.clone(), true)).await.unwrap_err();
    assert_eq!(error.http_status(), Some(413));
    let url = Url::parse(&format!("{}/ccu/v3/invalidate/tag/production", server.url())).unwrap();
    let body = serde_json::to_vec(&serde_json::json!({ "objects": over })).unwrap();
    let answer = Client::new()
        .post(url.clone())
        .header("Authorization", api.sign(&url, &body).unwrap())
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
}

#[tokio::test]
async fn the_tag_bucket_refuses_what_it_cannot_hold_and_the_adapter_waits_the_documented_five_seconds() {
    let (server, _shutdown) = start().await;
    let api = adapter(&server, SECRET);
    // 5,000 tags empty the cache-tag bucket (500 a minute): 100 more need 12 s of refill.
    for _ in 0..2 {
        api.purge(&batch(PurgeMethod::SurrogateKey, tags(2_500), true)).await.unwrap();
    }
    let error = api.purge(&batch(PurgeMethod::SurrogateKey, tags(100), true)).await.unwrap_err();
    assert_eq!(error, ProviderError::RateLimited { status: 429, retry_after: Some(RATE_LIMIT_WAIT) });
    // A URL purge draws on its own bucket and still goes through.
    api.purge(&batch(PurgeMethod::Url, vec!["https://a.example/x".into()], true)).await.unwrap();
}

#[tokio::test]
async fn an_injected_429_comes_back_with_the_servers_retry_after() {
    let (server, _shutdown) = start().await;
    server.fail_next(1, 429, Some(Duration::from_secs(9)));
    let error = adapter(&server, SECRET).purge(&batch(PurgeMethod::SurrogateKey, tags(1), true)).await.unwrap_err();
    assert_eq!(error, ProviderError::RateLimited { status: 429, retry_after: Some(Duration::from_secs(9)) });
}

#[tokio::test]
async fn unknown_body_fields_empty_lists_and_long_tags_are_400() {
    let (server, _shutdown) = start().await;
    let api = adapter(&server, SECRET);
    let url = Url::parse(&format!("{}/ccu/v3/delete/tag/staging", server.url())).unwrap();
    for body in [
        serde_json::json!({ "objects": ["a"], "action": "remove" }),
        serde_json::json!({ "objects": [] }),
        serde_json::json!({ "objects": ["x".repeat(129)] }),
    ] {
        let body = serde_json::to_vec(&body).unwrap();
        let answer = Client::new()
            .post(url.clone())
            .header("Authorization", api.sign(&url, &body).unwrap())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400);
    }
}

#[test]
fn settings_default_to_production_and_refuse_a_host_with_a_path() {
    let settings: AkamaiSettings = toml::from_str("host = \"https://akab-x.purge.akamaiapis.net\"").unwrap();
    assert_eq!(settings.network, AkamaiNetwork::Production);
    assert_eq!(settings.client_secret_env, "AKAMAI_CLIENT_SECRET");
    assert!(settings.validate().is_ok());
    assert!(AkamaiSettings::new("https://akab-x.purge.akamaiapis.net/ccu").validate().is_err());
}

#[test]
fn a_missing_credential_variable_is_named_at_start() {
    let settings = AkamaiSettings {
        client_token_env: "FRONTIER_TEST_NO_SUCH_AKAMAI_TOKEN".into(),
        ..AkamaiSettings::new("https://akab-x.purge.akamaiapis.net")
    };
    let error = AkamaiApi::new(Client::new(), &settings).unwrap_err();
    assert!(error.contains("FRONTIER_TEST_NO_SUCH_AKAMAI_TOKEN"), "{error}");
}
