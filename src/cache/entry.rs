//! One cached answer and its lifetime: fresh until `ttl`, servable stale until `ttl + grace`,
//! then dead.

use std::sync::Arc;
use std::time::Duration;

use super::settings::CachePolicy;
use super::watermark::Watermark;

/// A cached value with everything the layers need to judge it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The cached bytes, as the computation returned them.
    pub payload: Arc<[u8]>,
    /// When the computation finished, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// How long it is fresh.
    pub ttl: Duration,
    /// How long after `ttl` it may be served stale while a refresh runs.
    pub grace: Duration,
    /// Tags an invalidation can drop it by (e.g. `symbol:AAPL`).
    pub tags: Vec<String>,
    /// The invalidation watermark when its computation started: the highest invalidation
    /// offset applied per partition then. Invalidations of its tags above it make it stale.
    pub watermark: Watermark,
    /// How long the computation took (XFetch's delta: costly values are refreshed earlier).
    pub compute_cost: Duration,
}

/// Where an entry stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its ttl.
    Fresh,
    /// Past its ttl but within its grace window: serve once more, refresh in the background.
    Stale,
    /// Past ttl + grace: useless.
    Dead,
}

impl Entry {
    /// A just-computed entry.
    pub fn new(
        payload: Arc<[u8]>,
        policy: CachePolicy,
        tags: Vec<String>,
        watermark: Watermark,
        compute_cost: Duration,
        now_ms: i64,
    ) -> Entry {
        Entry { payload, created_at_ms: now_ms, ttl: policy.ttl, grace: policy.grace, tags, watermark, compute_cost }
    }

    /// When it stops being fresh, in ms since the epoch.
    pub fn expires_at_ms(&self) -> i64 {
        self.created_at_ms.saturating_add(crate::clock::duration_millis(self.ttl))
    }

    /// When it stops being servable at all, in ms since the epoch.
    pub fn dead_at_ms(&self) -> i64 {
        self.expires_at_ms().saturating_add(crate::clock::duration_millis(self.grace))
    }

    /// Time left until it is dead (zero if it is), e.g. for Redis's PX.
    pub fn remaining_life(&self, now_ms: i64) -> Duration {
        Duration::from_millis(self.dead_at_ms().saturating_sub(now_ms).max(0) as u64)
    }

    /// How old it is at `now_ms` (zero for a clock that went back).
    pub fn age(&self, now_ms: i64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.created_at_ms).max(0) as u64)
    }

    /// Fresh, stale or dead at `now_ms`.
    pub fn freshness(&self, now_ms: i64) -> Freshness {
        if now_ms < self.expires_at_ms() {
            Freshness::Fresh
        } else if now_ms < self.dead_at_ms() {
            Freshness::Stale
        } else {
            Freshness::Dead
        }
    }

    /// Bytes it occupies in memory, roughly: payload, tags and a fixed overhead.
    pub fn weight(&self) -> u32 {
        let tags: usize = self.tags.iter().map(|t| t.len() + 24).sum();
        let watermark = self.watermark.offsets().len() * 16;
        u32::try_from(self.payload.len() + tags + watermark + 128).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_fresh_then_stale_then_dead() {
        let policy = CachePolicy { ttl: Duration::from_secs(10), grace: Duration::from_secs(5) };
        let entry = Entry::new(Arc::from(&b"x"[..]), policy, vec![], Watermark::default(), Duration::ZERO, 1_000_000);
        assert_eq!(entry.freshness(1_009_999), Freshness::Fresh);
        assert_eq!(entry.freshness(1_010_000), Freshness::Stale);
        assert_eq!(entry.freshness(1_015_000), Freshness::Dead);
        assert_eq!(entry.remaining_life(1_014_000), Duration::from_secs(1));
        assert_eq!(entry.age(999_000), Duration::ZERO);
    }
}
