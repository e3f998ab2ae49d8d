//! A ring of fixed-length event-time buckets of one series, and windows over it.
//!
//! Slot `index mod len` holds bucket `index`; a slot still holding an older bucket is recycled
//! when a newer one arrives. The ring is longer than its longest window plus the spread of
//! accepted event times (allowed lateness behind the newest, clock skew ahead of it), so a
//! recycled bucket is always outside every window and a late event never meets a newer bucket.
//!
//! Merging a one-hour window's 61 histograms every second would cost more than recording the
//! events, so each window length caches the merge of its *sealed* buckets (those entirely before
//! the watermark, which can no longer change) and only the few open buckets are merged per call.
//! The cache is rebuilt when the window or the watermark moves to another bucket, i.e. about
//! once per bucket length.

use super::bucket::{Bucket, BucketCounts, LatencyHistogram, Sample, merge_histogram, new_histogram};
use crate::records::RequestStatus;

/// Buckets `[start, end]` of one window, and the first bucket not yet sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: i64,
    pub end: i64,
    pub sealed_before: i64,
}

/// Merged histogram of the sealed buckets of one window length.
#[derive(Debug)]
struct SealedMerge {
    window_buckets: i64,
    /// `(start, sealed_before)` the merge was built for.
    built_for: Option<(i64, i64)>,
    histogram: LatencyHistogram,
}

/// Ring of buckets of `bucket_ms` each.
#[derive(Debug)]
pub(crate) struct WindowRing {
    bucket_ms: i64,
    slots: Vec<Bucket>,
    sealed: Vec<SealedMerge>,
}

impl WindowRing {
    /// A ring serving windows of `window_buckets` whole buckets each (plus the current one), for
    /// events within `spread_ms` of the newest (see `StreamClock::spread_ms`).
    pub(crate) fn new(bucket_ms: i64, window_buckets: &[i64], spread_ms: i64, exemplars: usize) -> Self {
        let longest = window_buckets.iter().copied().max().unwrap_or(0);
        // Longest window, the current bucket, the buckets the spread reaches, one spare.
        let len = longest + 1 + ceil_div(spread_ms, bucket_ms) + 1;
        WindowRing {
            bucket_ms,
            slots: (0..len).map(|_| Bucket::new(exemplars)).collect(),
            sealed: window_buckets
                .iter()
                .map(|&window_buckets| SealedMerge { window_buckets, built_for: None, histogram: new_histogram() })
                .collect(),
        }
    }

    /// Records an event at `at_ms`. Returns false, recording nothing, if its slot already holds
    /// a newer bucket: it cannot happen for events the stream clock admitted (the ring outlasts
    /// their spread), and is reported as too late rather than corrupting a newer bucket.
    pub(crate) fn record(&mut self, at_ms: i64, sample: &Sample<'_>) -> bool {
        let index = at_ms.div_euclid(self.bucket_ms);
        let slot = self.slot_of(index);
        let bucket = &mut self.slots[slot];
        if bucket.index < index {
            bucket.recycle(index);
        } else if bucket.index > index {
            return false;
        }
        bucket.record(sample);
        true
    }

    /// The window of `window_buckets` whole buckets before the bucket holding `end_ms`, plus
    /// that bucket; buckets ending at or before `watermark_ms` are sealed.
    pub(crate) fn span(&self, end_ms: i64, watermark_ms: i64, window_buckets: i64) -> Span {
        let end = end_ms.div_euclid(self.bucket_ms);
        Span { start: end - window_buckets, end, sealed_before: watermark_ms.div_euclid(self.bucket_ms) }
    }

    /// Start of the window's first bucket, ms.
    pub(crate) fn start_ms(&self, span: Span) -> i64 {
        span.start * self.bucket_ms
    }

    /// Summed counters of the window.
    pub(crate) fn counts(&self, span: Span) -> BucketCounts {
        let mut total = BucketCounts::default();
        for bucket in self.buckets(span) {
            total.add(&bucket.counts);
        }
        total
    }

    /// Merges the window's histograms into `into` (emptied first).
    pub(crate) fn merge_latency(&mut self, span: Span, into: &mut LatencyHistogram) {
        into.reset();
        let open_from = span.sealed_before.clamp(span.start, span.end + 1);
        let window_buckets = span.end - span.start;
        let len = self.slots.len();
        if let Some(position) = self.sealed.iter().position(|merge| merge.window_buckets == window_buckets) {
            let key = (span.start, open_from);
            let slots = &self.slots;
            let merge = &mut self.sealed[position];
            if merge.built_for != Some(key) {
                merge.histogram.reset();
                for index in span.start..open_from {
                    if let Some(histogram) = histogram_of(slots, len, index) {
                        merge_histogram(&mut merge.histogram, histogram);
                    }
                }
                merge.built_for = Some(key);
            }
            merge_histogram(into, &merge.histogram);
        } else {
            // A window length the ring was not built for: merge every bucket (not on the hot path).
            for index in span.start..open_from {
                if let Some(histogram) = histogram_of(&self.slots, len, index) {
                    merge_histogram(into, histogram);
                }
            }
        }
        for index in open_from..=span.end {
            if let Some(histogram) = histogram_of(&self.slots, len, index) {
                merge_histogram(into, histogram);
            }
        }
    }

    /// Ids of the `limit` slowest requests of the window, slowest first.
    pub(crate) fn slowest(&self, span: Span, limit: usize) -> Vec<String> {
        let mut candidates: Vec<(u64, &str)> = self
            .buckets(span)
            .flat_map(|bucket| bucket.slowest.kept().iter().map(|entry| (entry.rank, entry.id.as_str())))
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        candidates.into_iter().take(limit).map(|(_, id)| id.to_string()).collect()
    }

    /// Ids of up to `limit` of the latest failed requests of the window whose status passes
    /// `wanted`, newest bucket first.
    pub(crate) fn failed(&self, span: Span, limit: usize, wanted: impl Fn(RequestStatus) -> bool) -> Vec<String> {
        let mut buckets: Vec<&Bucket> = self.buckets(span).collect();
        buckets.sort_by_key(|bucket| std::cmp::Reverse(bucket.index));
        buckets
            .into_iter()
            .flat_map(|bucket| bucket.failed.newest_first())
            .filter(|entry| wanted(entry.rank))
            .take(limit)
            .map(|entry| entry.id.clone())
            .collect()
    }

    fn buckets(&self, span: Span) -> impl Iterator<Item = &Bucket> {
        (span.start..=span.end).filter_map(move |index| {
            let bucket = &self.slots[self.slot_of(index)];
            (bucket.index == index).then_some(bucket)
        })
    }

    fn slot_of(&self, index: i64) -> usize {
        // rem_euclid of a positive length is in 0..len, which fits usize.
        index.rem_euclid(self.slots.len() as i64) as usize
    }
}

fn histogram_of(slots: &[Bucket], len: usize, index: i64) -> Option<&LatencyHistogram> {
    let bucket = &slots[index.rem_euclid(len as i64) as usize];
    if bucket.index == index { bucket.histogram.as_ref() } else { None }
}

fn ceil_div(value: i64, divisor: i64) -> i64 {
    (value + divisor - 1).div_euclid(divisor)
}
