//! The outcome of a check and the HTTP headers that tell a caller about it.

use std::time::Duration;

/// Who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionSource {
    /// The shared buckets in Redis.
    Redis,
    /// Redis failed and `on_redis_error` is `open`: the instance's own limiter decided, with the
    /// same quotas but counting only the calls this instance saw.
    Local,
    /// Redis failed and `on_redis_error` is `closed`: refused.
    FailedClosed,
    /// Limits are off.
    Disabled,
}

/// The bucket a refusal is counted under (the `scope` label of the refusal metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The tenant's bucket.
    Tenant,
    /// The API key's bucket.
    Key,
}

impl Scope {
    /// The metric label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Key => "key",
        }
    }
}

/// The outcome of one check. The numbers are the tighter bucket's: the one with fewer calls left
/// or, on a refusal, the one to wait longer for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may proceed.
    pub allowed: bool,
    /// The burst of the tighter bucket.
    pub limit: u32,
    /// Calls left in it right now (0 on a refusal).
    pub remaining: u32,
    /// Until it is full again.
    pub reset_after: Duration,
    /// When refused: how long until a call would pass.
    pub retry_after: Option<Duration>,
    /// Who decided.
    pub source: DecisionSource,
}

impl Decision {
    /// What a check answers while limits are off.
    pub(super) fn disabled() -> Decision {
        Decision {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: None,
            source: DecisionSource::Disabled,
        }
    }

    /// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (delta seconds, as in
    /// draft-ietf-httpapi-ratelimit-headers) and, when refused, `Retry-After`; seconds are
    /// rounded up, so a caller that waits as told is not refused again for being early, and
    /// `Retry-After` is at least 1. Names are lowercase: HTTP/2 requires it and
    /// `HeaderName::from_static` accepts nothing else. None while limits are off.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        if self.source == DecisionSource::Disabled {
            return Vec::new();
        }
        let mut headers = vec![
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", seconds_up(self.reset_after).to_string()),
        ];
        if !self.allowed {
            let retry = self.retry_after.unwrap_or(Duration::ZERO);
            headers.push(("retry-after", seconds_up(retry).max(1).to_string()));
        }
        headers
    }
}

/// Whole seconds, rounded up.
pub(super) fn seconds_up(duration: Duration) -> u64 {
    duration.as_nanos().div_ceil(1_000_000_000).try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, reset_ms: u64, retry_ms: Option<u64>) -> Decision {
        Decision {
            allowed,
            limit: 10,
            remaining: if allowed { 4 } else { 0 },
            reset_after: Duration::from_millis(reset_ms),
            retry_after: retry_ms.map(Duration::from_millis),
            source: DecisionSource::Redis,
        }
    }

    fn header(decision: &Decision, name: &str) -> Option<String> {
        decision.headers().into_iter().find(|(n, _)| *n == name).map(|(_, value)| value)
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds_up(Duration::ZERO), 0);
        assert_eq!(seconds_up(Duration::from_nanos(1)), 1);
        assert_eq!(seconds_up(Duration::from_millis(1000)), 1);
        assert_eq!(seconds_up(Duration::from_millis(1001)), 2);
        assert_eq!(seconds_up(Duration::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn an_allowed_call_carries_the_ratelimit_headers_and_no_retry_after() {
        let allowed = decision(true, 1_500, None);
        assert_eq!(
            allowed.headers(),
            vec![
                ("ratelimit-limit", "10".to_owned()),
                ("ratelimit-remaining", "4".to_owned()),
                ("ratelimit-reset", "2".to_owned()),
            ]
        );
    }

    #[test]
    fn a_refusal_says_when_to_retry_rounded_up() {
        assert_eq!(header(&decision(false, 9_000, Some(1_200)), "retry-after").as_deref(), Some("2"));
        assert_eq!(header(&decision(false, 9_000, Some(3_000)), "retry-after").as_deref(), Some("3"));
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(header(&decision(false, 0, Some(0)), "retry-after").as_deref(), Some("1"));
        assert_eq!(header(&decision(false, 0, None), "retry-after").as_deref(), Some("1"));
    }

    #[test]
    fn disabled_limits_add_no_headers() {
        assert!(Decision::disabled().headers().is_empty());
    }

    #[test]
    fn header_names_are_valid_static_header_names() {
        // The gateway builds them with `HeaderName::from_static`, which panics on anything else.
        for (name, _) in decision(false, 1, Some(1)).headers() {
            let _ = axum::http::HeaderName::from_static(name);
        }
    }
}
