//! Quotas against the stack's Redis, and what a Redis outage does with each `on_redis_error`.

use frontier::config::RedisSettings;
use frontier::gateway::ratelimit::{DecisionSource, Quota, RateLimitSettings, RateLimiter, RedisFailure};

use super::common::START_HINT;
use super::common::model_server::free_port;

/// Settings with `tenant` and `key` quotas (1 a second, so refill during a test is negligible)
/// under a Redis prefix of the test's own.
fn settings(tenant_burst: u32, key_burst: u32, on_redis_error: RedisFailure) -> RateLimitSettings {
    RateLimitSettings {
        default_quota: Quota { per_second: 1, burst: tenant_burst },
        per_key: Quota { per_second: 1, burst: key_burst },
        key_prefix: format!("test:limits:{}:", uuid::Uuid::new_v4().simple()),
        on_redis_error,
        ..RateLimitSettings::default()
    }
}

async fn stack_limiter(settings: RateLimitSettings) -> RateLimiter {
    let redis = RedisSettings::default();
    let limiter =
        RateLimiter::connect(&redis, settings, tokio_util::sync::CancellationToken::new()).await.expect("limiter");
    let probe = limiter.check("probe", "key:probe").await;
    assert_eq!(probe.source, DecisionSource::Redis, "Redis at {} is not answering: {START_HINT}", redis.url);
    limiter
}

async fn admitted(limiter: &RateLimiter, tenant: &str, key: &str, calls: usize) -> usize {
    let mut passed = 0;
    for _ in 0..calls {
        if limiter.check(tenant, key).await.allowed {
            passed += 1;
        }
    }
    passed
}

#[tokio::test]
async fn a_key_refused_by_its_own_quota_leaves_its_tenants_quota_uncharged() {
    let limiter = stack_limiter(settings(5, 3, RedisFailure::Open)).await;
    assert_eq!(admitted(&limiter, "acme", "key:a", 6).await, 3, "key a has a burst of 3");
    // Had key a's three refusals been charged to the tenant, nothing would be left for key b.
    assert_eq!(admitted(&limiter, "acme", "key:b", 4).await, 2, "the tenant's burst of 5 less key a's 3");
}

#[tokio::test]
async fn tenants_do_not_share_a_quota() {
    let limiter = stack_limiter(settings(2, 2, RedisFailure::Open)).await;
    assert_eq!(admitted(&limiter, "acme", "key:a", 3).await, 2);
    assert_eq!(admitted(&limiter, "globex", "key:g", 3).await, 2);
}

#[tokio::test]
async fn redis_down_fails_open_through_the_instances_own_limiter() {
    let redis = RedisSettings { url: format!("redis://127.0.0.1:{}", free_port()) };
    let limiter =
        RateLimiter::connect(&redis, settings(3, 100, RedisFailure::Open), tokio_util::sync::CancellationToken::new())
            .await
            .expect("limiter");
    let first = limiter.check("acme", "key:a").await;
    assert!(first.allowed);
    assert_eq!(first.source, DecisionSource::Local);
    assert_eq!(admitted(&limiter, "acme", "key:a", 5).await, 2, "the local limiter keeps the tenant's burst of 3");
}

#[tokio::test]
async fn redis_down_fails_closed_when_configured() {
    let redis = RedisSettings { url: format!("redis://127.0.0.1:{}", free_port()) };
    let limiter =
        RateLimiter::connect(&redis, settings(3, 3, RedisFailure::Closed), tokio_util::sync::CancellationToken::new())
            .await
            .expect("limiter");
    let decision = limiter.check("acme", "key:a").await;
    assert!(!decision.allowed);
    assert_eq!(decision.source, DecisionSource::FailedClosed);
    assert!(decision.headers().iter().any(|(name, _)| *name == "retry-after"));
}
