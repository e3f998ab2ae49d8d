//! The instance's own limiter, for when Redis cannot answer and `on_redis_error` is `open`: the
//! same quotas, per tenant and per key, in this process's memory (`governor`), so an instance
//! still protects itself and its tenants from each other. Each instance counts only the calls
//! it sees, so N instances let up to N times a quota through while Redis is away.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota as GovernorQuota, RateLimiter};

use super::decision::{Decision, DecisionSource, Scope};
use super::gcra::Verdict;
use super::settings::{Quota, RateLimitSettings};

type Instant = <DefaultClock as Clock>::Instant;
type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One instance's buckets.
pub(super) struct LocalLimits {
    clock: DefaultClock,
    /// Tenants with a quota of their own, built up front (the list is the configuration's).
    named: BTreeMap<String, (Quota, Direct)>,
    default_quota: Quota,
    /// Every other tenant, on `default_quota`.
    tenants: Keyed<String>,
    per_key: Quota,
    /// `(tenant, key)`: a key's id is only unique within its tenant.
    keys: Keyed<(String, String)>,
}

impl LocalLimits {
    /// Buckets for the quotas of `settings`.
    pub(super) fn new(settings: &RateLimitSettings) -> LocalLimits {
        let clock = DefaultClock::default();
        let named = settings
            .tenants
            .iter()
            .map(|(tenant, quota)| {
                let limiter = RateLimiter::direct_with_clock(governor_quota(*quota), clock.clone());
                (tenant.clone(), (*quota, limiter.with_middleware()))
            })
            .collect();
        LocalLimits {
            named,
            default_quota: settings.default_quota,
            tenants: RateLimiter::dashmap_with_clock(governor_quota(settings.default_quota), clock.clone())
                .with_middleware(),
            per_key: settings.per_key,
            keys: RateLimiter::dashmap_with_clock(governor_quota(settings.per_key), clock.clone()).with_middleware(),
            clock,
        }
    }

    /// Checks and charges one call. The key's bucket goes first, so a key over its own quota
    /// does not use up its tenant's; governor cannot check without charging, so a call its
    /// tenant then refuses is still charged to the key (an over-count, during outages only).
    pub(super) fn check(&self, tenant: &str, key: &str) -> Verdict {
        let key_state = match self.keys.check_key(&(tenant.to_owned(), key.to_owned())) {
            Ok(state) => state,
            Err(refusal) => return self.refused(Scope::Key, self.per_key, &refusal),
        };
        let (tenant_quota, tenant_state) = match self.named.get(tenant) {
            Some((quota, limiter)) => (*quota, limiter.check()),
            None => (self.default_quota, self.tenants.check_key(&tenant.to_owned())),
        };
        let tenant_state = match tenant_state {
            Ok(state) => state,
            Err(refusal) => return self.refused(Scope::Tenant, tenant_quota, &refusal),
        };
        let tenant_left = tenant_state.remaining_burst_capacity();
        let key_left = key_state.remaining_burst_capacity();
        let (quota, left) = if key_left < tenant_left { (self.per_key, key_left) } else { (tenant_quota, tenant_left) };
        let decision = Decision {
            allowed: true,
            limit: quota.burst,
            remaining: left,
            // Governor does not tell its TAT; this is the most it can be.
            reset_after: intervals(quota, quota.burst.saturating_sub(left)),
            retry_after: None,
            source: DecisionSource::Local,
        };
        Verdict { decision, refused_by: None }
    }

    fn refused(&self, scope: Scope, quota: Quota, refusal: &NotUntil<Instant>) -> Verdict {
        let wait = refusal.wait_time_from(self.clock.now());
        let decision = Decision {
            allowed: false,
            limit: quota.burst,
            remaining: 0,
            // After `wait` one call passes; the rest of the burst refills an interval at a time.
            reset_after: wait + intervals(quota, quota.burst.saturating_sub(1)),
            retry_after: Some(wait),
            source: DecisionSource::Local,
        };
        Verdict { decision, refused_by: Some(scope) }
    }

    /// Drops the buckets that are full again, so keys seen once in an outage do not stay.
    pub(super) fn forget_idle(&self) {
        self.tenants.retain_recent();
        self.tenants.shrink_to_fit();
        self.keys.retain_recent();
        self.keys.shrink_to_fit();
    }

    /// Buckets held for tenants without a quota of their own, and for keys.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.tenants.len() + self.keys.len()
    }
}

/// `count` intervals of `quota`.
fn intervals(quota: Quota, count: u32) -> Duration {
    Duration::from_micros(quota.interval_us().saturating_mul(u64::from(count)))
}

/// The governor quota of `quota` (validation made both numbers at least 1).
fn governor_quota(quota: Quota) -> GovernorQuota {
    let per_second = NonZeroU32::new(quota.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN);
    GovernorQuota::per_second(per_second).allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One call a second, so refill during a test is negligible.
    fn settings(tenant_burst: u32, key_burst: u32) -> RateLimitSettings {
        RateLimitSettings {
            default_quota: Quota { per_second: 1, burst: tenant_burst },
            per_key: Quota { per_second: 1, burst: key_burst },
            ..RateLimitSettings::default()
        }
    }

    fn admitted(local: &LocalLimits, tenant: &str, key: &str, calls: usize) -> usize {
        (0..calls).filter(|_| local.check(tenant, key).decision.allowed).count()
    }

    #[test]
    fn a_burst_passes_then_calls_are_refused_with_a_wait() {
        let local = LocalLimits::new(&settings(3, 10));
        assert_eq!(admitted(&local, "acme", "k1", 3), 3);
        let refused = local.check("acme", "k1");
        assert_eq!(refused.refused_by, Some(Scope::Tenant));
        assert!(!refused.decision.allowed);
        assert_eq!(refused.decision.source, DecisionSource::Local);
        assert!(refused.decision.retry_after.is_some_and(|wait| wait > Duration::ZERO));
        assert_eq!(refused.decision.limit, 3);
    }

    #[test]
    fn a_key_over_its_quota_leaves_its_tenants_quota_uncharged() {
        let local = LocalLimits::new(&settings(5, 3));
        assert_eq!(admitted(&local, "acme", "k1", 6), 3);
        assert_eq!(local.check("acme", "k1").refused_by, Some(Scope::Key));
        assert_eq!(admitted(&local, "acme", "k2", 4), 2, "the tenant's 5 less key k1's 3");
    }

    #[test]
    fn a_named_tenant_has_its_own_bucket_and_quota() {
        let mut settings = settings(2, 10);
        settings.tenants.insert("acme".into(), Quota { per_second: 1, burst: 4 });
        let local = LocalLimits::new(&settings);
        assert_eq!(admitted(&local, "acme", "k1", 6), 4);
        assert_eq!(admitted(&local, "globex", "k1", 6), 2);
    }

    #[test]
    fn an_admitted_call_reports_the_tighter_bucket() {
        let local = LocalLimits::new(&settings(10, 3));
        let decision = local.check("acme", "k1").decision;
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (3, 2));
    }

    #[test]
    fn buckets_are_held_per_tenant_and_key() {
        let local = LocalLimits::new(&settings(10, 10));
        local.check("acme", "k1");
        local.check("acme", "k2");
        local.check("globex", "k1");
        assert_eq!(local.held(), 5, "two tenants and three keys");
    }
}
