//! Which keys are hot: Space-Saving over exponentially decayed counts, in bounded memory.
//!
//! Decay is *forward*: a request at time t adds `2^((t - landmark) / half_life)` to its key's
//! weight instead of every weight shrinking as time passes, so nothing is rescanned per event
//! and the order of keys by weight is the order by decayed count. When the increments grow
//! large the landmark moves and every weight is divided once. When the table is full, a new key
//! takes the place of the lightest one and inherits its weight (Space-Saving), so a key that
//! is really hot is never missed, at the price of overestimating newcomers.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::cache::CacheKey;

/// Increments above this move the landmark (far below f64's range, so sums never overflow).
const RESCALE_ABOVE: f64 = 1e100;

/// One tracked key.
#[derive(Debug, Clone)]
struct Tracked {
    /// Forward-decayed weight.
    weight: f64,
    /// Its place in [`HotKeys::by_weight`].
    slot: (u64, u64),
    /// The analysis kind (for its ttl).
    kind: String,
    /// When its cached value was last computed, if known (ms since the epoch).
    computed_at_ms: Option<i64>,
    /// When it was first counted (ms since the epoch).
    first_seen_ms: i64,
    /// Whether a refresh of it is running.
    refreshing: bool,
}

/// A key due for a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueKey {
    /// The key.
    pub key: CacheKey,
    /// Its analysis kind.
    pub kind: String,
}

/// The hottest keys of a stream of requests, at most `capacity` of them.
#[derive(Debug)]
pub struct HotKeys {
    capacity: usize,
    /// ln 2 / half-life, per millisecond.
    decay_per_ms: f64,
    landmark_ms: i64,
    next_seq: u64,
    entries: HashMap<CacheKey, Tracked>,
    /// Keys ordered by weight (positive f64 bits order like the numbers), ties by arrival.
    by_weight: BTreeMap<(u64, u64), CacheKey>,
}

impl HotKeys {
    /// Tracks at most `capacity` keys whose counts halve every `half_life`.
    pub fn new(capacity: usize, half_life: Duration, now_ms: i64) -> HotKeys {
        let half_life_ms = (half_life.as_secs_f64() * 1000.0).max(1.0);
        HotKeys {
            capacity: capacity.max(1),
            decay_per_ms: std::f64::consts::LN_2 / half_life_ms,
            landmark_ms: now_ms,
            next_seq: 0,
            entries: HashMap::new(),
            by_weight: BTreeMap::new(),
        }
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counts one request for `key` at `at_ms`; `computed` says its value was computed then
    /// (the answer came from no cache layer).
    pub fn observe(&mut self, key: &CacheKey, kind: &str, at_ms: i64, computed: bool) {
        self.observe_many(key, kind, at_ms, 1, computed.then_some(at_ms));
    }

    /// Counts `requests` requests for `key` at `at_ms` (an instance's counts of a window, taken
    /// at its end); `computed_at_ms` is when its value was last computed for one of them, if it
    /// was. Zero or negative counts change nothing, and neither do requests so old that their
    /// decayed count is nothing (a crafted date must not evict a real key).
    pub fn observe_many(&mut self, key: &CacheKey, kind: &str, at_ms: i64, requests: i64, computed_at_ms: Option<i64>) {
        if requests <= 0 {
            return;
        }
        let mut increment = self.increment(at_ms);
        if increment > RESCALE_ABOVE {
            self.rescale(at_ms);
            increment = self.increment(at_ms);
        }
        // An i64 count as a float: exact far beyond any window's count.
        let added = increment * requests as f64;
        if added == 0.0 {
            return;
        }
        let weight = match self.entries.get(key) {
            Some(tracked) => tracked.weight + added,
            None if self.entries.len() < self.capacity => added,
            None => {
                // Space-Saving: the newcomer replaces the lightest key and inherits its count.
                let lightest = self.by_weight.pop_first().and_then(|(_, evicted)| self.entries.remove(&evicted));
                lightest.map_or(0.0, |t| t.weight) + added
            }
        };
        let slot = (weight.to_bits(), self.next_seq);
        self.next_seq += 1;
        let tracked = self.entries.entry(key.clone()).or_insert_with(|| Tracked {
            weight,
            slot,
            kind: kind.to_owned(),
            computed_at_ms: None,
            first_seen_ms: at_ms,
            refreshing: false,
        });
        self.by_weight.remove(&tracked.slot);
        tracked.weight = weight;
        tracked.slot = slot;
        if let Some(computed) = computed_at_ms {
            tracked.computed_at_ms = Some(tracked.computed_at_ms.map_or(computed, |t| t.max(computed)));
        }
        self.by_weight.insert(slot, key.clone());
    }

    /// The decayed request count of `key` at `now_ms` (0 if untracked).
    pub fn score(&self, key: &CacheKey, now_ms: i64) -> f64 {
        self.entries.get(key).map_or(0.0, |t| t.weight / self.increment(now_ms))
    }

    /// Hot keys (decayed count at least `min_score`, the `max_hot` hottest at most) whose value
    /// enters the last `refresh_ahead` fraction of its ttl by `now_ms`; hottest first. Keys being
    /// refreshed are skipped. A key only ever seen answered from a cache has an unknown age: it
    /// is taken as half a ttl old when first seen (refreshing such keys at once would pile the
    /// warmer's work onto a cold start, when every instance is computing).
    pub fn due(
        &self,
        now_ms: i64,
        min_score: f64,
        max_hot: usize,
        refresh_ahead: f64,
        ttl_of: impl Fn(&str) -> Duration,
    ) -> Vec<DueKey> {
        let now_weight = self.increment(now_ms);
        let mut due = Vec::new();
        for key in self.by_weight.values().rev().take(max_hot) {
            let Some(tracked) = self.entries.get(key) else { continue };
            if tracked.weight / now_weight < min_score {
                break;
            }
            if tracked.refreshing {
                continue;
            }
            let ttl_ms = ttl_of(&tracked.kind).as_secs_f64() * 1000.0;
            let computed = tracked.computed_at_ms.map_or(tracked.first_seen_ms as f64 - ttl_ms / 2.0, |t| t as f64);
            if now_ms as f64 >= computed + ttl_ms * (1.0 - refresh_ahead) {
                due.push(DueKey { key: key.clone(), kind: tracked.kind.clone() });
            }
        }
        due
    }

    /// The hot keys at `now_ms` (decayed count at least `min_score`), `limit` at most, hottest
    /// first, each with its decayed count.
    pub fn hottest(&self, now_ms: i64, min_score: f64, limit: usize) -> Vec<(CacheKey, f64)> {
        let now_weight = self.increment(now_ms);
        self.by_weight
            .values()
            .rev()
            .filter_map(|key| self.entries.get(key).map(|t| (key.clone(), t.weight / now_weight)))
            .take_while(|(_, score)| *score >= min_score)
            .take(limit)
            .collect()
    }

    /// How many keys are hot at `now_ms`.
    pub fn hot_count(&self, now_ms: i64, min_score: f64) -> usize {
        let threshold = min_score * self.increment(now_ms);
        self.by_weight
            .values()
            .rev()
            .take_while(|key| self.entries.get(*key).is_some_and(|t| t.weight >= threshold))
            .count()
    }

    /// Marks a refresh of `key` as started.
    pub fn start_refresh(&mut self, key: &CacheKey) {
        if let Some(tracked) = self.entries.get_mut(key) {
            tracked.refreshing = true;
        }
    }

    /// Marks a refresh of `key` as finished at `at_ms`. A failed one counts as done too, so a
    /// key that cannot be refreshed is tried again one ttl later, not in a loop.
    pub fn finish_refresh(&mut self, key: &CacheKey, at_ms: i64) {
        if let Some(tracked) = self.entries.get_mut(key) {
            tracked.refreshing = false;
            tracked.computed_at_ms = Some(tracked.computed_at_ms.map_or(at_ms, |t| t.max(at_ms)));
        }
    }

    fn increment(&self, at_ms: i64) -> f64 {
        // Saturating: a crafted date of i64::MIN must give a zero weight, not an overflow.
        (self.decay_per_ms * at_ms.saturating_sub(self.landmark_ms) as f64).exp()
    }

    /// Moves the landmark to `now_ms`, dividing every weight by the same factor (the order
    /// does not change).
    fn rescale(&mut self, now_ms: i64) {
        let factor = self.increment(now_ms);
        self.landmark_ms = now_ms;
        self.by_weight.clear();
        for (key, tracked) in &mut self.entries {
            tracked.weight /= factor;
            tracked.slot = (tracked.weight.to_bits(), tracked.slot.1);
            self.by_weight.insert(tracked.slot, key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(n: u32) -> CacheKey {
        CacheKey::for_request("market.volatility", &json!({"symbol": format!("S{n}")}), "acme", &[])
    }

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn the_heavy_hitters_survive_a_stream_of_one_off_keys() {
        let mut hot = HotKeys::new(50, Duration::from_secs(60), 0);
        for round in 0..2_000u32 {
            let at = i64::from(round);
            hot.observe(&key(1), "market.volatility", at, false);
            if round % 2 == 0 {
                hot.observe(&key(2), "market.volatility", at, false);
            }
            hot.observe(&key(1_000 + round), "market.volatility", at, false);
        }
        assert_eq!(hot.len(), 50, "memory stays bounded");
        // Never seen computed: taken as half a ttl old when first seen, so due 3 s in.
        assert!(hot.due(2_000, 100.0, 10, 0.2, |_| TTL).is_empty());
        let due = hot.due(3_000, 100.0, 10, 0.2, |_| TTL);
        assert_eq!(due.iter().map(|d| d.key.clone()).collect::<Vec<_>>(), vec![key(1), key(2)]);
        assert!(hot.score(&key(1), 2_000) > hot.score(&key(2), 2_000));
    }

    #[test]
    fn a_window_of_counts_weighs_like_as_many_single_requests() {
        let mut one_by_one = HotKeys::new(10, Duration::from_secs(60), 0);
        for _ in 0..5 {
            one_by_one.observe(&key(1), "k", 1_000, false);
        }
        let mut counted = HotKeys::new(10, Duration::from_secs(60), 0);
        counted.observe_many(&key(1), "k", 1_000, 5, None);
        counted.observe_many(&key(2), "k", 1_000, 0, Some(1_000));
        assert!((one_by_one.score(&key(1), 1_000) - counted.score(&key(1), 1_000)).abs() < 1e-9);
        assert_eq!(counted.len(), 1, "a count of zero tracks nothing");
    }

    #[test]
    fn a_window_s_last_computation_dates_the_key_s_value() {
        let ttl = |_: &str| Duration::from_secs(10);
        let mut hot = HotKeys::new(10, Duration::from_secs(60), 0);
        // Counted at the window's end (5 s), computed at 1 s: due from 9 s (the last 20 % of
        // a 10 s ttl), not from 13 s.
        hot.observe_many(&key(1), "k", 5_000, 10, Some(1_000));
        assert!(hot.due(8_900, 1.0, 10, 0.2, ttl).is_empty());
        assert_eq!(hot.due(9_000, 1.0, 10, 0.2, ttl).len(), 1);
    }

    #[test]
    fn counts_decay_with_the_half_life() {
        let mut hot = HotKeys::new(10, Duration::from_secs(10), 0);
        for _ in 0..8 {
            hot.observe(&key(1), "k", 0, false);
        }
        assert!((hot.score(&key(1), 0) - 8.0).abs() < 1e-9);
        assert!((hot.score(&key(1), 10_000) - 4.0).abs() < 1e-9);
        assert_eq!(hot.hot_count(10_000, 3.0), 1);
        assert_eq!(hot.hot_count(30_000, 3.0), 0, "a key nobody asks for cools off");
    }

    #[test]
    fn a_key_is_due_in_the_last_part_of_its_ttl_and_not_while_refreshing() {
        let mut hot = HotKeys::new(10, Duration::from_secs(60), 0);
        for _ in 0..5 {
            hot.observe(&key(1), "k", 1_000, true);
        }
        assert!(hot.due(8_000, 1.0, 10, 0.2, |_| TTL).is_empty(), "fresh for 8 of 10 s");
        assert_eq!(hot.due(9_000, 1.0, 10, 0.2, |_| TTL).len(), 1, "in the last fifth");
        hot.start_refresh(&key(1));
        assert!(hot.due(9_000, 1.0, 10, 0.2, |_| TTL).is_empty());
        hot.finish_refresh(&key(1), 9_100);
        assert!(hot.due(16_000, 1.0, 10, 0.2, |_| TTL).is_empty());
        assert_eq!(hot.due(17_100, 1.0, 10, 0.2, |_| TTL).len(), 1);
    }

    #[test]
    fn the_hottest_keys_come_hottest_first_down_to_the_minimum_score() {
        let mut hot = HotKeys::new(10, Duration::from_secs(60), 0);
        for (n, requests) in [(1, 3), (2, 9), (3, 1), (4, 5)] {
            for _ in 0..requests {
                hot.observe(&key(n), "k", 0, false);
            }
        }
        let hottest = hot.hottest(0, 2.0, 10);
        assert_eq!(hottest.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), vec![key(2), key(4), key(1)]);
        assert!((hottest[0].1 - 9.0).abs() < 1e-9);
        assert_eq!(hot.hottest(0, 2.0, 2).len(), 2, "at most the limit");
    }

    #[test]
    fn requests_dated_i64_min_count_nothing_and_later_ones_still_count() {
        let mut hot = HotKeys::new(2, Duration::from_secs(60), 1_000);
        hot.observe_many(&key(1), "k", i64::MIN, i64::MAX, Some(i64::MIN));
        hot.observe(&key(2), "k", i64::MIN, true);
        assert!(hot.is_empty(), "nothing decayed to zero is tracked");
        hot.observe_many(&key(3), "k", 1_000, 5, Some(1_000));
        assert!((hot.score(&key(3), 1_000) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_count_of_i64_max_keeps_every_score_finite() {
        let mut hot = HotKeys::new(4, Duration::from_millis(1), 0);
        for at in [0, 400, 800] {
            hot.observe_many(&key(1), "k", at, i64::MAX, None);
            hot.observe_many(&key(2), "k", at, 1, None);
        }
        let hottest = hot.hottest(800, 0.5, 10);
        assert_eq!(hottest.len(), 2);
        assert!(hottest.iter().all(|(_, score)| score.is_finite()), "{hottest:?}");
        assert_eq!(hottest[0].0, key(1));
    }

    #[test]
    fn weights_are_rescaled_before_they_overflow() {
        let mut hot = HotKeys::new(4, Duration::from_millis(1), 0);
        hot.observe(&key(1), "k", 0, false);
        hot.observe(&key(2), "k", 400, false);
        hot.observe(&key(2), "k", 400, false);
        assert!((hot.score(&key(2), 400) - 2.0).abs() < 1e-9);
        assert!(hot.score(&key(1), 400) < 1e-100);
        assert_eq!(hot.hot_count(400, 1.5), 1, "the order survives the rescale");
    }
}
