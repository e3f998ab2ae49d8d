//! What the gateway refuses before anything reaches Kafka: callers without a live key or the
//! role, callers over their quota, bodies too large or malformed, kinds nobody serves.

use frontier::gateway::keys::Role;
use serde_json::json;

use super::{World, json_of};

const VOLATILITY: &str = "/v1/analysis/market.volatility";

#[tokio::test]
async fn a_request_without_a_key_is_unauthenticated() {
    let mut world = World::new("nokey").await;
    let base = world.gateway(|_| {}).await;
    let response = world.post(&base, VOLATILITY, None, "{}").await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(json_of(response).await["error"]["code"], "unauthenticated");
    world.finish().await;
}

#[tokio::test]
async fn a_key_nobody_issued_is_unauthenticated() {
    let mut world = World::new("forged").await;
    let base = world.gateway(|_| {}).await;
    let forged = "frk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let response = world.post(&base, VOLATILITY, Some(forged), "{}").await;
    assert_eq!(response.status(), 401);
    world.finish().await;
}

#[tokio::test]
async fn a_viewer_may_not_post_requests() {
    let mut world = World::new("viewer").await;
    let base = world.gateway(|_| {}).await;
    let viewer = world.key("acme", Role::Viewer).await;
    let response = world.post(&base, VOLATILITY, Some(&viewer), r#"{"params": {"symbol": "SYN0001"}}"#).await;
    assert_eq!(response.status(), 403);
    assert_eq!(json_of(response).await["error"]["code"], "forbidden");
    world.finish().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_once_the_key_cache_forgets_it() {
    let mut world = World::new("revoked").await;
    let ttl = std::time::Duration::from_millis(200);
    let base = world.gateway(|settings| settings.gateway.auth.key_cache_ttl = ttl).await;
    let created = world.keys.create("acme", Role::Operator, "to revoke").await.unwrap();
    let unknown_kind = "/v1/analysis/market.weather";
    assert_eq!(world.post(&base, unknown_kind, Some(&created.key), "{}").await.status(), 404, "the live key is let in");
    assert!(world.keys.revoke(&created.id).await.unwrap().is_some());
    // The gateway remembers a verified key for `key_cache_ttl` (200 ms here).
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(world.post(&base, unknown_kind, Some(&created.key), "{}").await.status(), 401);
    world.finish().await;
}

#[tokio::test]
async fn over_quota_is_429_with_retry_after_across_two_gateway_instances() {
    let mut world = World::new("quota").await;
    let quota = |settings: &mut frontier::settings::Settings| {
        let limits = &mut settings.gateway.rate_limits;
        limits.tenants.insert("acme".into(), frontier::gateway::ratelimit::Quota { per_second: 1, burst: 6 });
    };
    let first = world.gateway(quota).await;
    let second = world.gateway(quota).await;
    let key = world.key("acme", Role::Operator).await;
    let mut admitted = 0;
    let mut refused = None;
    // Unknown kinds are refused after admission, so each call is charged without a worker.
    for call in 0..12 {
        let base = if call % 2 == 0 { &first } else { &second };
        let response = world.post(base, "/v1/analysis/market.weather", Some(&key), "{}").await;
        match response.status().as_u16() {
            404 => admitted += 1,
            429 => refused = Some(response),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted, 6, "the two instances share the tenant's burst of 6");
    let refused = refused.expect("calls past the burst are refused");
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert!(refused.headers().contains_key("ratelimit-limit"));
    assert_eq!(json_of(refused).await["error"]["code"], "rate_limited");
    world.finish().await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let mut world = World::new("oversized").await;
    let base = world.gateway(|settings| settings.gateway.max_body_bytes = 4096).await;
    let key = world.key("acme", Role::Operator).await;
    let body = json!({"params": {"symbol": "X".repeat(10_000)}}).to_string();
    let response = world.post(&base, VOLATILITY, Some(&key), &body).await;
    assert_eq!(response.status(), 413);
    assert_eq!(json_of(response).await["error"]["code"], "body_too_large");
    world.finish().await;
}

#[tokio::test]
async fn a_malformed_body_is_400() {
    let mut world = World::new("malformed").await;
    let base = world.gateway(|_| {}).await;
    let key = world.key("acme", Role::Operator).await;
    let response = world.post(&base, VOLATILITY, Some(&key), r#"{"params": {"symbol": "#).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(response).await["error"]["code"], "invalid_body");
    world.finish().await;
}

#[tokio::test]
async fn a_bad_parameter_is_400_naming_its_path() {
    let mut world = World::new("badparam").await;
    let base = world.gateway(|_| {}).await;
    let key = world.key("acme", Role::Operator).await;
    let body = r#"{"params": {"symbol": "SYN0001", "window_days": -3}}"#;
    let response = world.post(&base, VOLATILITY, Some(&key), body).await;
    assert_eq!(response.status(), 400);
    let error = json_of(response).await;
    assert_eq!(error["error"]["field"], "params.window_days", "{error}");
    world.finish().await;
}

#[tokio::test]
async fn an_unknown_kind_is_404() {
    let mut world = World::new("unknownkind").await;
    let base = world.gateway(|_| {}).await;
    let key = world.key("acme", Role::Operator).await;
    let response = world.post(&base, "/v1/analysis/market.weather", Some(&key), "{}").await;
    assert_eq!(response.status(), 404);
    assert_eq!(json_of(response).await["error"]["code"], "unknown_kind");
    world.finish().await;
}
