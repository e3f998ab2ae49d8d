//! One series (service + kind): its bucket rings and SLO counters, the SLIs of its windows, and
//! the index that finds a series by `&str` without allocating.

use std::collections::HashMap;

use super::bucket::{LatencyHistogram, Sample};
use super::config::{Sli, SliWindow};
use super::ring::{Span, WindowRing};
use super::slo_ring::SloCounterRing;

const MINUTE_MS: i64 = 60_000;
/// Bucket length of the ring behind the 30s and 1m windows: a 1m window spans 60 to 65 s, not
/// the 60 to 120 s of whole minutes, so a recovered series leaves it within about a minute.
const TICK_MS: i64 = 5_000;
/// Whole five-second buckets the longest short window (1m) spans.
const TICK_WINDOW_BUCKETS: i64 = 12;
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
    /// Five-second buckets for the 30s and 1m windows. Events are recorded at their time but
    /// no later than the processing clock (the stream clock's own cap), and it holds only the
    /// buckets those windows reach, so its length does not grow with the allowed spread of
    /// event times as the other rings' does.
    pub ticks: WindowRing,
    /// One-minute buckets for the 5m and 1h windows.
    pub minutes: WindowRing,
    /// Ten-minute buckets for the 6h window.
    pub blocks: WindowRing,
    pub slos: Vec<SeriesSlo>,
    pub alerts: Vec<SeriesAlert>,
    /// Newest event time recorded, for evicting series that went quiet.
    pub last_event_ms: i64,
    /// The first minute (since the epoch) whose SLO counters changed since the last checkpoint.
    pub slo_dirty_from: Option<i64>,
    /// Since when a monitor before this one observed the series, if it was restored from its
    /// checkpoints: its burn-rate windows are complete from then, not from this start.
    pub observed_since_ms: Option<i64>,
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

/// The one-sided z of the confidence a breach is judged with (99 %): a window's SLI breaches
/// only when the bound of its interval on the near side of the threshold does. A handful of
/// errors among a few hundred events, or the p95 of a small sample, cannot fire an alert by
/// chance; with thousands of events the bound is the value.
pub(crate) const CONFIDENCE_Z: f64 = 2.326;

/// Lower and upper confidence bounds of the percentiles (the values at the quantiles
/// `q -+ z * sqrt(q (1 - q) / n)`, order statistics' distribution-free interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyBounds {
    pub low: LatencyPercentiles,
    pub high: LatencyPercentiles,
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
    /// Their confidence bounds (see [`CONFIDENCE_Z`]), computed with them.
    pub latency_bounds: Option<LatencyBounds>,
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

    /// The `(low, high)` bounds of the value of `sli` at [`CONFIDENCE_Z`]: Wilson's interval for
    /// the ratios, the order-statistic interval for percentiles, the value itself for throughput.
    pub fn bounds(&self, sli: Sli) -> Option<(f64, f64)> {
        let wilson = |count: u64| (self.events > 0).then(|| wilson_interval(count, self.events, CONFIDENCE_Z));
        let percentile =
            |pick: fn(&LatencyPercentiles) -> f64| self.latency_bounds.map(|b| (pick(&b.low), pick(&b.high)));
        match sli {
            Sli::Throughput => Some((self.throughput_per_s, self.throughput_per_s)),
            Sli::ErrorRate => wilson(self.errors),
            Sli::TimeoutRate => wilson(self.timeouts),
            Sli::CacheHitRatio => wilson(self.cache_hits),
            Sli::LatencyP50 => percentile(|l| l.p50_ms),
            Sli::LatencyP95 => percentile(|l| l.p95_ms),
            Sli::LatencyP99 => percentile(|l| l.p99_ms),
        }
    }
}

/// Wilson's score interval for `count` successes in `n` trials.
pub(crate) fn wilson_interval(count: u64, n: u64, z: f64) -> (f64, f64) {
    let (n, p) = (n as f64, count as f64 / n as f64);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

impl StreamPoint {
    /// Since when `series`' windows are observed: this monitor's coverage, or the restored one
    /// of the monitor before it when that reaches further back.
    pub(crate) fn observed_since(&self, series: &Series) -> i64 {
        series.observed_since_ms.map_or(self.filled_since_ms, |restored| restored.min(self.filled_since_ms))
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
            // The current bucket, the windows' whole buckets and one spare: no recorded bucket
            // is newer than the stream clock's, so the newest slot is never one a window needs.
            ticks: WindowRing::new(TICK_MS, &[6, TICK_WINDOW_BUCKETS], 0, exemplars),
            minutes: WindowRing::new(MINUTE_MS, &[5, 60], spread_ms, exemplars),
            blocks: WindowRing::new(BLOCK_MS, &[36], spread_ms, exemplars),
            slos: Vec::new(),
            alerts: Vec::new(),
            last_event_ms: i64::MIN,
            slo_dirty_from: None,
            observed_since_ms: None,
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

    /// Records an accepted event at `at_ms`, processed at `now_ms`; false if a ring refused it
    /// (see `WindowRing::record`).
    pub(crate) fn record(&mut self, at_ms: i64, now_ms: i64, sample: &Sample<'_>, latency_ms: f64) -> bool {
        if !(self.minutes.record(at_ms, sample) && self.blocks.record(at_ms, sample)) {
            return false;
        }
        // An event from a clock running ahead counts now, as the stream clock takes it. One
        // older than the ticks ring reaches is refused there only: it is older than the 1m
        // window already, and for good, since windows end at the stream clock, which only
        // moves forward.
        let _recent = self.ticks.record(at_ms.min(now_ms), sample);
        for slo in &mut self.slos {
            let bad = match slo.bad_when {
                BadWhen::Failed => sample.status != crate::records::RequestStatus::Ok,
                BadWhen::SlowerThanMs(threshold) => latency_ms > threshold,
            };
            slo.ring.record(at_ms, bad);
        }
        if !self.slos.is_empty() {
            let minute = at_ms.div_euclid(MINUTE_MS);
            self.slo_dirty_from = Some(self.slo_dirty_from.map_or(minute, |from| from.min(minute)));
        }
        self.last_event_ms = self.last_event_ms.max(at_ms);
        self.count_volume(at_ms);
        true
    }

    /// The ring and span of a window at stream point `at`.
    pub(crate) fn span(&self, window: SliWindow, at: StreamPoint) -> (&WindowRing, Span) {
        let buckets = window_buckets(window);
        let ring = match window {
            SliWindow::ThirtySeconds | SliWindow::OneMinute => &self.ticks,
            SliWindow::FiveMinutes | SliWindow::OneHour => &self.minutes,
            SliWindow::SixHours => &self.blocks,
        };
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
        let ring = match window {
            SliWindow::ThirtySeconds | SliWindow::OneMinute => &mut self.ticks,
            SliWindow::FiveMinutes | SliWindow::OneHour => &mut self.minutes,
            SliWindow::SixHours => &mut self.blocks,
        };
        let span = ring.span(at.now_ms, at.watermark_ms, buckets);
        let counts = ring.counts(span);
        let start_ms = ring.start_ms(span);
        let observed_ms = (at.now_ms - start_ms.max(at.filled_since_ms)).max(1_000);
        let percentiles = (with_latency && counts.events > 0).then(|| {
            ring.merge_latency(span, scratch);
            percentiles_with_bounds(scratch, counts.events)
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
            latency: percentiles.map(|(value, _)| value),
            latency_bounds: percentiles.map(|(_, bounds)| bounds),
        }
    }
}

/// p50, p95 and p99 of `histogram` (of `n` events), with their confidence bounds, in one pass.
fn percentiles_with_bounds(histogram: &LatencyHistogram, n: u64) -> (LatencyPercentiles, LatencyBounds) {
    let half = |q: f64| CONFIDENCE_Z * (q * (1.0 - q) / n as f64).sqrt();
    // Nine quantiles: for each percentile its low bound, itself, its high bound.
    let mut quantiles = [(0.0, 0); 9];
    for (i, q) in [0.5, 0.95, 0.99].into_iter().enumerate() {
        for (j, bound) in [(q - half(q)).max(0.0), q, (q + half(q)).min(1.0)].into_iter().enumerate() {
            quantiles[3 * i + j] = (bound, 3 * i + j);
        }
    }
    // One pass needs them ascending; bounds of neighbours overlap on small samples.
    quantiles.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut values = [f64::NAN; 9];
    for ((_, slot), us) in quantiles.iter().zip(histogram.value_at_quantiles(quantiles.iter().map(|(q, _)| *q))) {
        values[*slot] = us as f64 / 1000.0;
    }
    let at = |offset: usize| LatencyPercentiles {
        p50_ms: values[offset],
        p95_ms: values[3 + offset],
        p99_ms: values[6 + offset],
    };
    (at(1), LatencyBounds { low: at(0), high: at(2) })
}

/// Whole buckets a window spans before its current bucket: five seconds for 30s and 1m, minutes
/// for 5m and 1h, ten-minute blocks for 6h.
fn window_buckets(window: SliWindow) -> i64 {
    match window {
        SliWindow::ThirtySeconds => 6,
        SliWindow::OneMinute => TICK_WINDOW_BUCKETS,
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
