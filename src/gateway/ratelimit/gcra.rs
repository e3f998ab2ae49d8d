//! The shared buckets: one Lua script checks and charges a call's two buckets at once against
//! Redis's clock, and [`decide`] reads its reply.

use std::time::Duration;

use super::decision::{Decision, DecisionSource, Scope};
use super::settings::Quota;

/// Checks and charges a call's buckets, `KEYS[1]` (its tenant's) and `KEYS[2]` (its key's).
///
/// GCRA: a bucket is its theoretical arrival time (TAT), in microseconds of Redis's clock
/// (`TIME`, so the gateways' clocks do not matter). A call at `now` is admitted when
/// `max(TAT, now) + interval - tolerance <= now`, where `interval` (`ARGV[1]`, `ARGV[3]`) is the
/// time one call uses up and `tolerance` (`ARGV[2]`, `ARGV[4]`) is `burst` intervals; an
/// admitted call moves the TAT to `max(TAT, now) + interval`. Both buckets must admit a call for
/// either to be charged. A bucket's key lives until its TAT (`PX`): from then on the bucket is
/// full, the same as absent, so an idle tenant costs Redis nothing.
///
/// Every number is a whole number of microseconds below 2^53, which Lua's doubles hold exactly
/// (a TAT in fractional milliseconds drifts by rounding and now and then refuses the last call
/// of a burst); TATs are written with `%.0f` because `tostring` keeps only 14 digits.
///
/// Returns `{admitted (1 or 0), spare_tenant, spare_key, reset_tenant, reset_key}`: a bucket's
/// spare is how much further its TAT may run ahead after this call (negative: how long until it
/// admits one), its reset how long until it is full again.
pub(super) const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local function look(key, interval, tolerance)
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local next_tat = tat + interval
  return tat, next_tat, now + tolerance - next_tat
end
local tat1, next1, spare1 = look(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
local tat2, next2, spare2 = look(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if spare1 < 0 or spare2 < 0 then
  return {0, spare1, spare2, tat1 - now, tat2 - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', next1), 'PX', math.ceil((next1 - now) / 1000))
redis.call('SET', KEYS[2], string.format('%.0f', next2), 'PX', math.ceil((next2 - now) / 1000))
return {1, spare1, spare2, next1 - now, next2 - now}
";

/// The Redis keys of a call's buckets, the tenant's and the key's. Both carry the tenant as a
/// hash tag (`{tenant}`), so on a Redis Cluster they live in one slot, as a script that touches
/// both requires.
pub(super) fn bucket_keys(prefix: &str, tenant: &str, key: &str) -> [String; 2] {
    [format!("{prefix}{{{tenant}}}:tenant"), format!("{prefix}{{{tenant}}}:key:{key}")]
}

/// A checked call: the decision, and the bucket a refusal is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    /// What the caller is told.
    pub decision: Decision,
    /// On a refusal, the bucket that refused (the one to wait longer for, when both did).
    pub refused_by: Option<Scope>,
}

/// One bucket as the script saw it.
struct Bucket {
    scope: Scope,
    quota: Quota,
    spare_us: i64,
    reset_us: i64,
}

impl Bucket {
    /// Calls it would still admit now.
    fn remaining(&self) -> u32 {
        let interval = i64::try_from(self.quota.interval_us()).unwrap_or(i64::MAX);
        u32::try_from(self.spare_us.max(0) / interval).unwrap_or(u32::MAX).min(self.quota.burst)
    }

    /// How long until it admits a call.
    fn wait(&self) -> Duration {
        Duration::from_micros(self.spare_us.min(0).unsigned_abs())
    }

    fn reset(&self) -> Duration {
        Duration::from_micros(self.reset_us.max(0).unsigned_abs())
    }
}

/// The verdict of the script's `reply` on a call of a tenant with quota `tenant` through a key
/// with quota `key`; an error names a reply the script cannot have sent.
pub(super) fn decide(reply: &[i64], tenant: Quota, key: Quota) -> Result<Verdict, String> {
    let &[admitted, spare_tenant, spare_key, reset_tenant, reset_key] = reply else {
        return Err(format!("the rate-limit script answered {reply:?}, not 5 numbers"));
    };
    let tenant = Bucket { scope: Scope::Tenant, quota: tenant, spare_us: spare_tenant, reset_us: reset_tenant };
    let key = Bucket { scope: Scope::Key, quota: key, spare_us: spare_key, reset_us: reset_key };
    if admitted == 1 {
        let tighter = if key.remaining() < tenant.remaining() { &key } else { &tenant };
        let decision = Decision {
            allowed: true,
            limit: tighter.quota.burst,
            remaining: tighter.remaining(),
            reset_after: tighter.reset(),
            retry_after: None,
            source: DecisionSource::Redis,
        };
        return Ok(Verdict { decision, refused_by: None });
    }
    let tighter = if key.wait() > tenant.wait() { &key } else { &tenant };
    if tighter.spare_us >= 0 {
        return Err(format!("the rate-limit script refused a call both buckets admit: {reply:?}"));
    }
    let decision = Decision {
        allowed: false,
        limit: tighter.quota.burst,
        remaining: 0,
        reset_after: tighter.reset(),
        retry_after: Some(tighter.wait()),
        source: DecisionSource::Redis,
    };
    Ok(Verdict { decision, refused_by: Some(tighter.scope) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 a second (100 ms a call), burst 20.
    const TENANT: Quota = Quota { per_second: 10, burst: 20 };
    /// 5 a second (200 ms a call), burst 10.
    const KEY: Quota = Quota { per_second: 5, burst: 10 };

    fn verdict(reply: [i64; 5]) -> Verdict {
        decide(&reply, TENANT, KEY).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_admitted_call_reports_the_bucket_with_fewer_calls_left() {
        // Tenant: 15 calls of 100 ms to spare; key: 3 of 200 ms (650 ms, rounded down).
        let verdict = verdict([1, 1_500_000, 650_000, 500_000, 1_400_000]);
        assert_eq!(verdict.refused_by, None);
        let decision = verdict.decision;
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (10, 3));
        assert_eq!(decision.reset_after, Duration::from_millis(1_400));
        assert_eq!(decision.source, DecisionSource::Redis);
    }

    #[test]
    fn a_refusal_by_the_key_reports_the_keys_bucket_and_wait() {
        let verdict = verdict([0, 300_000, -250_000, 500_000, 2_000_000]);
        assert_eq!(verdict.refused_by, Some(Scope::Key));
        let decision = verdict.decision;
        assert!(!decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (10, 0));
        assert_eq!(decision.retry_after, Some(Duration::from_millis(250)));
        assert_eq!(decision.reset_after, Duration::from_secs(2));
    }

    #[test]
    fn a_call_both_buckets_refuse_waits_for_the_later_one() {
        let verdict = verdict([0, -700_000, -250_000, 2_100_000, 2_000_000]);
        assert_eq!(verdict.refused_by, Some(Scope::Tenant));
        assert_eq!(verdict.decision.retry_after, Some(Duration::from_millis(700)));
        assert_eq!(verdict.decision.limit, 20);
    }

    #[test]
    fn the_last_call_of_a_burst_leaves_none() {
        let verdict = verdict([1, 0, 0, 2_000_000, 2_000_000]);
        assert!(verdict.decision.allowed);
        assert_eq!(verdict.decision.remaining, 0);
    }

    #[test]
    fn a_reply_the_script_cannot_send_is_an_error() {
        assert!(decide(&[1, 2, 3], TENANT, KEY).is_err());
        assert!(decide(&[0, 10, 10, 0, 0], TENANT, KEY).is_err(), "a refusal with nothing refusing");
    }

    #[test]
    fn both_buckets_of_a_call_share_the_tenants_hash_tag() {
        let [tenant, key] = bucket_keys("frontier:ratelimit:", "acme", "k1");
        assert_eq!(tenant, "frontier:ratelimit:{acme}:tenant");
        assert_eq!(key, "frontier:ratelimit:{acme}:key:k1");
    }
}
