//! Invalidations Redis did not take while it was down, replayed once it is back, so entries
//! and tag versions there catch up without waiting for the next order of each tag.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::watermark::InvalidationVersion;

/// Most tags remembered; beyond, the oldest knowledge is Redis's own expiry of entries.
const MAX_TAGS: usize = 100_000;

/// Highest unsent offset per tag and partition.
#[derive(Debug, Default)]
pub struct UnsentInvalidations {
    by_tag: Mutex<HashMap<(String, i32), i64>>,
    any: AtomicBool,
}

impl UnsentInvalidations {
    fn tags(&self) -> MutexGuard<'_, HashMap<(String, i32), i64>> {
        // A map of plain values: usable whatever a panicking holder left.
        self.by_tag.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers that `tags` at `version` did not reach Redis.
    pub fn remember(&self, tags: &[String], version: InvalidationVersion) {
        let mut by_tag = self.tags();
        for tag in tags {
            let slot_key = (tag.clone(), version.partition);
            if by_tag.len() >= MAX_TAGS && !by_tag.contains_key(&slot_key) {
                tracing::warn!(max = MAX_TAGS, "too many invalidations waiting for Redis; dropping the rest");
                break;
            }
            let slot = by_tag.entry(slot_key).or_insert(version.offset);
            *slot = (*slot).max(version.offset);
        }
        self.any.store(!by_tag.is_empty(), Ordering::Release);
    }

    /// Whether anything waits (cheap: no lock).
    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// Takes everything waiting, as tag lists per version.
    pub fn take(&self) -> BTreeMap<InvalidationVersion, Vec<String>> {
        let mut by_tag = self.tags();
        self.any.store(false, Ordering::Release);
        let mut by_version: BTreeMap<InvalidationVersion, Vec<String>> = BTreeMap::new();
        for ((tag, partition), offset) in by_tag.drain() {
            by_version.entry(InvalidationVersion::new(partition, offset)).or_default().push(tag);
        }
        by_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_offset_per_tag_and_partition_is_kept_and_grouped() {
        let unsent = UnsentInvalidations::default();
        assert!(unsent.is_empty());
        unsent.remember(&["a".into(), "b".into()], InvalidationVersion::new(0, 5));
        unsent.remember(&["a".into()], InvalidationVersion::new(0, 7));
        unsent.remember(&["b".into()], InvalidationVersion::new(0, 3));
        unsent.remember(&["b".into()], InvalidationVersion::new(1, 2));
        assert!(!unsent.is_empty());
        let taken = unsent.take();
        assert_eq!(taken.len(), 3);
        assert_eq!(taken[&InvalidationVersion::new(0, 5)], vec!["b".to_string()]);
        assert_eq!(taken[&InvalidationVersion::new(0, 7)], vec!["a".to_string()]);
        assert_eq!(taken[&InvalidationVersion::new(1, 2)], vec!["b".to_string()]);
        assert!(unsent.is_empty() && unsent.take().is_empty());
    }
}
