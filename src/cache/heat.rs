//! `HeatTally`: how often one serving instance answered each cache key, gathered over a window
//! and written as one [`CacheHeat`] record.
//!
//! The cache warmer used to count one `RequestCompleted` event per answer: at 2,000 answers a
//! second it decoded 2,000 events a second, most of its CPU, on the cores the answers need. An
//! instance already knows its counts; tallying them in memory costs a map lookup per answer,
//! and the warmer reads one record per instance and window, whatever the request rate.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::CacheKey;
use crate::records::{CacheHeat, KeyCount};

/// One key's answers in the window.
#[derive(Debug)]
struct Tally {
    kind: String,
    requests: i64,
    last_computed_at: Option<i64>,
}

/// Full windows kept for the next take at most; past it the oldest is dropped (counted). At
/// 2,000 keys a window that is 16,000 distinct keys per interval and instance.
const MAX_FULL_WINDOWS: usize = 8;

/// One window's counts.
#[derive(Debug, Default)]
struct Window {
    /// When its first answer was counted (ms since the epoch).
    started_ms: i64,
    keys: HashMap<CacheKey, Tally>,
}

/// The window being counted and the full ones waiting for the next take.
#[derive(Debug, Default)]
struct Windows {
    current: Window,
    full: Vec<Window>,
    dropped: u64,
}

/// Per-key answer counts of one instance, at most `max_keys` keys per window: a window that
/// fills up is set aside whole and a new one started, so the next take writes both.
#[derive(Debug)]
pub struct HeatTally {
    max_keys: usize,
    windows: Mutex<Windows>,
}

/// What [`HeatTally::take`] took.
#[derive(Debug, Default)]
pub struct Taken {
    /// One record per window, oldest first.
    pub records: Vec<CacheHeat>,
    /// Full windows dropped since the last take, because more filled up than are kept.
    pub dropped_windows: u64,
}

impl HeatTally {
    /// A tally whose windows hold at most `max_keys` keys (at least one).
    pub fn new(max_keys: usize) -> HeatTally {
        HeatTally { max_keys: max_keys.max(1), windows: Mutex::default() }
    }

    fn windows(&self) -> MutexGuard<'_, Windows> {
        // Plain counters: whatever a panicking holder left is still usable.
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one ok answer of `key` (of analysis `kind`) at `at_ms`; `computed` says its value
    /// was computed for it.
    pub fn count(&self, key: &CacheKey, kind: &str, computed: bool, at_ms: i64) {
        let mut windows = self.windows();
        let window = &mut windows.current;
        if window.keys.is_empty() {
            window.started_ms = at_ms;
        }
        let tally = match window.keys.get_mut(key) {
            Some(tally) => tally,
            None => window.keys.entry(key.clone()).or_insert(Tally {
                kind: kind.to_owned(),
                requests: 0,
                last_computed_at: None,
            }),
        };
        tally.requests += 1;
        if computed {
            tally.last_computed_at = Some(tally.last_computed_at.map_or(at_ms, |t| t.max(at_ms)));
        }
        if window.keys.len() >= self.max_keys {
            let full = std::mem::take(window);
            if windows.full.len() >= MAX_FULL_WINDOWS {
                windows.full.remove(0);
                windows.dropped += 1;
            }
            windows.full.push(full);
        }
    }

    /// Every window's counts since the last take, as written by `instance` of `service` at
    /// `now_ms`, starting a new window.
    pub fn take(&self, service: &str, instance: &str, now_ms: i64) -> Taken {
        let Windows { current, full, dropped } = std::mem::take(&mut *self.windows());
        let records = full
            .into_iter()
            .chain((!current.keys.is_empty()).then_some(current))
            .map(|window| CacheHeat {
                service: service.to_owned(),
                instance: instance.to_owned(),
                window_start: window.started_ms,
                window_end: now_ms.max(window.started_ms),
                keys: window
                    .keys
                    .into_iter()
                    .map(|(key, tally)| KeyCount {
                        cache_key: key.as_str().to_owned(),
                        kind: tally.kind,
                        requests: tally.requests,
                        last_computed_at: tally.last_computed_at,
                    })
                    .collect(),
            })
            .collect();
        Taken { records, dropped_windows: dropped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> CacheKey {
        CacheKey::for_request("market.volatility", &serde_json::json!({"symbol": name}), "acme", &[])
    }

    fn count(tally: &HeatTally, name: &str, computed: bool, at_ms: i64) {
        tally.count(&key(name), "market.volatility", computed, at_ms);
    }

    #[test]
    fn a_window_counts_each_key_once_with_its_answers_and_its_last_computation() {
        let tally = HeatTally::new(10);
        count(&tally, "A", true, 100);
        count(&tally, "A", false, 150);
        count(&tally, "A", true, 130);
        count(&tally, "B", false, 120);

        let taken = tally.take("serve", "i-1", 200);
        let [heat] = &taken.records[..] else { panic!("one window: {taken:?}") };
        assert_eq!((heat.window_start, heat.window_end, heat.instance.as_str()), (100, 200, "i-1"));
        let mut got: Vec<_> = heat
            .keys
            .iter()
            .map(|k| (CacheKey::parse(&k.cache_key).unwrap(), k.kind.as_str(), k.requests, k.last_computed_at))
            .collect();
        got.sort();
        let mut expected =
            vec![(key("A"), "market.volatility", 3, Some(130)), (key("B"), "market.volatility", 1, None)];
        expected.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn taking_the_windows_starts_an_empty_one() {
        let tally = HeatTally::new(10);
        assert!(tally.take("serve", "i", 5).records.is_empty(), "nothing counted, nothing to write");
        count(&tally, "A", false, 1);
        assert_eq!(tally.take("serve", "i", 2).records.len(), 1);
        assert!(tally.take("serve", "i", 3).records.is_empty(), "the take emptied the tally");
    }

    #[test]
    fn a_full_window_is_set_aside_whole_and_the_next_take_writes_it_first() {
        let tally = HeatTally::new(2);
        count(&tally, "A", false, 1);
        count(&tally, "B", false, 2);
        count(&tally, "A", false, 3);

        let taken = tally.take("serve", "i", 4);
        let sizes: Vec<(i64, usize)> = taken.records.iter().map(|r| (r.window_start, r.keys.len())).collect();
        assert_eq!(sizes, [(1, 2), (3, 1)], "the full window, then the one after it");
        assert_eq!(taken.dropped_windows, 0);
    }

    #[test]
    fn past_the_full_windows_kept_the_oldest_is_dropped_and_counted() {
        let tally = HeatTally::new(1);
        for at in 0..(MAX_FULL_WINDOWS as i64 + 3) {
            count(&tally, "A", false, at);
        }
        let taken = tally.take("serve", "i", 100);
        assert_eq!(taken.records.len(), MAX_FULL_WINDOWS);
        assert_eq!(taken.dropped_windows, 3);
        assert_eq!(taken.records[0].window_start, 3, "the newest windows kept");
    }

    #[test]
    fn a_window_never_ends_before_it_starts_on_a_clock_that_stepped_back() {
        let tally = HeatTally::new(2);
        count(&tally, "A", false, 1_000);
        assert_eq!(tally.take("serve", "i", 900).records[0].window_end, 1_000);
    }
}
