//! What a chaos run found, per scenario: the accounting of every request, the recovery, the
//! latency during the fault and the alerts; printed as a table and kept as JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::load::{Entry, Stream};
use super::{ChaosOptions, Timing};

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The phases and rates it ran with.
    pub timing: TimingReport,
    /// One per scenario, in order.
    pub scenarios: Vec<ScenarioReport>,
}

/// The run's settings, for reading the figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimingReport {
    pub warmup_s: f64,
    pub hold_s: f64,
    pub after_s: f64,
    pub serve_rate: f64,
    pub inference_rate: f64,
    pub session_timeout_s: f64,
    /// The workers' `kafka.delivery_timeout` (absent from reports before it was recorded).
    #[serde(default)]
    pub delivery_timeout_s: f64,
}

impl TimingReport {
    pub(super) fn from(timing: &Timing, options: &ChaosOptions) -> TimingReport {
        TimingReport {
            warmup_s: timing.warmup.as_secs_f64(),
            hold_s: timing.hold.as_secs_f64(),
            after_s: timing.after.as_secs_f64(),
            serve_rate: options.serve_rate,
            inference_rate: options.inference_rate,
            session_timeout_s: options.session_timeout.as_secs_f64(),
            delivery_timeout_s: options.delivery_timeout.as_secs_f64(),
        }
    }
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub scenario: String,
    /// What was done, concretely (which broker, which instance).
    pub fault: String,
    /// How long the fault was held, in seconds.
    pub held_s: f64,
    /// Seconds from the start of the warm-up to the fault.
    pub fault_at_s: f64,
    /// Per stream (serve, inference).
    pub streams: Vec<StreamReport>,
    /// Seconds from the fault until every stream caught up (see [`StreamReport::recovered_s`]);
    /// `None`: one did not within the load.
    pub recovered_s: Option<f64>,
    /// Garbage published (poison flood).
    pub poison_sent: u64,
    /// Messages on the scenario's dead-letter topic.
    pub dead_letters: u64,
    /// Alerts the SLA monitor sent after the fault began.
    pub alerts: Vec<AlertSeen>,
    /// Whether the scenario should have raised an alert under the default rules.
    pub alert_expected: bool,
    /// What the workers counted from the fault to the end of the load (`disk_errors`,
    /// `redis_errors`, `bus_rewinds`: partitions consumed again after an output outlasted the
    /// delivery timeout, `bus_resent`: periodic records sent again after it), and
    /// `redis_keys_at_end` (Redis restarts empty in its scenario, so these were written after
    /// the restart).
    pub measured: BTreeMap<String, f64>,
    /// Anything else worth reading (the heal, a worker that died).
    pub notes: Vec<String>,
}

/// One stream's accounting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamReport {
    /// `serve` or `inference`.
    pub stream: String,
    /// Published and acknowledged by Kafka.
    pub sent: u64,
    /// Kafka refused them (the publisher was told): not lost, never sent.
    pub refused: u64,
    /// Answered at least once.
    pub answered: u64,
    /// Answered with a status other than ok.
    pub not_ok: u64,
    /// Sent, never answered.
    pub lost: u64,
    /// Extra answers beyond the first, summed.
    pub duplicates: u64,
    /// p99 publish-to-answer latency (ms) of the requests sent in the warm-up's second half;
    /// `None` when one of them was never answered (here and below).
    pub steady_p99_ms: Option<f64>,
    /// p99 (ms) of the requests sent while the fault was held (the first 5 s after an
    /// instant fault).
    pub fault_p99_ms: Option<f64>,
    /// Seconds from the fault until this stream caught up for good: from then on no request
    /// waited longer than 3x the steady p99 (at least 1 s) for its answer; `None`: still
    /// behind when the load stopped.
    pub recovered_s: Option<f64>,
    /// Seconds from the fault until this stream first caught up (a later blip, such as the
    /// heal's own rebalance, may put it behind again: see `recovered_s`).
    pub caught_up_s: Option<f64>,
    /// p99 (ms) of the requests sent in each 5 s from the start of the warm-up to the end of
    /// the load (unanswered ones count as infinitely slow).
    pub p99_per_5s: Vec<Option<f64>>,
}

/// An alert seen on the scenario's alerts topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertSeen {
    /// Rule name.
    pub name: String,
    /// Its labels, `k=v` joined.
    pub labels: String,
    /// Seconds from the fault to its first firing message; negative when it fired before the
    /// fault (and was still firing when the fault began).
    pub fired_after_s: f64,
    /// Seconds from the fault to its resolution; `None`: still firing at the end.
    pub resolved_after_s: Option<f64>,
}

impl Report {
    /// Requests lost over every scenario and stream.
    pub fn lost(&self) -> u64 {
        self.scenarios.iter().flat_map(|s| &s.streams).map(|s| s.lost).sum()
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }
}

/// The marks of one scenario's timeline.
#[derive(Debug, Clone, Copy)]
pub(super) struct Marks {
    pub start: Instant,
    pub fault: Instant,
    pub heal: Instant,
    pub load_end: Instant,
}

/// The pipeline is caught up when nothing sent longer ago than this many times the steady p99
/// (and at least the floor, in ms: the machines are small and shared) waits for its answer.
const RECOVERED_FACTOR: f64 = 3.0;
const RECOVERED_FLOOR_MS: f64 = 1000.0;
/// The end of the warm-up left out of the steady p99.
const IN_FLIGHT: Duration = Duration::from_secs(2);

/// The accounting of one stream from the ledger's entries.
pub(super) fn stream_report(stream: Stream, entries: &[Entry], marks: Marks) -> StreamReport {
    let mine: Vec<&Entry> = entries.iter().filter(|e| e.stream == stream).collect();
    let latency = |e: &Entry| e.first_answer.map(|a| a.duration_since(e.sent).as_secs_f64() * 1000.0);
    let sent_between = |from: Instant, to: Instant| {
        let mut latencies: Vec<f64> = mine
            .iter()
            .filter(|e| !e.refused && e.sent >= from && e.sent < to)
            .map(|e| latency(e).unwrap_or(f64::INFINITY))
            .collect();
        latencies.sort_by(f64::total_cmp);
        latencies
    };
    // The warm-up's second half, less its last seconds: requests in flight when the fault
    // strikes (a killed instance's) belong to the fault, not to the steady state.
    let half_warmup = marks.start + marks.fault.duration_since(marks.start) / 2;
    let steady_end = marks.fault.checked_sub(IN_FLIGHT).unwrap_or(marks.fault).max(half_warmup);
    let steady_p99 = p99(&sent_between(half_warmup, steady_end));
    let fault_end = marks.heal.max(marks.fault + Duration::from_secs(5));
    let fault_p99 = p99(&sent_between(marks.fault, fault_end));
    // Behind at a moment when a request sent longer than the steady latency ago still waits
    // for its answer. Caught up from the second after the last moment behind: whatever piled
    // up during the fault is served and answers keep pace with requests. Behind at the end of
    // the load: not recovered.
    let steady = if steady_p99.is_finite() { steady_p99 } else { RECOVERED_FLOOR_MS };
    let lag = Duration::from_secs_f64((steady * RECOVERED_FACTOR).max(RECOVERED_FLOOR_MS) / 1000.0);
    let behind = |at: Instant| {
        mine.iter().any(|e| !e.refused && e.sent + lag <= at && e.first_answer.is_none_or(|answered| answered > at))
    };
    // Judged every 100 ms from the fault to the end of the load, once.
    let steps = marks.load_end.saturating_duration_since(marks.fault).as_millis() as u64 / 100;
    let behind_at: Vec<bool> =
        (0..=steps).map(|step| behind(marks.fault + Duration::from_millis(step * 100))).collect();
    let seconds = |step: usize| step as f64 / 10.0;
    let first_behind = behind_at.iter().position(|b| *b);
    let caught_up = first_behind.and_then(|first| behind_at[first..].iter().position(|b| !*b).map(|n| first + n));
    let recovered = match behind_at.iter().rposition(|b| *b) {
        None => Some(0.0),
        Some(step) if step + 1 == behind_at.len() => None,
        Some(step) => Some(seconds(step + 1)),
    };
    let buckets = marks.load_end.saturating_duration_since(marks.start).as_secs().div_ceil(5);
    let p99_per_5s = (0..buckets)
        .map(|b| {
            let from = marks.start + Duration::from_secs(b * 5);
            finite(p99(&sent_between(from, from + Duration::from_secs(5))))
        })
        .collect();
    let sent = mine.iter().filter(|e| !e.refused).count() as u64;
    let answered = mine.iter().filter(|e| e.answers > 0).count() as u64;
    StreamReport {
        stream: stream.name().into(),
        sent,
        refused: mine.iter().filter(|e| e.refused).count() as u64,
        answered,
        not_ok: mine.iter().filter(|e| e.answers > 0 && !e.ok).count() as u64,
        lost: mine.iter().filter(|e| !e.refused && e.answers == 0).count() as u64,
        duplicates: mine.iter().map(|e| u64::from(e.answers.saturating_sub(1))).sum(),
        steady_p99_ms: finite(steady_p99),
        fault_p99_ms: finite(fault_p99),
        recovered_s: recovered,
        caught_up_s: match (first_behind, caught_up) {
            (None, _) => Some(0.0),
            (Some(_), Some(step)) => Some(seconds(step)),
            (Some(_), None) => None,
        },
        p99_per_5s,
    }
}

/// JSON has no infinity: an unanswered request's latency is written as `null`.
fn finite(ms: f64) -> Option<f64> {
    ms.is_finite().then_some(ms)
}

/// The p99 of `sorted`; 0 when nothing was sent.
fn p99(sorted: &[f64]) -> f64 {
    if sorted.is_empty() { 0.0 } else { crate::cli::percentile(sorted, 99.0) }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.timing;
        writeln!(
            f,
            "chaos: {} scenario(s); load {}/s analysis requests + {}/s inference jobs; warm-up {} s, faults held {} s, \
             then {} s; session timeout {} s, delivery timeout {} s",
            self.scenarios.len(),
            t.serve_rate,
            t.inference_rate,
            t.warmup_s,
            t.hold_s,
            t.after_s,
            t.session_timeout_s,
            t.delivery_timeout_s
        )?;
        writeln!(f, "{HEADER}")?;
        for scenario in &self.scenarios {
            write!(f, "{scenario}")?;
        }
        let lost = self.lost();
        writeln!(f, "lost over every scenario: {lost} (goal 0)")
    }
}

/// The column names of the table.
pub const HEADER: &str = "scenario           stream      sent answered  lost   dup not-ok    p99 ms fault p99  recovered  \
                          alerts (s after the fault: fired/resolved; fired < 0: before it)";

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scenario = self;
        for (i, stream) in scenario.streams.iter().enumerate() {
            let name = if i == 0 { scenario.scenario.as_str() } else { "" };
            let alerts = if i == 0 { alert_line(scenario) } else { String::new() };
            writeln!(
                f,
                "{:<18} {:<9} {:>6} {:>8} {:>5} {:>5} {:>6} {:>9} {:>9} {:>10}  {}",
                name,
                stream.stream,
                stream.sent,
                stream.answered,
                stream.lost,
                stream.duplicates,
                stream.not_ok,
                ms(stream.steady_p99_ms),
                ms(stream.fault_p99_ms),
                recovery(stream),
                alerts
            )?;
        }
        writeln!(f, "{:<18} fault: {} (held {:.0} s)", "", scenario.fault, scenario.held_s)?;
        let fault_bucket = (scenario.fault_at_s / 5.0) as usize;
        for stream in &scenario.streams {
            let line: Vec<String> = stream
                .p99_per_5s
                .iter()
                .enumerate()
                .map(|(i, ms)| {
                    let mark = if i == fault_bucket { "| " } else { "" };
                    ms.map_or(format!("{mark}lost"), |ms| format!("{mark}{ms:.0}"))
                })
                .collect();
            writeln!(f, "{:<18} {} p99 ms per 5 s (| the fault): {}", "", stream.stream, line.join(" "))?;
        }
        if scenario.poison_sent > 0 || scenario.dead_letters > 0 {
            writeln!(f, "{:<18} poison sent {}, dead letters {}", "", scenario.poison_sent, scenario.dead_letters)?;
        }
        let counted: Vec<String> =
            scenario.measured.iter().filter(|(_, v)| **v > 0.0).map(|(k, v)| format!("{k} {v:.0}")).collect();
        if !counted.is_empty() {
            writeln!(f, "{:<18} counted: {}", "", counted.join(", "))?;
        }
        for note in &scenario.notes {
            writeln!(f, "{:<18} note: {note}", "")?;
        }
        Ok(())
    }
}

/// `first/for good` seconds, or `12 s` when they agree.
fn recovery(stream: &StreamReport) -> String {
    let seconds = |s: Option<f64>| s.map_or("no".to_string(), |s| format!("{s:.0}"));
    if stream.caught_up_s.map(f64::round) == stream.recovered_s.map(f64::round) {
        format!("{} s", seconds(stream.recovered_s))
    } else {
        format!("{}/{} s", seconds(stream.caught_up_s), seconds(stream.recovered_s))
    }
}

fn ms(p99: Option<f64>) -> String {
    p99.map_or("lost".into(), |ms| format!("{ms:.0}"))
}

fn alert_line(scenario: &ScenarioReport) -> String {
    if scenario.alerts.is_empty() {
        return if scenario.alert_expected { "none (one was expected)".into() } else { "none".into() };
    }
    scenario
        .alerts
        .iter()
        .map(|a| {
            let resolved = a.resolved_after_s.map_or("still firing".to_string(), |s| format!("{s:.0}"));
            format!("{}{{{}}} {:.0}/{resolved}", a.name, a.labels, a.fired_after_s)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests every 100 ms for 30 s, answered after `latency(sent second)` ms (None: never).
    fn entries(start: Instant, latency: impl Fn(f64) -> Option<u64>) -> Vec<Entry> {
        (0..300)
            .map(|i| {
                let sent = start + Duration::from_millis(i * 100);
                let answer = latency(i as f64 / 10.0).map(|ms| sent + Duration::from_millis(ms));
                Entry {
                    stream: Stream::Serve,
                    sent,
                    refused: false,
                    answers: u32::from(answer.is_some()),
                    first_answer: answer,
                    ok: true,
                }
            })
            .collect()
    }

    fn marks(start: Instant) -> Marks {
        let at = |s: u64| start + Duration::from_secs(s);
        Marks { start, fault: at(10), heal: at(15), load_end: at(30) }
    }

    #[test]
    fn a_stall_is_recovered_once_its_backlog_is_answered() {
        let start = Instant::now();
        // Requests sent during 10-15 s wait until 17 s; the rest take 50 ms.
        let all = entries(start, |s| Some(if (10.0..15.0).contains(&s) { ((17.0 - s) * 1000.0) as u64 } else { 50 }));
        let report = stream_report(Stream::Serve, &all, marks(start));
        assert_eq!(report.lost, 0);
        // The stalled requests wait until 17 s: behind until 16.9 s, caught up 7 s after the
        // fault.
        assert_eq!(report.recovered_s, Some(7.0), "{report:?}");
        assert_eq!(report.caught_up_s, Some(7.0), "one stall: first caught up is for good");
        assert!(report.fault_p99_ms.is_some_and(|ms| ms > 5000.0), "{report:?}");
        assert_eq!(report.steady_p99_ms, Some(50.0));
        assert_eq!(report.p99_per_5s.len(), 6);
    }

    #[test]
    fn a_lost_request_is_counted_and_never_recovered() {
        let start = Instant::now();
        let all = entries(start, |s| if (12.0..12.05).contains(&s) { None } else { Some(50) });
        let report = stream_report(Stream::Serve, &all, marks(start));
        assert_eq!(report.lost, 1);
        assert_eq!(report.recovered_s, None);
        assert_eq!(report.fault_p99_ms, None, "an unanswered request has no latency");
    }

    #[test]
    fn a_second_stall_after_catching_up_delays_the_recovery_but_not_the_first_catch_up() {
        let start = Instant::now();
        // Stalls: sent 10-12 s answered at 13 s; sent 20-21 s answered at 23 s.
        let all = entries(start, |s| {
            Some(if (10.0..12.0).contains(&s) {
                ((13.0 - s) * 1000.0) as u64
            } else if (20.0..21.0).contains(&s) {
                ((23.0 - s) * 1000.0) as u64
            } else {
                50
            })
        });
        let report = stream_report(Stream::Serve, &all, marks(start));
        assert_eq!((report.caught_up_s, report.recovered_s), (Some(3.0), Some(13.0)), "{report:?}");
    }

    #[test]
    fn a_fault_that_delays_nothing_is_recovered_at_once() {
        let start = Instant::now();
        let report = stream_report(Stream::Serve, &entries(start, |_| Some(50)), marks(start));
        assert_eq!(report.recovered_s, Some(0.0));
    }

    #[test]
    fn duplicates_are_the_answers_beyond_the_first() {
        let start = Instant::now();
        let mut all = entries(start, |_| Some(50));
        all[3].answers = 3;
        let report = stream_report(Stream::Serve, &all, marks(start));
        assert_eq!((report.duplicates, report.answered, report.lost), (2, 300, 0));
    }
}
