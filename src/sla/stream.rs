//! Event time: the stream clock (newest event time, watermark, since when windows are filled)
//! and the checks that keep absurd or hopelessly late events out of every window.

use std::fmt;

/// Why an event was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Older than the watermark (newest event time minus `allowed_lateness`): its minute has
    /// been sealed.
    TooLate,
    /// Latency below zero.
    NegativeLatency,
    /// Latency NaN or infinite.
    NonFiniteLatency,
    /// Event time more than `max_clock_skew` ahead of the processing clock.
    FutureTimestamp,
    /// A new series while `max_series` are already tracked.
    SeriesLimit,
    /// A request event whose kind starts with `db:`, the prefix of database series.
    ReservedKind,
    /// A worker status or autoscaler decision with numbers no process can have (negative
    /// counts, zero limits, min above max).
    ImplausibleReport,
    /// A service, kind or instance name longer than `max_label_bytes`.
    LabelTooLong,
    /// A query event standing for many runs (a `pg_stat_statements` collector's interval):
    /// the query analyzer's input; SLIs count single statements, and one event counted as one
    /// statement would skew every rate.
    AggregateEvent,
    /// A request id of the same service and kind seen within `duplicate_window`: a redelivery
    /// (the request handled again after a crash, a lost session or a rewind) counts once, as
    /// the client took the first answer.
    Duplicate,
}

impl DropReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DropReason; 10] = [
        DropReason::TooLate,
        DropReason::NegativeLatency,
        DropReason::NonFiniteLatency,
        DropReason::FutureTimestamp,
        DropReason::SeriesLimit,
        DropReason::ReservedKind,
        DropReason::ImplausibleReport,
        DropReason::LabelTooLong,
        DropReason::AggregateEvent,
        DropReason::Duplicate,
    ];

    /// Stable label for metrics and logs, e.g. `too_late`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooLate => "too_late",
            DropReason::NegativeLatency => "negative_latency",
            DropReason::NonFiniteLatency => "non_finite_latency",
            DropReason::FutureTimestamp => "future_timestamp",
            DropReason::SeriesLimit => "series_limit",
            DropReason::ReservedKind => "reserved_kind",
            DropReason::ImplausibleReport => "implausible_report",
            DropReason::LabelTooLong => "label_too_long",
            DropReason::AggregateEvent => "aggregate_event",
            DropReason::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`crate::sla::SlaMonitor::observe`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Counted in its series' buckets.
    Accepted,
    /// Not counted, for this reason (also added to [`DropCounts`]).
    Dropped(DropReason),
}

/// Events dropped since start, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounts {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounts {
    /// Drops for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }

    /// Drops for every reason, in [`DropReason::ALL`] order (zeros included, so a metrics
    /// exporter can publish every label).
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|reason| (*reason, self.get(*reason)))
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn add(&mut self, reason: DropReason) {
        self.counts[reason as usize] += 1;
    }
}

/// The monitor's view of event time.
#[derive(Debug, Clone)]
pub(crate) struct StreamClock {
    lateness_ms: i64,
    skew_ms: i64,
    /// Newest accepted event time, capped at the processing clock: the end of every window.
    newest_ms: Option<i64>,
    /// Oldest accepted event time since the stream (re)started: windows reaching further back
    /// are not fully observed ("covered") yet, e.g. right after a restart.
    filled_since_ms: i64,
    /// Longest window anything is kept for; a jump forward by more than this restarts coverage.
    retention_ms: i64,
    /// Processing time of the last accepted event: how long the stream has been quiet.
    last_admitted_at_ms: i64,
}

/// How long the stream must be quiet (no event accepted, processing time) before event time
/// follows the processing clock, and how far behind it then trails. Long enough that a consumer
/// catching up or a rebalance pause does not count as quiet, short beside every window.
pub(crate) const QUIET_AFTER_MS: i64 = 5_000;

impl StreamClock {
    pub(crate) fn new(lateness_ms: i64, skew_ms: i64, retention_ms: i64) -> Self {
        StreamClock {
            lateness_ms,
            skew_ms,
            newest_ms: None,
            filled_since_ms: i64::MAX,
            retention_ms,
            last_admitted_at_ms: i64::MIN,
        }
    }

    /// Checks an event's time against the watermark and the processing clock, and advances the
    /// clock when it is accepted. Latency checks come first, in the monitor.
    ///
    /// The stream clock never runs ahead of the processing clock: an event stamped up to
    /// `max_clock_skew` in the future is counted in its own (future) bucket, but moves the
    /// clock only to `now_ms`. Otherwise one producer whose clock runs a few minutes fast would
    /// push the watermark past every other producer's events and drop them all as too late.
    pub(crate) fn admit(&mut self, occurred_at_ms: i64, now_ms: i64) -> Result<(), DropReason> {
        if occurred_at_ms > now_ms.saturating_add(self.skew_ms) {
            return Err(DropReason::FutureTimestamp);
        }
        // Older than anything a window keeps: useless, and a time like i64::MIN as the first
        // event would otherwise become the stream time every later event is judged against.
        if occurred_at_ms < now_ms.saturating_sub(self.retention_ms.saturating_add(self.lateness_ms)) {
            return Err(DropReason::TooLate);
        }
        let advance_to = occurred_at_ms.min(now_ms);
        match self.newest_ms {
            Some(newest) if occurred_at_ms < newest.saturating_sub(self.lateness_ms) => {
                return Err(DropReason::TooLate);
            }
            Some(newest) if advance_to > newest => {
                // A stray ancient first event must not make days of windows look observed.
                if advance_to.saturating_sub(newest) > self.retention_ms {
                    self.filled_since_ms = occurred_at_ms;
                }
                self.newest_ms = Some(advance_to);
            }
            Some(_) => {}
            None => self.newest_ms = Some(advance_to),
        }
        self.filled_since_ms = self.filled_since_ms.min(occurred_at_ms);
        self.last_admitted_at_ms = now_ms;
        Ok(())
    }

    /// Lets event time follow the processing clock while the stream is quiet, so a window
    /// slides, a pending alert's `for` runs out and a firing one resolves even when no further
    /// event arrives (the last burst of a breach, a service that stops sending while the others
    /// are quiet too). Event time then trails the processing clock by [`QUIET_AFTER_MS`]: an
    /// event arriving later is still within the allowed lateness unless it is older than that
    /// plus the lateness, as it would be in a busy stream.
    pub(crate) fn follow_processing_clock(&mut self, now_ms: i64) {
        let Some(newest) = self.newest_ms else { return };
        let quiet_since = self.last_admitted_at_ms.saturating_add(QUIET_AFTER_MS);
        if now_ms >= quiet_since {
            self.newest_ms = Some(newest.max(now_ms - QUIET_AFTER_MS));
        }
    }

    /// How far accepted event times can lie from the newest: the lateness behind, the skew ahead.
    /// Rings are made this much longer than their windows.
    pub(crate) fn spread_ms(&self) -> i64 {
        self.lateness_ms + self.skew_ms
    }

    /// Newest accepted event time (the end of every window), if any event was accepted.
    pub(crate) fn now(&self) -> Option<i64> {
        self.newest_ms
    }

    /// Events before this are dropped as too late; buckets ending at or before it are sealed.
    pub(crate) fn watermark(&self) -> Option<i64> {
        self.newest_ms.map(|newest| newest.saturating_sub(self.lateness_ms))
    }

    /// Oldest accepted event time: a window starting at or after it is fully observed.
    pub(crate) fn filled_since(&self) -> i64 {
        self.filled_since_ms
    }
}
