//! Invalidation versions. An invalidation's version is its position in the invalidation topic:
//! partition and offset. Offsets only compare within a partition, so a computation's
//! watermark is the highest offset applied *per partition* when it started, and a tag
//! invalidated at `(p, o)` makes stale exactly the entries whose watermark has less than `o`
//! for `p`. Applying an order twice, or an older one late, changes nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Offset meaning "nothing applied": Kafka offsets start at 0.
pub const NO_OFFSET: i64 = -1;

/// Where an invalidation sits in its topic: the version the cache orders invalidations by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvalidationVersion {
    /// Partition of the invalidation topic.
    pub partition: i32,
    /// Offset of the invalidation event in that partition.
    pub offset: i64,
}

impl InvalidationVersion {
    /// Version `offset` of `partition`.
    pub fn new(partition: i32, offset: i64) -> InvalidationVersion {
        InvalidationVersion { partition, offset }
    }
}

/// The highest offset applied per partition: what a computation ran under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    /// `(partition, offset)`, sorted by partition, one per partition.
    offsets: Vec<(i32, i64)>,
}

impl Watermark {
    /// A watermark from `(partition, offset)` pairs (the highest offset per partition wins).
    pub fn from_offsets(pairs: impl IntoIterator<Item = (i32, i64)>) -> Watermark {
        let mut map: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, offset) in pairs {
            let slot = map.entry(partition).or_insert(offset);
            *slot = (*slot).max(offset);
        }
        Watermark { offsets: map.into_iter().collect() }
    }

    /// The offset applied for `partition` ([`NO_OFFSET`] if none).
    pub fn offset(&self, partition: i32) -> i64 {
        match self.offsets.binary_search_by_key(&partition, |(p, _)| *p) {
            Ok(i) => self.offsets[i].1,
            Err(_) => NO_OFFSET,
        }
    }

    /// Whether an invalidation at `version` came after this watermark.
    pub fn is_before(&self, version: InvalidationVersion) -> bool {
        self.offset(version.partition) < version.offset
    }

    /// The `(partition, offset)` pairs, sorted by partition.
    pub fn offsets(&self) -> &[(i32, i64)] {
        &self.offsets
    }
}

/// `p:o,p:o` (empty for no invalidation): the form the Redis scripts parse.
impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (partition, offset)) in self.offsets.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{partition}:{offset}")?;
        }
        Ok(())
    }
}

/// Per-tag invalidation versions and the overall watermark of this process.
#[derive(Debug)]
pub struct TagVersions {
    /// Per tag: the highest offset per partition it was invalidated at, and when recorded.
    by_tag: DashMap<String, (Vec<(i32, i64)>, Instant)>,
    applied: Mutex<Watermark>,
    retention: Duration,
}

impl TagVersions {
    /// Empty; tag versions are forgotten `retention` after they were recorded.
    pub fn new(retention: Duration) -> TagVersions {
        TagVersions { by_tag: DashMap::new(), applied: Mutex::new(Watermark::default()), retention }
    }

    fn applied(&self) -> MutexGuard<'_, Watermark> {
        // A plain value, valid whatever a panicking holder left.
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The watermark a computation starting now runs under.
    pub fn watermark(&self) -> Watermark {
        self.applied().clone()
    }

    /// Records that `tags` were invalidated at `version`; monotonic per tag and partition.
    pub fn record(&self, tags: &[String], version: InvalidationVersion) {
        let now = Instant::now();
        for tag in tags {
            let mut slot = self.by_tag.entry(tag.clone()).or_insert_with(|| (Vec::new(), now));
            let (offsets, recorded) = &mut *slot;
            match offsets.iter_mut().find(|(p, _)| *p == version.partition) {
                Some((_, offset)) if *offset >= version.offset => continue,
                Some((_, offset)) => *offset = version.offset,
                None => offsets.push((version.partition, version.offset)),
            }
            *recorded = now;
        }
        // Tag versions first: a computation that snapshots the new watermark must never find
        // a tag version above it.
        self.raise_watermark(version);
        if self.by_tag.len() > 10_000 {
            self.by_tag.retain(|_, (_, recorded)| now.duration_since(*recorded) < self.retention);
        }
    }

    /// Raises the watermark for one partition (e.g. to what Redis recorded while this process
    /// was down).
    pub fn raise_watermark(&self, version: InvalidationVersion) {
        let mut applied = self.applied();
        if applied.offset(version.partition) < version.offset {
            let pairs = applied.offsets.iter().copied().chain([(version.partition, version.offset)]);
            *applied = Watermark::from_offsets(pairs.collect::<Vec<_>>());
        }
    }

    /// Whether any of `tags` was invalidated after `watermark`: a value computed under it with
    /// these tags is stale.
    pub fn is_stale(&self, tags: &[String], watermark: &Watermark) -> bool {
        tags.iter().any(|tag| {
            self.by_tag
                .get(tag)
                .is_some_and(|slot| slot.0.iter().any(|(p, o)| watermark.is_before(InvalidationVersion::new(*p, *o))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_write_computed_before_an_invalidation_is_stale() {
        let versions = TagVersions::new(Duration::from_secs(60));
        versions.record(&tags(&["symbol:MSFT"]), InvalidationVersion::new(0, 5));
        let snapshot = versions.watermark();
        assert!(!versions.is_stale(&tags(&["symbol:AAPL"]), &snapshot));
        versions.record(&tags(&["symbol:AAPL"]), InvalidationVersion::new(0, 7));
        assert!(versions.is_stale(&tags(&["symbol:AAPL", "tenant:acme"]), &snapshot), "late write must be refused");
        assert!(!versions.is_stale(&tags(&["tenant:acme"]), &snapshot), "other tags are unaffected");
        assert!(
            !versions.is_stale(&tags(&["symbol:AAPL"]), &versions.watermark()),
            "a computation started after it is fine"
        );
    }

    #[test]
    fn offsets_compare_only_within_their_partition() {
        let versions = TagVersions::new(Duration::from_secs(60));
        versions.record(&tags(&["other"]), InvalidationVersion::new(1, 500));
        let snapshot = versions.watermark();
        // A much lower offset in another partition is still newer than the snapshot.
        versions.record(&tags(&["symbol:AAPL"]), InvalidationVersion::new(3, 20));
        assert!(versions.is_stale(&tags(&["symbol:AAPL"]), &snapshot));
        assert_eq!(versions.watermark().to_string(), "1:500,3:20");
        assert_eq!(snapshot.offset(3), NO_OFFSET);
    }

    #[test]
    fn versions_are_monotonic_and_idempotent() {
        let versions = TagVersions::new(Duration::from_secs(60));
        versions.record(&tags(&["t"]), InvalidationVersion::new(2, 10));
        let snapshot = versions.watermark();
        versions.record(&tags(&["t"]), InvalidationVersion::new(2, 3));
        versions.record(&tags(&["t"]), InvalidationVersion::new(2, 10));
        assert_eq!(versions.watermark(), snapshot);
        assert!(!versions.is_stale(&tags(&["t"]), &snapshot));
        assert_eq!(Watermark::from_offsets([(2, 3), (1, 4), (2, 9)]).to_string(), "1:4,2:9");
    }
}
