//! [`RecentIds`]: the request ids seen lately, so a redelivered `RequestCompleted` counts once.
//!
//! At least once means a request handled again (after a crash, a lost session or a rewind of
//! its partition) completes twice, later and slower the second time; counting both would put
//! the fault's redeliveries into every rate and percentile twice. Two generations of 64-bit
//! hashes: ids stay at least one window and at most two, in bounded memory, with no per-id
//! timestamps and no scan to expire them.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Most ids one generation holds before it is retired early (16 bytes each, with the table's
/// slack about 32 MB per generation): a flood of unique ids shortens the memory, never grows it.
const MAX_PER_GENERATION: usize = 2_000_000;

/// Request ids (with their service and kind) seen within the last one or two windows.
#[derive(Debug, Default)]
pub(crate) struct RecentIds {
    current: HashSet<u64>,
    previous: HashSet<u64>,
    /// Processing time the current generation started.
    started_ms: i64,
    window_ms: i64,
}

impl RecentIds {
    /// Remembers ids for `window_ms` (0: remembers nothing, every id is new).
    pub(crate) fn new(window_ms: i64) -> Self {
        RecentIds { window_ms, ..RecentIds::default() }
    }

    /// Whether this is the first sighting of `id` of `service` and `kind` within the window;
    /// remembers it. An empty id is never a duplicate (nothing to tell two events apart by).
    pub(crate) fn first_sighting(&mut self, service: &str, kind: &str, id: &str, now_ms: i64) -> bool {
        if self.window_ms <= 0 || id.is_empty() {
            return true;
        }
        if now_ms.saturating_sub(self.started_ms) >= self.window_ms || self.current.len() >= MAX_PER_GENERATION {
            // Swapped and cleared, not replaced: the tables keep their capacity, so steady
            // traffic allocates nothing once both generations have grown to it.
            std::mem::swap(&mut self.previous, &mut self.current);
            self.current.clear();
            self.started_ms = now_ms;
        }
        // SipHash with fixed keys: the same id hashes the same way in every process and run.
        let mut hasher = DefaultHasher::new();
        (service, kind, id).hash(&mut hasher);
        let key = hasher.finish();
        !self.previous.contains(&key) && self.current.insert(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_seen_within_the_window_is_not_a_first_sighting() {
        let mut ids = RecentIds::new(60_000);
        assert!(ids.first_sighting("serve", "k", "r-1", 0));
        assert!(!ids.first_sighting("serve", "k", "r-1", 59_000));
        // Rotated once at 60 s: still remembered in the previous generation.
        assert!(!ids.first_sighting("serve", "k", "r-1", 61_000));
    }

    #[test]
    fn an_id_is_forgotten_after_two_windows() {
        let mut ids = RecentIds::new(60_000);
        assert!(ids.first_sighting("serve", "k", "r-1", 0));
        assert!(ids.first_sighting("serve", "k", "other", 60_000));
        assert!(ids.first_sighting("serve", "k", "r-1", 120_000));
    }

    #[test]
    fn the_same_id_of_another_service_or_kind_is_another_request() {
        let mut ids = RecentIds::new(60_000);
        assert!(ids.first_sighting("serve", "k", "r-1", 0));
        assert!(ids.first_sighting("gateway", "k", "r-1", 0));
        assert!(ids.first_sighting("serve", "other", "r-1", 0));
    }

    #[test]
    fn a_zero_window_or_an_empty_id_never_deduplicates() {
        let mut off = RecentIds::new(0);
        assert!(off.first_sighting("serve", "k", "r-1", 0));
        assert!(off.first_sighting("serve", "k", "r-1", 0));
        let mut ids = RecentIds::new(60_000);
        assert!(ids.first_sighting("serve", "k", "", 0));
        assert!(ids.first_sighting("serve", "k", "", 0));
    }
}
