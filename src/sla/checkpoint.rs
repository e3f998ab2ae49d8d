//! SLO counters that survive a restart: [`SlaMonitor::checkpoint`] gives the per-minute counters
//! of every hour that changed since the last call, one [`SloCounters`] per series and hour, and
//! [`SlaMonitor::restore_slo_counters`] takes them back in a new monitor.
//!
//! Why checkpoints rather than replaying the stream: the ticket pair of the default SLOs looks
//! three days back, which at 2,000 events a second is half a billion events to re-read before
//! the first evaluation; its counters are 4,320 pairs of numbers per series.
//!
//! A record holds whole hours, so the last one written for a series and hour is its complete
//! count: written again (at-least-once) or compacted, the topic restores the same numbers.
//! Restored counters wait, keyed by series, until a live event of that series arrives here:
//! with several instances each one restores every checkpoint, but only the instance that owns
//! the series' partition ever gets its events, so only that one judges it and no alert is sent
//! twice. Counters of series that never come are dropped once every window has let them go.

use std::collections::{BTreeMap, HashMap};

use super::monitor::SlaMonitor;
use super::series::Series;
use crate::records::{MinuteCount, SloCounters, SloMinuteCounts};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// Checkpoints read back, waiting for their series.
#[derive(Debug, Default)]
pub(crate) struct RestoredCounters {
    by_series: HashMap<(Box<str>, Box<str>), RestoredSeries>,
    /// The stream minute of the last pruning, so it runs once a minute.
    pruned_at_minute: i64,
}

#[derive(Debug, Default)]
struct RestoredSeries {
    observed_since_ms: i64,
    /// The last record of each hour: its SLOs' minute counts.
    hours: BTreeMap<i64, Vec<SloMinuteCounts>>,
}

impl RestoredCounters {
    /// Series waiting for their first live event.
    pub(crate) fn len(&self) -> usize {
        self.by_series.len()
    }
}

impl SlaMonitor {
    /// Takes the checkpoints a previous monitor wrote (in the order they were written per series
    /// and hour; the last of an hour wins). `now_ms` is the processing clock: hours ahead of it
    /// by more than the allowed clock skew are ignored. Returns how many series were restored.
    pub fn restore_slo_counters(&mut self, checkpoints: impl IntoIterator<Item = SloCounters>, now_ms: i64) -> usize {
        let newest_allowed = now_ms.saturating_add(super::monitor::millis(self.config.max_clock_skew));
        for checkpoint in checkpoints {
            if checkpoint.hour_start > newest_allowed || checkpoint.hour_start.rem_euclid(HOUR_MS) != 0 {
                continue;
            }
            let key = (Box::from(checkpoint.service.as_str()), Box::from(checkpoint.kind.as_str()));
            let series = self.restored.by_series.entry(key).or_insert_with(|| RestoredSeries {
                observed_since_ms: checkpoint.observed_since,
                hours: BTreeMap::new(),
            });
            series.observed_since_ms = series.observed_since_ms.min(checkpoint.observed_since);
            series.hours.insert(checkpoint.hour_start, checkpoint.slos);
        }
        self.restored.len()
    }

    /// Gives a series just created the counters restored for it, if any.
    pub(crate) fn seed_from_checkpoints(&mut self, series: &mut Series) {
        if self.restored.by_series.is_empty() {
            return;
        }
        let key = (series.service.clone(), series.kind.clone());
        let Some(restored) = self.restored.by_series.remove(&key) else { return };
        for series_slo in &mut series.slos {
            let Some(slo) = self.config.slos.get(series_slo.slo) else { continue };
            // Ascending hours and minutes: a slot shared by an old and a newer minute keeps the newer.
            for (hour_start, slos) in &restored.hours {
                let first_minute = hour_start.div_euclid(MINUTE_MS);
                for counts in slos.iter().filter(|counts| counts.slo == slo.name) {
                    for minute in counts.minutes.iter().filter(|m| (0..60).contains(&m.minute)) {
                        let clamp = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
                        let _newer_kept = series_slo.ring.restore(
                            first_minute + i64::from(minute.minute),
                            clamp(minute.events),
                            clamp(minute.bad),
                        );
                    }
                }
            }
        }
        series.observed_since_ms = Some(restored.observed_since_ms);
    }

    /// The counters of every series and hour that changed since the last call, to be written
    /// (keyed by [`SloCounters::key`]) for a later monitor to restore; `now_ms` is the
    /// processing clock.
    pub fn checkpoint(&mut self, now_ms: i64) -> Vec<SloCounters> {
        let filled_since_ms = self.clock.filled_since();
        let mut records = Vec::new();
        for series in &mut self.series.list {
            let Some(dirty_from) = series.slo_dirty_from.take() else { continue };
            let observed_since = series.observed_since_ms.map_or(filled_since_ms, |s| s.min(filled_since_ms));
            let last_hour = series.last_event_ms.div_euclid(HOUR_MS);
            for hour in dirty_from.div_euclid(60)..=last_hour {
                let first_minute = hour * 60;
                let slos: Vec<SloMinuteCounts> = series
                    .slos
                    .iter()
                    .filter_map(|series_slo| {
                        let name = &self.config.slos.get(series_slo.slo)?.name;
                        let minutes: Vec<MinuteCount> = series_slo
                            .ring
                            .minutes(first_minute, first_minute + 60)
                            .map(|(minute, events, bad)| MinuteCount {
                                // 0..60 by the range asked for.
                                minute: (minute - first_minute) as i32,
                                events: i64::from(events),
                                bad: i64::from(bad),
                            })
                            .collect();
                        (!minutes.is_empty()).then(|| SloMinuteCounts { slo: name.clone(), minutes })
                    })
                    .collect();
                if slos.is_empty() {
                    continue;
                }
                records.push(SloCounters {
                    service: series.service.to_string(),
                    kind: series.kind.to_string(),
                    hour_start: hour * HOUR_MS,
                    observed_since,
                    slos,
                    written_at: now_ms,
                });
            }
        }
        records
    }

    /// Drops restored counters no window reaches any more (once a stream minute).
    pub(crate) fn prune_restored(&mut self, stream_ms: i64) {
        let minute = stream_ms.div_euclid(MINUTE_MS);
        if self.restored.by_series.is_empty() || minute == self.restored.pruned_at_minute {
            return;
        }
        self.restored.pruned_at_minute = minute;
        let oldest_useful_hour = stream_ms.saturating_sub(self.retention_ms).div_euclid(HOUR_MS) * HOUR_MS;
        self.restored.by_series.retain(|_, series| {
            series.hours.retain(|hour_start, _| *hour_start >= oldest_useful_hour);
            !series.hours.is_empty()
        });
    }
}
