//! One series (service + kind): its bucket rings and SLO counters, the SLIs of its windows, and
//! the index that finds a series by `&str` without allocating.

use std::collections::HashMap;

use super::bucket::{LatencyHistogram, Sample};
use super::config::{Sli, SliWindow};
use super::ring::{Span, WindowRing};
use super::slo_ring::SloCounterRing;

const MINUTE_MS: i64 = 60_000;
/// Bucket length of the ring behind the 6h window.
const BLOCK_MS: i64 = 10 * MINUTE_MS;

/// What makes an event bad for one SLO.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BadWhen {
    /// Status error or timeout.
    Failed,
    /// Latency above this many milliseconds (raw, before clamping).
    SlowerThanMs(f64),
}

/// Counters of one SLO for one series.
#[derive(Debug)]
pub(crate) struct SeriesSlo {
    pub slo: usize,
    pub bad_when: BadWhen,
    pub ring: SloCounterRing,
}

/// An alert definition that applies to a series, with the fingerprint it has for it.
#[derive(Debug, Clone)]
pub(crate) struct SeriesAlert {
    pub definition: usize,
    pub fingerprint: String,
}

/// Everything kept for one series.
#[derive(Debug)]
pub(crate) struct Series {
    pub service: Box<str>,
    pub kind: Box<str>,
    /// One-minute buckets for the 1m, 5m and 1h windows.
    pub minutes: WindowRing,
    /// Ten-minute buckets for the 6h window.
    pub blocks: WindowRing,
    pub slos: Vec<SeriesSlo>,
    pub alerts: Vec<SeriesAlert>,
    /// Newest event time recorded, for evicting series that went quiet.
    pub last_event_ms: i64,
    /// Events of the minute `volume_minute` and of the minute before it: how busy the series
    /// is now, when a new series needs its place.
    volume_minute: i64,
    volume_now: u32,
    volume_before: u32,
}

/// Latency percentiles of a window, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyPercentiles {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// The SLIs of one series over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSli {
    /// Which window.
    pub window: SliWindow,
    /// Start of its first bucket (event time, ms).
    pub start_ms: i64,
    /// Its end: the stream time (newest event time, ms).
    pub end_ms: i64,
    /// Whether the monitor has observed the stream since before `start_ms` (false right after a
    /// restart, until the window has filled).
    pub covered: bool,
    /// Events counted.
    pub events: u64,
    /// Events with status error.
    pub errors: u64,
    /// Events with status timeout.
    pub timeouts: u64,
    /// Events served from a cache tier.
    pub cache_hits: u64,
    /// Events per second over the part of the window the monitor has observed.
    pub throughput_per_s: f64,
    /// Percentiles from the merged histograms; `None` without events or when not computed.
    pub latency: Option<LatencyPercentiles>,
}

impl WindowSli {
    /// The value of `sli`, in its unit; `None` where the window holds no events (a rate of
    /// nothing is undefined), except throughput, which is then 0.
    pub fn value(&self, sli: Sli) -> Option<f64> {
        let share = |count: u64| (self.events > 0).then(|| count as f64 / self.events as f64);
        match sli {
            Sli::Throughput => Some(self.throughput_per_s),
            Sli::ErrorRate => share(self.errors),
            Sli::TimeoutRate => share(self.timeouts),
            Sli::CacheHitRatio => share(self.cache_hits),
            Sli::LatencyP50 => self.latency.map(|l| l.p50_ms),
            Sli::LatencyP95 => self.latency.map(|l| l.p95_ms),
            Sli::LatencyP99 => self.latency.map(|l| l.p99_ms),
        }
    }
}

/// Stream-clock readings a window needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamPoint {
    pub now_ms: i64,
    pub watermark_ms: i64,
    pub filled_since_ms: i64,
}

impl Series {
    pub(crate) fn new(service: &str, kind: &str, spread_ms: i64, exemplars: usize) -> Self {
        Series {
            service: service.into(),
            kind: kind.into(),
            minutes: WindowRing::new(MINUTE_MS, &[1, 5, 60], spread_ms, exemplars),
            blocks: WindowRing::new(BLOCK_MS, &[36], spread_ms, exemplars),
            slos: Vec::new(),
            alerts: Vec::new(),
            last_event_ms: i64::MIN,
            volume_minute: i64::MIN,
            volume_now: 0,
            volume_before: 0,
        }
    }

    /// Events in the minute of `now_ms` and the minute before.
    pub(crate) fn recent_volume(&self, now_ms: i64) -> u32 {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if self.volume_minute == minute {
            self.volume_now.saturating_add(self.volume_before)
        } else if self.volume_minute == minute - 1 {
            self.volume_now
        } else {
            0
        }
    }

    fn count_volume(&mut self, at_ms: i64) {
        let minute = at_ms.div_euclid(MINUTE_MS);
        if minute > self.volume_minute {
            self.volume_before = if minute == self.volume_minute.saturating_add(1) { self.volume_now } else { 0 };
            self.volume_now = 0;
            self.volume_minute = minute;
        }
        if minute == self.volume_minute {
            self.volume_now = self.volume_now.saturating_add(1);
        } else if minute == self.volume_minute - 1 {
            self.volume_before = self.volume_before.saturating_add(1);
        }
    }

    /// Records an accepted event; false if a ring refused it (see `WindowRing::record`).
    pub(crate) fn record(&mut self, at_ms: i64, sample: &Sample<'_>, latency_ms: f64) -> bool {
        if !(self.minutes.record(at_ms, sample) && self.blocks.record(at_ms, sample)) {
            return false;
        }
        for slo in &mut self.slos {
            let bad = match slo.bad_when {
                BadWhen::Failed => sample.status != crate::records::RequestStatus::Ok,
                BadWhen::SlowerThanMs(threshold) => latency_ms > threshold,
            };
            slo.ring.record(at_ms, bad);
        }
        self.last_event_ms = self.last_event_ms.max(at_ms);
        self.count_volume(at_ms);
        true
    }

    /// The ring and span of a window at stream point `at`.
    pub(crate) fn span(&self, window: SliWindow, at: StreamPoint) -> (&WindowRing, Span) {
        let buckets = window_buckets(window);
        let ring = if window == SliWindow::SixHours { &self.blocks } else { &self.minutes };
        (ring, ring.span(at.now_ms, at.watermark_ms, buckets))
    }

    /// The SLIs of `window`; percentiles only when `with_latency` (merging histograms is the
    /// expensive part), using `scratch` for the merge.
    pub(crate) fn window_sli(
        &mut self,
        window: SliWindow,
        at: StreamPoint,
        with_latency: bool,
        scratch: &mut LatencyHistogram,
    ) -> WindowSli {
        let buckets = window_buckets(window);
        let ring = if window == SliWindow::SixHours { &mut self.blocks } else { &mut self.minutes };
        let span = ring.span(at.now_ms, at.watermark_ms, buckets);
        let counts = ring.counts(span);
        let start_ms = ring.start_ms(span);
        let observed_ms = (at.now_ms - start_ms.max(at.filled_since_ms)).max(1_000);
        let latency = (with_latency && counts.events > 0).then(|| {
            ring.merge_latency(span, scratch);
            let mut values = scratch.value_at_quantiles([0.5, 0.95, 0.99]).map(|us| us as f64 / 1000.0);
            let mut next = || values.next().unwrap_or(f64::NAN);
            LatencyPercentiles { p50_ms: next(), p95_ms: next(), p99_ms: next() }
        });
        WindowSli {
            window,
            start_ms,
            end_ms: at.now_ms,
            covered: at.filled_since_ms <= start_ms,
            events: counts.events,
            errors: counts.errors,
            timeouts: counts.timeouts,
            cache_hits: counts.cache_hits,
            throughput_per_s: counts.events as f64 * 1000.0 / observed_ms as f64,
            latency,
        }
    }
}

/// Whole buckets a window spans before its current bucket: minutes for 1m, 5m and 1h, ten-minute
/// blocks for 6h.
fn window_buckets(window: SliWindow) -> i64 {
    match window {
        SliWindow::OneMinute => 1,
        SliWindow::FiveMinutes => 5,
        SliWindow::OneHour => 60,
        SliWindow::SixHours => 36,
    }
}

/// Series by service and kind. Nested maps keyed by `Box<str>` are looked up with the event's
/// `&str`s, so finding an existing series allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct SeriesIndex {
    ids: HashMap<Box<str>, HashMap<Box<str>, usize>>,
    pub list: Vec<Series>,
}

impl SeriesIndex {
    pub(crate) fn find(&self, service: &str, kind: &str) -> Option<usize> {
        self.ids.get(service)?.get(kind).copied()
    }

    pub(crate) fn insert(&mut self, series: Series) -> usize {
        let id = self.list.len();
        self.ids.entry(series.service.clone()).or_default().insert(series.kind.clone(), id);
        self.list.push(series);
        id
    }

    /// Forgets a series; the last series takes its id.
    pub(crate) fn remove(&mut self, id: usize) {
        let removed = self.list.swap_remove(id);
        if let Some(kinds) = self.ids.get_mut(&removed.service) {
            kinds.remove(&removed.kind);
            if kinds.is_empty() {
                self.ids.remove(&removed.service);
            }
        }
        if let Some(moved) = self.list.get(id)
            && let Some(slot) = self.ids.get_mut(&moved.service).and_then(|kinds| kinds.get_mut(&moved.kind))
        {
            *slot = id;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Series of one service.
    pub(crate) fn of_service(&self, service: &str) -> usize {
        self.ids.get(service).map_or(0, HashMap::len)
    }
}
