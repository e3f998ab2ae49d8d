use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::cdn::contract::ContractServer;
use crate::cdn::contract::cloudflare::{CloudflareContract, serve};

const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const TOKEN: &str = "cloudflare-test-token";

async fn start(plan: CloudflarePlan) -> (ContractServer, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let config = CloudflareContract { zone_id: ZONE.into(), token: TOKEN.into(), plan };
    (serve(listener, config, shutdown.clone()).await.unwrap(), shutdown)
}

fn adapter(server: &ContractServer, plan: CloudflarePlan, token: &str) -> CloudflareApi {
    let settings = CloudflareSettings { api_url: server.url(), plan, ..CloudflareSettings::new(ZONE) };
    CloudflareApi::with_token(Client::new(), &settings, Secret::new(token)).unwrap()
}

fn tags(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("asset-{i:04}")).collect()
}

fn urls(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("https://assets.example.com/app-{i}.js")).collect()
}

fn batch(method: PurgeMethod, items: Vec<String>) -> PurgeBatch {
    PurgeBatch { method, items, soft: true }
}

#[tokio::test]
async fn a_tag_purge_is_accepted_and_recorded_hard() {
    let (server, _shutdown) = start(CloudflarePlan::Pro).await;
    let api = adapter(&server, CloudflarePlan::Pro, TOKEN);
    assert!(!api.limits().soft_purge, "Cloudflare has no soft purge");
    let ack = api.purge(&batch(PurgeMethod::SurrogateKey, tags(3))).await.unwrap();
    assert_eq!(ack.http_status, 200);
    assert!(ack.provider_id.is_some());
    let purges = server.purges();
    assert_eq!(purges[0].method, PurgeMethod::SurrogateKey);
    assert_eq!(purges[0].operation, "tags");
    assert_eq!(purges[0].items, tags(3));
    assert!(!purges[0].soft);
}

#[tokio::test]
async fn each_plans_per_request_limits_are_what_cloudflare_accepts_and_one_more_is_refused() {
    for plan in [CloudflarePlan::Pro, CloudflarePlan::Enterprise] {
        let (server, _shutdown) = start(plan).await;
        let api = adapter(&server, plan, TOKEN);
        let limits = api.limits();
        api.purge(&batch(PurgeMethod::Url, urls(limits.max_urls))).await.unwrap();
        api.purge(&batch(PurgeMethod::SurrogateKey, tags(limits.max_keys))).await.unwrap();
        assert_eq!(server.purges().len(), 2);
        let client = Client::new();
        let endpoint = format!("{}/zones/{ZONE}/purge_cache", server.url());
        for body in [
            serde_json::json!({ "files": urls(limits.max_urls + 1) }),
            serde_json::json!({ "tags": tags(limits.max_keys + 1) }),
        ] {
            let over = client.post(&endpoint).bearer_auth(TOKEN).json(&body).send().await.unwrap();
            assert_eq!(over.status(), 400, "{plan:?}");
        }
    }
}

#[tokio::test]
async fn bodies_that_are_not_exactly_one_non_empty_purge_list_are_refused() {
    let (server, _shutdown) = start(CloudflarePlan::Pro).await;
    let client = Client::new();
    let endpoint = format!("{}/zones/{ZONE}/purge_cache", server.url());
    for body in [
        serde_json::json!({ "tags": [] }),
        serde_json::json!({ "tags": ["a"], "files": ["https://a.example/"] }),
        serde_json::json!({ "tags": ["a"], "soft": true }),
        serde_json::json!({ "files": ["/relative/path"] }),
        serde_json::json!({}),
    ] {
        let answer = client.post(&endpoint).bearer_auth(TOKEN).json(&body).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{body}");
        let envelope: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(envelope["success"], false);
    }
    let prefixes = serde_json::json!({ "prefixes": ["assets.example.com/app/"] });
    assert_eq!(client.post(&endpoint).bearer_auth(TOKEN).json(&prefixes).send().await.unwrap().status(), 200);
    assert_eq!(server.purges()[0].method, PurgeMethod::Ban);
}

#[tokio::test]
async fn an_empty_bucket_is_a_rate_limit_with_cloudflares_retry_after() {
    // Free: 5 requests a minute, a bucket of 25: the 26th request waits 12 s for a token.
    let (server, _shutdown) = start(CloudflarePlan::Free).await;
    let api = adapter(&server, CloudflarePlan::Free, TOKEN);
    assert_eq!(api.limits().burst, 25);
    for _ in 0..25 {
        api.purge(&batch(PurgeMethod::SurrogateKey, tags(1))).await.unwrap();
    }
    let error = api.purge(&batch(PurgeMethod::SurrogateKey, tags(1))).await.unwrap_err();
    assert_eq!(error, ProviderError::RateLimited { status: 429, retry_after: Some(Duration::from_secs(12)) });
    assert!(error.is_retryable());
}

#[tokio::test]
async fn an_injected_429_comes_back_with_the_servers_retry_after() {
    let (server, _shutdown) = start(CloudflarePlan::Business).await;
    server.fail_next(2, 429, Some(Duration::from_secs(3)));
    let api = adapter(&server, CloudflarePlan::Business, TOKEN);
    for _ in 0..2 {
        let error = api.purge(&batch(PurgeMethod::Url, urls(1))).await.unwrap_err();
        assert_eq!(error, ProviderError::RateLimited { status: 429, retry_after: Some(Duration::from_secs(3)) });
    }
    assert!(api.purge(&batch(PurgeMethod::Url, urls(1))).await.is_ok());
}

#[tokio::test]
async fn a_bad_token_is_refused_and_not_retried() {
    let (server, _shutdown) = start(CloudflarePlan::Pro).await;
    let error =
        adapter(&server, CloudflarePlan::Pro, "wrong").purge(&batch(PurgeMethod::Url, urls(1))).await.unwrap_err();
    assert_eq!(error.http_status(), Some(403));
    assert!(!error.is_retryable());
    assert!(server.purges().is_empty());
}

#[tokio::test]
async fn success_false_under_a_200_is_a_refusal() {
    // A stand-in that answers 200 with `success: false`, which Cloudflare's envelope allows.
    let app = axum::Router::new().fallback(|| async {
        axum::Json(serde_json::json!({ "success": false, "errors": [{ "code": 1134, "message": "not allowed" }], "messages": [], "result": null }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let settings = CloudflareSettings { api_url: url, ..CloudflareSettings::new(ZONE) };
    let api = CloudflareApi::with_token(Client::new(), &settings, Secret::new(TOKEN)).unwrap();
    let error = api.purge(&batch(PurgeMethod::SurrogateKey, tags(1))).await.unwrap_err();
    assert_eq!(error, ProviderError::Refused { status: 200, reason: "1134 not allowed".into() });
}

#[test]
fn the_plan_sets_the_documented_bucket_and_defaults_to_pro() {
    let settings: CloudflareSettings = toml::from_str(&format!("zone_id = \"{ZONE}\"")).unwrap();
    assert_eq!(settings.plan, CloudflarePlan::Pro);
    assert_eq!(CloudflarePlan::Pro.bucket(), (5.0, 25));
    assert_eq!(CloudflarePlan::Enterprise.bucket(), (50.0, 500));
    assert!(toml::from_str::<CloudflareSettings>(&format!("zone_id = \"{ZONE}\"\nplan = \"gold\"")).is_err());
}

#[test]
fn a_missing_token_variable_is_named_at_start() {
    let settings =
        CloudflareSettings { token_env: "FRONTIER_TEST_NO_SUCH_CF_TOKEN".into(), ..CloudflareSettings::new(ZONE) };
    let error = CloudflareApi::new(Client::new(), &settings).unwrap_err();
    assert!(error.contains("FRONTIER_TEST_NO_SUCH_CF_TOKEN"), "{error}");
}
