use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::cdn::contract::ContractServer;
use crate::cdn::contract::fastly::{FastlyContract, serve};

const SERVICE: &str = "SU1Z0isxPaozGVKXdv0eY";
const TOKEN: &str = "fastly-test-token";

async fn start(config: FastlyContract) -> (ContractServer, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    (serve(listener, config, shutdown.clone()).await.unwrap(), shutdown)
}

fn adapter(server: &ContractServer, token: &str) -> FastlyApi {
    let settings = FastlySettings { api_url: server.url(), ..FastlySettings::new(SERVICE) };
    FastlyApi::with_token(Client::new(), &settings, Secret::new(token)).unwrap()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("asset-{i:04}")).collect()
}

fn batch(method: PurgeMethod, items: Vec<String>, soft: bool) -> PurgeBatch {
    PurgeBatch { method, items, soft }
}

#[tokio::test]
async fn a_soft_key_purge_is_accepted_and_recorded_with_its_keys() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    let ack = adapter(&server, TOKEN).purge(&batch(PurgeMethod::SurrogateKey, keys(3), true)).await.unwrap();
    assert_eq!(ack.http_status, 200);
    assert_eq!(ack.provider_id.unwrap().split(',').count(), 3, "one purge id per key");
    let purges = server.purges();
    assert_eq!(purges.len(), 1);
    assert_eq!(purges[0].method, PurgeMethod::SurrogateKey);
    assert_eq!(purges[0].items, keys(3));
    assert!(purges[0].soft);
}

#[tokio::test]
async fn a_url_purge_names_the_cached_url_without_its_scheme() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    let url = "https://assets.example.com/app/index.html?v=2".to_owned();
    let ack = adapter(&server, TOKEN).purge(&batch(PurgeMethod::Url, vec![url], false)).await.unwrap();
    assert!(ack.provider_id.is_some());
    let purges = server.purges();
    assert_eq!(purges[0].items, ["assets.example.com/app/index.html?v=2"]);
    assert!(!purges[0].soft);
}

#[tokio::test]
async fn settings_that_forbid_soft_purges_purge_hard() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    let settings = FastlySettings { api_url: server.url(), soft: false, ..FastlySettings::new(SERVICE) };
    let api = FastlyApi::with_token(Client::new(), &settings, Secret::new(TOKEN)).unwrap();
    assert!(!api.limits().soft_purge);
    api.purge(&batch(PurgeMethod::SurrogateKey, keys(1), true)).await.unwrap();
    assert!(!server.purges()[0].soft);
}

#[tokio::test]
async fn the_adapters_key_limit_is_what_fastly_accepts_and_one_more_is_refused() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    let api = adapter(&server, TOKEN);
    let max = api.limits().max_items(PurgeMethod::SurrogateKey);
    api.purge(&batch(PurgeMethod::SurrogateKey, keys(max), true)).await.unwrap();
    assert_eq!(server.purges()[0].items.len(), max);
    // One key more, sent as the API documents it, is refused by the server itself.
    let over = Client::new()
        .post(format!("{}/service/{SERVICE}/purge", server.url()))
        .header("Fastly-Key", TOKEN)
        .json(&serde_json::json!({ "surrogate_keys": keys(max + 1) }))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 400);
    // And the adapter refuses it without sending it.
    let error = api.purge(&batch(PurgeMethod::SurrogateKey, keys(max + 1), true)).await.unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn the_surrogate_key_header_form_is_accepted_too_and_unknown_body_fields_are_not() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    let client = Client::new();
    let url = format!("{}/service/{SERVICE}/purge", server.url());
    let by_header =
        client.post(&url).header("Fastly-Key", TOKEN).header("Surrogate-Key", "a b c").send().await.unwrap();
    assert_eq!(by_header.status(), 200);
    assert_eq!(server.purges()[0].items, ["a", "b", "c"]);
    let unknown = serde_json::json!({ "surrogate_keys": ["a"], "soft": true });
    let refused = client.post(&url).header("Fastly-Key", TOKEN).json(&unknown).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let empty = serde_json::json!({ "surrogate_keys": [] });
    assert_eq!(client.post(&url).header("Fastly-Key", TOKEN).json(&empty).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn a_429_comes_back_as_a_rate_limit_with_the_servers_retry_after() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    server.fail_next(1, 429, Some(Duration::from_secs(7)));
    let api = adapter(&server, TOKEN);
    let error = api.purge(&batch(PurgeMethod::SurrogateKey, keys(1), true)).await.unwrap_err();
    assert_eq!(error, ProviderError::RateLimited { status: 429, retry_after: Some(Duration::from_secs(7)) });
    assert!(api.purge(&batch(PurgeMethod::SurrogateKey, keys(1), true)).await.is_ok());
}

#[tokio::test]
async fn an_empty_bucket_answers_429_and_the_adapter_reads_fastlys_reset_header() {
    let config = FastlyContract { requests_per_second: 0.5, burst: 1, ..FastlyContract::new(SERVICE, TOKEN) };
    let (server, _shutdown) = start(config).await;
    let api = adapter(&server, TOKEN);
    api.purge(&batch(PurgeMethod::SurrogateKey, keys(1), true)).await.unwrap();
    let error = api.purge(&batch(PurgeMethod::SurrogateKey, keys(1), true)).await.unwrap_err();
    let ProviderError::RateLimited { status: 429, retry_after: Some(wait) } = error else { panic!("{error:?}") };
    assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2), "{wait:?}");
    assert_eq!(server.purges().len(), 1);
}

#[tokio::test]
async fn a_bad_token_is_refused_and_not_retried() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    let error = adapter(&server, "wrong").purge(&batch(PurgeMethod::SurrogateKey, keys(1), true)).await.unwrap_err();
    assert_eq!(error.http_status(), Some(401));
    assert!(!error.is_retryable());
    assert!(server.purges().is_empty());
}

#[tokio::test]
async fn a_503_is_unavailable_and_retried() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    server.fail_next(1, 503, None);
    let error = adapter(&server, TOKEN).purge(&batch(PurgeMethod::Url, vec!["https://a.example/x".into()], true)).await;
    assert!(matches!(error, Err(ProviderError::Unavailable { status: Some(503), .. })));
}

#[tokio::test]
async fn a_ban_is_refused_without_a_request() {
    let (server, _shutdown) = start(FastlyContract::new(SERVICE, TOKEN)).await;
    let error =
        adapter(&server, TOKEN).purge(&batch(PurgeMethod::Ban, vec!["^/app/".into()], false)).await.unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(server.requests(), 0);
}

#[test]
fn a_missing_token_variable_is_named_at_start() {
    let settings =
        FastlySettings { token_env: "FRONTIER_TEST_NO_SUCH_FASTLY_TOKEN".into(), ..FastlySettings::new(SERVICE) };
    let error = FastlyApi::new(Client::new(), &settings).unwrap_err();
    assert!(error.contains("FRONTIER_TEST_NO_SUCH_FASTLY_TOKEN"), "{error}");
}

#[test]
fn settings_take_defaults_and_refuse_a_service_id_that_is_not_an_id() {
    let settings: FastlySettings = toml::from_str(&format!("service_id = \"{SERVICE}\"")).unwrap();
    assert_eq!(settings, FastlySettings::new(SERVICE));
    assert!(settings.validate().is_ok());
    assert!(FastlySettings::new("a/../b").validate().is_err());
    assert!(toml::from_str::<FastlySettings>("service_id = \"x\"\nsoft_purge = true").is_err());
}

#[test]
fn the_secret_token_does_not_show_in_debug_output() {
    let api = FastlyApi::with_token(Client::new(), &FastlySettings::new(SERVICE), Secret::new(TOKEN)).unwrap();
    assert!(!format!("{api:?}").contains(TOKEN));
}
