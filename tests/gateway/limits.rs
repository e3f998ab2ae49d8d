//! The gateway's rate limiter against the stack's Redis (`ops/stack up`), plus a private
//! `redis-server` for the outage test. Every test keeps its buckets under a Redis prefix of its
//! own and deletes it at the end (a failed test's buckets expire by themselves within seconds).
//! Quotas are one call a second, so what refills during a test is negligible next to the counts.

use std::time::{Duration, Instant};

use super::common::model_server::free_port;
use super::common::redis::{PrivateRedis, delete_prefix, stack_redis};
use frontier::config::RedisSettings;
use frontier::gateway::ratelimit::{Decision, DecisionSource, Quota, RateLimitSettings, RateLimiter, RedisFailure};
use tokio_util::sync::CancellationToken;

/// How long the outage test waits for the limiter to notice Redis come and go.
const PATIENCE: Duration = Duration::from_secs(20);

/// One test's quotas and the prefix its buckets live under.
struct Limits {
    url: String,
    prefix: String,
    settings: RateLimitSettings,
}

impl Limits {
    /// Tenants get `tenant_burst`, keys `key_burst`, both at one call a second.
    async fn on_stack(tenant_burst: u32, key_burst: u32) -> Limits {
        let url = stack_redis(&super::common::settings()).await;
        Limits::on(url, tenant_burst, key_burst, RedisFailure::Open)
    }

    fn on(url: String, tenant_burst: u32, key_burst: u32, on_redis_error: RedisFailure) -> Limits {
        let prefix = format!("test:ratelimit:{}", uuid::Uuid::new_v4().simple());
        let settings = RateLimitSettings {
            default_quota: Quota { per_second: 1, burst: tenant_burst },
            per_key: Quota { per_second: 1, burst: key_burst },
            key_prefix: format!("{prefix}:"),
            on_redis_error,
            ..RateLimitSettings::default()
        };
        Limits { url, prefix, settings }
    }

    /// A gateway instance's limiter.
    async fn instance(&self) -> RateLimiter {
        let redis = RedisSettings::at(self.url.clone());
        RateLimiter::connect(&redis, self.settings.clone(), CancellationToken::new()).await.expect("a limiter")
    }

    async fn clean_up(&self) {
        delete_prefix(&self.url, &self.prefix).await;
    }
}

/// How many of `calls` checks of `tenant` through `key` pass.
async fn admitted(limiter: &RateLimiter, tenant: &str, key: &str, calls: usize) -> usize {
    let mut passed = 0;
    for _ in 0..calls {
        if limiter.check(tenant, key).await.allowed {
            passed += 1;
        }
    }
    passed
}

fn header(decision: &Decision, name: &str) -> Option<String> {
    decision.headers().into_iter().find(|(n, _)| *n == name).map(|(_, value)| value)
}

#[tokio::test]
async fn a_burst_passes_then_a_call_is_refused_with_retry_after() {
    let limits = Limits::on_stack(3, 10).await;
    let limiter = limits.instance().await;
    let mut left = Vec::new();
    for _ in 0..3 {
        let decision = limiter.check("acme", "key-a").await;
        assert!(decision.allowed, "{decision:?}");
        assert_eq!(decision.source, DecisionSource::Redis);
        assert_eq!(decision.limit, 3);
        left.push(decision.remaining);
    }
    assert_eq!(left, [2, 1, 0]);

    let refused = limiter.check("acme", "key-a").await;
    assert!(!refused.allowed);
    assert_eq!(refused.source, DecisionSource::Redis);
    assert_eq!(refused.remaining, 0);
    assert!(refused.retry_after.is_some_and(|wait| wait > Duration::ZERO), "{refused:?}");
    let retry_after: u64 = header(&refused, "retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(header(&refused, "ratelimit-remaining").as_deref(), Some("0"));
    limits.clean_up().await;
}

#[tokio::test]
async fn two_instances_share_one_tenant_quota() {
    let limits = Limits::on_stack(4, 100).await;
    let (a, b) = (limits.instance().await, limits.instance().await);
    let mut passed = 0;
    for _ in 0..4 {
        passed += admitted(&a, "acme", "key-a", 1).await;
        passed += admitted(&b, "acme", "key-b", 1).await;
    }
    assert_eq!(passed, 4, "the tenant's burst once, not once per instance");
    limits.clean_up().await;
}

#[tokio::test]
async fn a_key_over_its_quota_is_refused_while_another_key_of_its_tenant_passes() {
    let limits = Limits::on_stack(10, 2).await;
    let limiter = limits.instance().await;
    assert_eq!(admitted(&limiter, "acme", "key-a", 2).await, 2);
    let refused = limiter.check("acme", "key-a").await;
    assert!(!refused.allowed);
    assert_eq!(refused.limit, 2, "the key's bucket refused: {refused:?}");
    assert!(limiter.check("acme", "key-b").await.allowed);
    limits.clean_up().await;
}

#[tokio::test]
async fn a_refusal_by_the_key_does_not_charge_the_tenant() {
    let limits = Limits::on_stack(5, 3).await;
    let limiter = limits.instance().await;
    assert_eq!(admitted(&limiter, "acme", "key-a", 6).await, 3, "key a has a burst of 3");
    // Had key a's three refusals been charged to the tenant, nothing would be left for key b.
    assert_eq!(admitted(&limiter, "acme", "key-b", 4).await, 2, "the tenant's burst of 5 less key a's 3");
    limits.clean_up().await;
}

#[tokio::test]
async fn tenants_do_not_share_a_quota_and_a_named_tenant_has_its_own() {
    let mut limits = Limits::on_stack(2, 100).await;
    limits.settings.tenants.insert("globex".into(), Quota { per_second: 1, burst: 4 });
    let limiter = limits.instance().await;
    assert_eq!(admitted(&limiter, "acme", "key-a", 3).await, 2);
    assert_eq!(admitted(&limiter, "initech", "key-i", 3).await, 2);
    assert_eq!(admitted(&limiter, "globex", "key-g", 6).await, 4);
    limits.clean_up().await;
}

#[tokio::test]
async fn buckets_expire_once_full_again() {
    let limits = Limits::on_stack(3, 3).await;
    let limiter = limits.instance().await;
    assert!(limiter.check("acme", "key-a").await.allowed);
    let client = redis::Client::open(limits.url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", limits.prefix)).query_async(&mut connection).await.unwrap();
    assert_eq!(keys.len(), 2, "the tenant's bucket and the key's: {keys:?}");
    for key in keys {
        let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut connection).await.unwrap();
        // One call of a one-a-second quota: full again, and gone, within a second.
        assert!((1..=1000).contains(&ttl_ms), "{key} expires in {ttl_ms} ms");
    }
    limits.clean_up().await;
}

#[tokio::test]
async fn redis_down_fails_open_through_the_instances_own_limiter() {
    let limits = Limits::on(format!("redis://127.0.0.1:{}", free_port()), 3, 100, RedisFailure::Open);
    let limiter = limits.instance().await;
    let first = limiter.check("acme", "key-a").await;
    assert!(first.allowed, "{first:?}");
    assert_eq!(first.source, DecisionSource::Local);
    assert!(header(&first, "ratelimit-limit").is_some());
    assert_eq!(admitted(&limiter, "acme", "key-a", 5).await, 2, "the local limiter keeps the tenant's burst of 3");
    let refused = limiter.check("acme", "key-a").await;
    assert_eq!(refused.source, DecisionSource::Local);
    assert!(header(&refused, "retry-after").is_some());
}

#[tokio::test]
async fn redis_down_fails_closed_with_retry_after_when_configured() {
    let limits = Limits::on(format!("redis://127.0.0.1:{}", free_port()), 3, 3, RedisFailure::Closed);
    let limiter = limits.instance().await;
    for _ in 0..3 {
        let decision = limiter.check("acme", "key-a").await;
        assert!(!decision.allowed);
        assert_eq!(decision.source, DecisionSource::FailedClosed);
        assert_eq!(decision.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(header(&decision, "retry-after").as_deref(), Some("1"));
    }
}

#[tokio::test]
async fn a_limiter_started_without_redis_uses_it_once_it_answers_and_survives_its_restart() {
    let port = PrivateRedis::free_port();
    let limits = Limits::on(format!("redis://127.0.0.1:{port}"), 1_000, 1_000, RedisFailure::Open);
    let limiter = limits.instance().await;
    assert_eq!(limiter.check("acme", "key-a").await.source, DecisionSource::Local);

    let mut redis = PrivateRedis::start(port).await;
    assert!(source_becomes(&limiter, DecisionSource::Redis).await, "Redis came up but checks never used it");

    redis.stop();
    assert!(source_becomes(&limiter, DecisionSource::Local).await, "Redis went away but checks kept waiting for it");

    let _redis = PrivateRedis::start(port).await;
    assert!(source_becomes(&limiter, DecisionSource::Redis).await, "Redis came back but checks never used it again");
}

/// Whether checks come to be decided by `source` within [`PATIENCE`].
async fn source_becomes(limiter: &RateLimiter, source: DecisionSource) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if limiter.check("acme", "key-a").await.source == source {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
