//! [`SlaMonitor`]: the state of every series and alert, fed one event at a time.

use super::book::AlertBook;
use super::bucket::{LatencyHistogram, Sample, new_histogram};
use super::checkpoint::RestoredCounters;
use super::config::{SlaConfig, SliWindow, SloIndicator};
use super::event::{RequestSample, query_sample, query_series_kind};
use super::recent_ids::RecentIds;
use super::rules::{AlertDefinition, Check, QUERY_KIND_PREFIX, selected, source_of};
use super::series::{BadWhen, Series, SeriesAlert, SeriesIndex, SeriesSlo, StreamPoint};
use super::signal::{SignalBoard, SignalDefinition};
use super::slo_ring::SloCounterRing;
use super::stream::{DropCounts, DropReason, Observation, StreamClock};
use super::validate::SlaConfigError;
use crate::records::{AutoscaleDecision, QueryEvent, RequestCompleted, SlowQueryFinding, WorkerStatus};

pub use super::series::{LatencyPercentiles, WindowSli};

/// One SLO's burn rate for one series over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnRateReading {
    /// The SLO's name.
    pub slo: String,
    pub service: String,
    pub kind: String,
    /// `5m`, `1h`, `3d`, ...
    pub window: String,
    /// Bad fraction divided by the error budget (1 - objective).
    pub burn_rate: f64,
}

/// The SLA monitor's core. Single-threaded by design: one consumer loop owns it (behind a
/// mutex if the worker is shared), calls [`SlaMonitor::observe`] per event and
/// [`SlaMonitor::evaluate`] every second. All times are passed in, so it is deterministic.
#[derive(Debug)]
pub struct SlaMonitor {
    pub(crate) config: SlaConfig,
    pub(crate) definitions: Vec<AlertDefinition>,
    pub(crate) clock: StreamClock,
    pub(crate) series: SeriesIndex,
    pub(crate) book: AlertBook,
    pub(crate) signals: SignalBoard,
    pub(crate) signal_definitions: Vec<SignalDefinition>,
    /// SLO counters of a previous monitor, waiting for their series' first event here.
    pub(crate) restored: RestoredCounters,
    drops: DropCounts,
    accepted: u64,
    /// Reused for every window merge, so evaluating allocates no histograms.
    pub(crate) scratch: LatencyHistogram,
    /// Counts evaluations, to find firing alerts an evaluation did not judge.
    pub(crate) generation: u64,
    pub(crate) renotify_ms: i64,
    /// Idle time after which a series' every window is empty and it can be forgotten.
    pub(crate) retention_ms: i64,
    max_latency_us: u64,
    /// Request ids seen lately: a redelivered `RequestCompleted` counts once.
    recent_ids: RecentIds,
}

impl SlaMonitor {
    /// A monitor with no alert history.
    pub fn new(config: SlaConfig) -> Result<SlaMonitor, SlaConfigError> {
        SlaMonitor::with_alert_book(config, AlertBook::default())
    }

    /// A monitor that continues from `book` (see [`AlertBook::restore`]).
    pub fn with_alert_book(config: SlaConfig, book: AlertBook) -> Result<SlaMonitor, SlaConfigError> {
        config.validate()?;
        let definitions = AlertDefinition::compile_all(&config)?;
        let signal_definitions = SignalDefinition::compile_all(&config)?;
        let lateness_ms = millis(config.allowed_lateness);
        let longest_slo_ms = config
            .slos
            .iter()
            .flat_map(|slo| slo.alerts.iter().map(|pair| millis(pair.long_window)))
            .max()
            .unwrap_or(0);
        // The 6h window spans up to 37 ten-minute buckets; an SLO window one minute more than its length.
        let retention_ms = (37 * 600_000_i64).max(longest_slo_ms + 60_000) + lateness_ms;
        Ok(SlaMonitor {
            clock: StreamClock::new(lateness_ms, millis(config.max_clock_skew), retention_ms),
            renotify_ms: millis(config.renotify_interval),
            max_latency_us: u64::try_from(config.max_latency.as_micros()).unwrap_or(u64::MAX),
            recent_ids: RecentIds::new(millis(config.duplicate_window)),
            retention_ms,
            definitions,
            series: SeriesIndex::default(),
            book,
            signals: SignalBoard::default(),
            signal_definitions,
            restored: RestoredCounters::default(),
            drops: DropCounts::default(),
            accepted: 0,
            scratch: new_histogram(),
            generation: 0,
            config,
        })
    }

    /// Counts one decoded event; `now_ms` is the processing clock (ms since the epoch). The
    /// same request id of the same service and kind again within `duplicate_window` is a
    /// redelivery: dropped as `duplicate`.
    pub fn observe(&mut self, event: &RequestCompleted, now_ms: i64) -> Observation {
        if !self.recent_ids.first_sighting(&event.service, &event.kind, &event.id, now_ms) {
            return self.count(Err(DropReason::Duplicate));
        }
        self.observe_sample(RequestSample::from(event), now_ms)
    }

    /// Counts one event given as borrowed fields. Allocation-free unless the event starts a new
    /// series, starts a histogram in a bucket, or enters a bucket's exemplars with an id longer
    /// than the one it replaces.
    pub fn observe_sample(&mut self, request: RequestSample<'_>, now_ms: i64) -> Observation {
        // A request kind in the database namespace would mix into (or pose as) a DB series.
        if request.kind.starts_with(QUERY_KIND_PREFIX) {
            return self.count(Err(DropReason::ReservedKind));
        }
        let admitted = self.admit(request, now_ms);
        self.count(admitted)
    }

    /// Counts one database statement in its application's `db:<database>` series.
    pub fn observe_query(&mut self, statement: &QueryEvent, now_ms: i64) -> Observation {
        if statement.calls != 1 {
            return self.count(Err(DropReason::AggregateEvent));
        }
        let kind = query_series_kind(statement);
        let admitted = self.admit(query_sample(statement, &kind), now_ms);
        self.count(admitted)
    }

    /// Takes a worker's status report (consumer lag, memory, CPU, descriptors). Implausible
    /// numbers, a time beyond the allowed clock skew or one instance too many drop it.
    pub fn observe_status(&mut self, status: WorkerStatus, now_ms: i64) -> Observation {
        let names = [Some(&status.service), Some(&status.instance), status.consumer_group.as_ref()];
        if names.into_iter().flatten().any(|name| name.len() > self.config.max_label_bytes) {
            return self.count(Err(DropReason::LabelTooLong));
        }
        let (plausible, at_ms) = (status.is_plausible(), status.occurred_at);
        self.admit_report(plausible, at_ms, now_ms, |board| board.report_status(status, now_ms))
    }

    /// Takes an autoscaler decision about a consumer group, on the same terms.
    pub fn observe_decision(&mut self, decision: AutoscaleDecision, now_ms: i64) -> Observation {
        if decision.consumer_group.len() > self.config.max_label_bytes {
            return self.count(Err(DropReason::LabelTooLong));
        }
        let plausible = decision.total_lag >= 0
            && decision.lag_rate_per_s.is_finite()
            && 0 <= decision.min_instances
            && decision.min_instances <= decision.max_instances;
        let at_ms = decision.decided_at;
        self.admit_report(plausible, at_ms, now_ms, |board| board.report_decision(decision, now_ms))
    }

    /// Takes a query analyzer finding: the database's count of slow statements in its window.
    pub fn observe_finding(&mut self, finding: SlowQueryFinding, now_ms: i64) -> Observation {
        if finding.database.len() > self.config.max_label_bytes {
            return self.count(Err(DropReason::LabelTooLong));
        }
        let plausible = finding.window_findings >= 1 && finding.window_start <= finding.window_end;
        let at_ms = finding.detected_at;
        self.admit_report(plausible, at_ms, now_ms, |board| board.report_finding(&finding, now_ms))
    }

    /// The checks every signal report passes before `record` puts it on the board (which says
    /// false when the board is full).
    fn admit_report(
        &mut self,
        plausible: bool,
        at_ms: i64,
        now_ms: i64,
        record: impl FnOnce(&mut SignalBoard) -> bool,
    ) -> Observation {
        let admitted = if !plausible {
            Err(DropReason::ImplausibleReport)
        } else if at_ms > now_ms.saturating_add(millis(self.config.max_clock_skew)) {
            Err(DropReason::FutureTimestamp)
        } else if !record(&mut self.signals) {
            Err(DropReason::SeriesLimit)
        } else {
            Ok(())
        };
        self.count(admitted)
    }

    fn count(&mut self, admitted: Result<(), DropReason>) -> Observation {
        match admitted {
            Ok(()) => {
                self.accepted += 1;
                Observation::Accepted
            }
            Err(reason) => {
                self.drops.add(reason);
                Observation::Dropped(reason)
            }
        }
    }

    fn admit(&mut self, request: RequestSample<'_>, now_ms: i64) -> Result<(), DropReason> {
        let latency_ms = request.latency_ms;
        if !latency_ms.is_finite() {
            return Err(DropReason::NonFiniteLatency);
        }
        if latency_ms < 0.0 {
            return Err(DropReason::NegativeLatency);
        }
        let limit = self.config.max_label_bytes;
        if request.service.len() > limit || request.kind.len() > limit {
            return Err(DropReason::LabelTooLong);
        }
        let existing = self.series.find(request.service, request.kind);
        let mut replaced = None;
        if existing.is_none() {
            if self.series.of_service(request.service) >= self.config.max_series_per_service {
                return Err(DropReason::SeriesLimit);
            }
            if self.series.len() >= self.config.max_series {
                replaced = Some(self.near_idle_series(now_ms).ok_or(DropReason::SeriesLimit)?);
            }
        }
        // Only after every other check: a dropped event must not move the stream clock.
        self.clock.admit(request.occurred_at_ms, now_ms)?;
        let id = match existing {
            Some(id) => id,
            None => {
                if let Some(victim) = replaced {
                    self.series.remove(victim);
                }
                let mut series = self.new_series(request.service, request.kind);
                self.seed_from_checkpoints(&mut series);
                self.series.insert(series)
            }
        };
        // Latency is finite and non-negative here; `as` saturates, then the clamp bounds it.
        let latency_us = ((latency_ms * 1000.0).round() as u64).min(self.max_latency_us);
        let sample =
            Sample { id: request.id, latency_us, status: request.status, cache_hit: request.cache_layer.is_hit() };
        if self.series.list[id].record(request.occurred_at_ms, now_ms, &sample, latency_ms) {
            Ok(())
        } else {
            Err(DropReason::TooLate)
        }
    }

    /// The series a new one may replace in a full table: the least busy of those with at most
    /// one event in the last two minutes and no active alert (the oldest of equals). Junk that
    /// creates a series per event churns among itself; a series with steady traffic, or one
    /// that is alerting, is never pushed out.
    fn near_idle_series(&self, now_ms: i64) -> Option<usize> {
        let stream_ms = self.clock.now().unwrap_or(now_ms);
        self.series
            .list
            .iter()
            .enumerate()
            .filter(|(_, series)| series.recent_volume(stream_ms) <= 1)
            .filter(|(_, series)| !series.alerts.iter().any(|alert| self.book.is_active(&alert.fingerprint)))
            .min_by_key(|(_, series)| (series.recent_volume(stream_ms), series.last_event_ms))
            .map(|(id, _)| id)
    }

    fn new_series(&self, service: &str, kind: &str) -> Series {
        let spread_ms = self.clock.spread_ms();
        let mut series = Series::new(service, kind, spread_ms, self.config.exemplars);
        for (slo_index, slo) in self.config.slos.iter().enumerate() {
            if !(slo.source == source_of(kind) && selected(&slo.services, service) && selected(&slo.kinds, kind)) {
                continue;
            }
            let longest_minutes = slo.alerts.iter().map(|pair| millis(pair.long_window) / 60_000).max().unwrap_or(1);
            let bad_when = match (slo.sli, slo.latency_threshold_ms) {
                (SloIndicator::Latency, Some(threshold)) => BadWhen::SlowerThanMs(threshold),
                // Validation requires a threshold for latency SLOs.
                _ => BadWhen::Failed,
            };
            series.slos.push(SeriesSlo {
                slo: slo_index,
                bad_when,
                ring: SloCounterRing::new(longest_minutes, spread_ms),
            });
        }
        for (index, definition) in self.definitions.iter().enumerate() {
            if definition.applies_to(service, kind) {
                series
                    .alerts
                    .push(SeriesAlert { definition: index, fingerprint: definition.fingerprint_for(service, kind) });
            }
        }
        series
    }

    /// The SLIs of one series over `window` as of the stream time, percentiles included; `None`
    /// if the series is unknown or no event was accepted yet.
    pub fn sli(&mut self, service: &str, kind: &str, window: SliWindow) -> Option<WindowSli> {
        let at = self.stream_point()?;
        let id = self.series.find(service, kind)?;
        Some(self.series.list[id].window_sli(window, at, true, &mut self.scratch))
    }

    /// The burn rate of every SLO of every series over each of its alert windows, as of the
    /// stream time (bad fraction over the error budget; 1.0 spends the budget exactly).
    pub fn burn_rates(&self) -> Vec<BurnRateReading> {
        let Some(now_ms) = self.clock.now() else { return Vec::new() };
        let mut readings = Vec::new();
        for series in &self.series.list {
            for series_slo in &series.slos {
                let Some(slo) = self.config.slos.get(series_slo.slo) else { continue };
                let budget = 1.0 - slo.objective;
                let mut windows: Vec<i64> = slo
                    .alerts
                    .iter()
                    .flat_map(|pair| [pair.long_window, pair.short_window])
                    .map(|window| (window.as_secs() / 60) as i64)
                    .collect();
                windows.sort_unstable();
                windows.dedup();
                for minutes in windows {
                    let tally = series_slo.ring.tally(now_ms, minutes);
                    let bad_fraction = if tally.events == 0 { 0.0 } else { tally.bad as f64 / tally.events as f64 };
                    readings.push(BurnRateReading {
                        slo: slo.name.clone(),
                        service: series.service.to_string(),
                        kind: series.kind.to_string(),
                        window: super::rules::duration_label(minutes),
                        burn_rate: bad_fraction / budget,
                    });
                }
            }
        }
        readings
    }

    /// Every series currently tracked, as `(service, kind)`.
    pub fn series_keys(&self) -> Vec<(String, String)> {
        self.series.list.iter().map(|s| (s.service.to_string(), s.kind.to_string())).collect()
    }

    pub(crate) fn stream_point(&self) -> Option<StreamPoint> {
        Some(StreamPoint {
            now_ms: self.clock.now()?,
            watermark_ms: self.clock.watermark()?,
            filled_since_ms: self.clock.filled_since(),
        })
    }

    /// Which definitions of a series need which windows, and whether with percentiles.
    pub(crate) fn windows_needed(&self, series: &Series) -> [Option<bool>; SliWindow::ALL.len()] {
        let mut needed = [None; SliWindow::ALL.len()];
        for alert in &series.alerts {
            if let Check::Threshold(rule) = &self.definitions[alert.definition].check {
                for window in std::iter::once(rule.window).chain(rule.short_window) {
                    let slot: &mut Option<bool> = &mut needed[window.position()];
                    *slot = Some(slot.unwrap_or(false) || rule.sli.is_latency());
                }
            }
        }
        needed
    }

    /// Events dropped, by reason.
    pub fn drops(&self) -> &DropCounts {
        &self.drops
    }

    /// Events counted.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Newest accepted event time (the end of every window), if any.
    pub fn stream_time_ms(&self) -> Option<i64> {
        self.clock.now()
    }

    /// Events older than this are dropped as `too_late`.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.clock.watermark()
    }

    /// Series tracked.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Pending and firing alerts.
    pub fn alert_book(&self) -> &AlertBook {
        &self.book
    }

    /// The configuration in force.
    pub fn config(&self) -> &SlaConfig {
        &self.config
    }
}

pub(crate) use crate::clock::duration_millis as millis;
