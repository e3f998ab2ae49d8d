//! One time bucket of one series: a latency histogram, counters and exemplar request ids. Buckets
//! are recycled in place when their ring slot moves on to a newer bucket, keeping histogram and
//! id-string allocations, so steady-state recording allocates nothing.

use hdrhistogram::Histogram;

use crate::records::RequestStatus;

/// Latency histogram: microseconds, 3 significant digits, growing to the largest value recorded
/// (values are clamped to `max_latency` first). `u32` counts halve the memory of `u64`; a count
/// is per distinct value and saturates rather than wraps, and totals are kept as `u64`.
pub(crate) type LatencyHistogram = Histogram<u32>;

/// An empty auto-resizing latency histogram.
pub(crate) fn new_histogram() -> LatencyHistogram {
    // `new(3)` only fails for more than 5 significant digits; 3 is a constant.
    #[allow(clippy::expect_used)]
    LatencyHistogram::new(3).expect("3 significant digits is within hdrhistogram's 0..=5")
}

/// Adds `source` into `target`.
pub(crate) fn merge_histogram(target: &mut LatencyHistogram, source: &LatencyHistogram) {
    // `add` fails only when `target` cannot grow to `source`'s range: every histogram here
    // auto-resizes, and values are clamped to at most 24h (8.64e10 µs), whose counts array
    // (~27k entries) any usize indexes.
    #[allow(clippy::expect_used)]
    target.add(source).expect("auto-resizing histograms of clamped values always merge");
}

/// The parts of an event a bucket records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample<'a> {
    pub id: &'a str,
    pub latency_us: u64,
    pub status: RequestStatus,
    pub cache_hit: bool,
}

/// Event counters of a bucket or window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BucketCounts {
    pub events: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub cache_hits: u64,
}

impl BucketCounts {
    pub(crate) fn add(&mut self, other: &BucketCounts) {
        self.events += other.events;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.cache_hits += other.cache_hits;
    }
}

/// Index a never-used slot carries: older than any real bucket.
pub(crate) const UNUSED: i64 = i64::MIN;

/// One bucket: everything recorded for events whose time falls in
/// `[index * bucket_ms, (index + 1) * bucket_ms)`.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub index: i64,
    /// Allocated on first use, so idle slots of quiet series cost nothing.
    pub histogram: Option<LatencyHistogram>,
    pub counts: BucketCounts,
    pub slowest: SlowestRequests,
    pub failed: RecentFailures,
}

impl Bucket {
    pub(crate) fn new(exemplars: usize) -> Self {
        Bucket {
            index: UNUSED,
            histogram: None,
            counts: BucketCounts::default(),
            slowest: SlowestRequests::new(exemplars),
            failed: RecentFailures::new(exemplars),
        }
    }

    /// Empties the bucket for `index`, keeping its allocations.
    pub(crate) fn recycle(&mut self, index: i64) {
        self.index = index;
        if let Some(histogram) = &mut self.histogram {
            histogram.reset();
        }
        self.counts = BucketCounts::default();
        self.slowest.clear();
        self.failed.clear();
    }

    pub(crate) fn record(&mut self, sample: &Sample<'_>) {
        let histogram = self.histogram.get_or_insert_with(new_histogram);
        if histogram.record(sample.latency_us).is_err() {
            // Only a failed resize gets here (see merge_histogram); keep the event, clamped.
            histogram.saturating_record(sample.latency_us);
        }
        self.counts.events += 1;
        match sample.status {
            RequestStatus::Ok => {}
            RequestStatus::Error => self.counts.errors += 1,
            RequestStatus::Timeout => self.counts.timeouts += 1,
        }
        if sample.cache_hit {
            self.counts.cache_hits += 1;
        }
        self.slowest.offer(sample.latency_us, sample.id);
        if sample.status != RequestStatus::Ok {
            self.failed.push(sample.status, sample.id);
        }
    }
}

/// An exemplar id with what it was ranked by.
#[derive(Debug, Clone)]
pub(crate) struct Exemplar<T> {
    pub rank: T,
    pub id: String,
}

/// The `capacity` slowest requests of a bucket. Slots keep their strings across resets and are
/// overwritten in place, so only an id longer than any before it allocates.
#[derive(Debug)]
pub(crate) struct SlowestRequests {
    capacity: usize,
    entries: Vec<Exemplar<u64>>,
    used: usize,
    /// Latency of the fastest kept entry: most events are rejected by this one comparison.
    floor_us: u64,
}

impl SlowestRequests {
    fn new(capacity: usize) -> Self {
        SlowestRequests { capacity, entries: Vec::new(), used: 0, floor_us: 0 }
    }

    fn clear(&mut self) {
        self.used = 0;
        self.floor_us = 0;
    }

    fn offer(&mut self, latency_us: u64, id: &str) {
        if self.used < self.capacity {
            if let Some(entry) = self.entries.get_mut(self.used) {
                entry.rank = latency_us;
                overwrite(&mut entry.id, id);
            } else {
                self.entries.push(Exemplar { rank: latency_us, id: id.to_string() });
            }
            self.used += 1;
        } else if latency_us > self.floor_us {
            let kept = &mut self.entries[..self.used];
            if let Some(fastest) = kept.iter_mut().min_by_key(|entry| entry.rank) {
                fastest.rank = latency_us;
                overwrite(&mut fastest.id, id);
            }
        } else {
            return;
        }
        if self.used == self.capacity {
            self.floor_us = self.entries[..self.used].iter().map(|entry| entry.rank).min().unwrap_or(0);
        }
    }

    pub(crate) fn kept(&self) -> &[Exemplar<u64>] {
        &self.entries[..self.used]
    }
}

/// The `capacity` latest failed (error or timeout) requests of a bucket, oldest overwritten first.
#[derive(Debug)]
pub(crate) struct RecentFailures {
    capacity: usize,
    entries: Vec<Exemplar<RequestStatus>>,
    used: usize,
    next: usize,
}

impl RecentFailures {
    fn new(capacity: usize) -> Self {
        RecentFailures { capacity, entries: Vec::new(), used: 0, next: 0 }
    }

    fn clear(&mut self) {
        self.used = 0;
        self.next = 0;
    }

    fn push(&mut self, status: RequestStatus, id: &str) {
        if self.capacity == 0 {
            return;
        }
        if let Some(entry) = self.entries.get_mut(self.next) {
            entry.rank = status;
            overwrite(&mut entry.id, id);
        } else {
            self.entries.push(Exemplar { rank: status, id: id.to_string() });
        }
        self.next = (self.next + 1) % self.capacity;
        self.used = (self.used + 1).min(self.capacity);
    }

    /// Kept failures, newest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &Exemplar<RequestStatus>> {
        let len = self.used;
        let capacity = self.capacity.max(1);
        (1..=len).map(move |back| &self.entries[(self.next + capacity - back) % capacity])
    }
}

/// Replaces a string's contents, reusing its buffer.
fn overwrite(target: &mut String, value: &str) {
    target.clear();
    target.push_str(value);
}
