//! Slow statements found in event-time windows of query events: per fingerprint, calls, total
//! and mean time, p95/p99 from an HDR histogram and rows; slow by PgHero's rule (mean of at
//! least 20 ms over at least 100 calls), by share of the window's database time, and by
//! regression against the fingerprint's own baseline (an average of its earlier windows).
//!
//! I/O-free: the query-analyzer worker feeds events and closes windows as time passes.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// When a fingerprint's window is a finding. Defaults are PgHero's slow-query rule plus a
/// share-of-time and a regression rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlowRules {
    /// Slow: mean time per call at least this many milliseconds...
    pub min_mean_ms: f64,
    /// ...over at least this many calls in the window.
    pub min_calls: u64,
    /// Heavy: at least this share of all statement time in the window (0.2 = 20 %)...
    pub min_time_share: f64,
    /// ...in a window with at least this much statement time in all, in milliseconds (a
    /// quiet database's only statement is not heavy).
    pub min_window_ms: f64,
    /// Regressed: mean at least this many times the fingerprint's baseline mean...
    pub regression_factor: f64,
    /// ...over at least this many calls in the window.
    pub regression_min_calls: u64,
    /// Weight of each new window in the baseline (an exponential average; 0.2 remembers
    /// about the last five windows).
    pub baseline_weight: f64,
}

impl Default for SlowRules {
    fn default() -> Self {
        SlowRules {
            min_mean_ms: 20.0,
            min_calls: 100,
            min_time_share: 0.2,
            min_window_ms: 1000.0,
            regression_factor: 2.0,
            regression_min_calls: 20,
            baseline_weight: 0.2,
        }
    }
}

/// Which rule a finding met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    Slow,
    Heavy,
    Regressed,
}

/// One fingerprint's window that met a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The database the statement ran against.
    pub database: String,
    pub fingerprint: String,
    /// Whether the SQL parser understood the statement (else the fingerprint is of its text).
    pub parsed: bool,
    /// A statement text of the fingerprint as it was run.
    pub sql: String,
    /// Window start and end, ms since the epoch.
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub calls: u64,
    pub errors: u64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub rows: u64,
    /// Share of the window's statement time.
    pub time_share: f64,
    /// The baseline mean before this window, where there was one.
    pub baseline_mean_ms: Option<f64>,
}

/// Per fingerprint, within one window.
struct Stats {
    sql: String,
    parsed: bool,
    calls: u64,
    errors: u64,
    total_ms: f64,
    rows: u64,
    /// Microseconds at 3 significant digits.
    micros: Histogram<u64>,
}

/// One statement run, as the windows count it.
#[derive(Debug, Clone, Copy)]
pub struct StatementRun<'a> {
    pub database: &'a str,
    pub fingerprint: &'a str,
    pub sql: &'a str,
    /// Whether the parser understood `sql`.
    pub parsed: bool,
    /// Mean time of the runs, in milliseconds.
    pub duration_ms: f64,
    /// Runs this stands for (1 for one statement; a collector's interval has more).
    pub calls: u64,
    pub rows: u64,
    pub failed: bool,
    /// When it started, ms since the epoch.
    pub at_ms: i64,
}

/// An empty auto-resizing histogram of microseconds.
fn new_histogram() -> Histogram<u64> {
    // `new(3)` only fails for more than 5 significant digits; 3 is a constant.
    #[allow(clippy::expect_used)]
    Histogram::new(3).expect("3 significant digits is within hdrhistogram's 0..=5")
}

/// Windows of query events by event time, closed once the watermark passes their end plus the
/// allowed lateness.
pub struct QueryWindows {
    rules: SlowRules,
    window_ms: i64,
    lateness_ms: i64,
    /// Window start -> (database, fingerprint) -> stats.
    open: BTreeMap<i64, HashMap<(String, String), Stats>>,
    /// Everything before this start is closed; events for it are late.
    closed_before: i64,
    baselines: HashMap<(String, String), f64>,
    /// The latest judged window of every shape, for checks after a change (did an index pay
    /// off?). Bounded like the baselines: one entry per shape seen.
    latest: HashMap<(String, String), WindowSummary>,
    late: u64,
}

/// One shape's figures in one judged window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSummary {
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub calls: u64,
    pub mean_ms: f64,
    pub p95_ms: f64,
}

impl QueryWindows {
    /// Windows of `window_ms`, each closed `lateness_ms` after its end.
    pub fn new(rules: SlowRules, window_ms: i64, lateness_ms: i64) -> QueryWindows {
        QueryWindows {
            rules,
            window_ms: window_ms.max(1),
            lateness_ms: lateness_ms.max(0),
            open: BTreeMap::new(),
            closed_before: i64::MIN,
            baselines: HashMap::new(),
            latest: HashMap::new(),
            late: 0,
        }
    }

    /// Counts one run. Returns false (and counts it as late) when its window already closed.
    pub fn record(&mut self, run: &StatementRun<'_>) -> bool {
        let StatementRun { database, fingerprint, sql, parsed, duration_ms, calls, rows, failed, at_ms } = *run;
        let calls = calls.max(1);
        let start = at_ms.div_euclid(self.window_ms) * self.window_ms;
        if start < self.closed_before {
            self.late += 1;
            return false;
        }
        let window = self.open.entry(start).or_default();
        let stats = window.entry((database.to_owned(), fingerprint.to_owned())).or_insert_with(|| Stats {
            parsed,
            sql: sql.to_owned(),
            calls: 0,
            errors: 0,
            total_ms: 0.0,
            rows: 0,
            micros: new_histogram(),
        });
        stats.calls += calls;
        stats.errors += if failed { calls } else { 0 };
        let duration_ms = if duration_ms.is_finite() { duration_ms.max(0.0) } else { 0.0 };
        stats.total_ms += duration_ms * calls as f64;
        stats.rows += rows;
        // `record_n` grows the auto-resizing histogram; it only fails past u64 microseconds.
        // An interval's runs all count at their mean: the spread inside it is not known.
        let micros = (duration_ms * 1000.0) as u64;
        if stats.micros.record_n(micros, calls).is_err() {
            stats.micros.saturating_record(micros);
        }
        true
    }

    /// Events that arrived after their window closed.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The latest judged window of a shape.
    pub fn latest(&self, database: &str, fingerprint: &str) -> Option<WindowSummary> {
        self.latest.get(&(database.to_owned(), fingerprint.to_owned())).copied()
    }

    /// Closes every window whose end plus lateness is at or before `watermark_ms`, oldest
    /// first, and returns what they found.
    pub fn close_through(&mut self, watermark_ms: i64) -> Vec<Finding> {
        let mut findings = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            if start + self.window_ms + self.lateness_ms > watermark_ms {
                break;
            }
            let Some((start, window)) = self.open.pop_first() else { break };
            self.closed_before = start + self.window_ms;
            findings.extend(self.judge(start, window));
        }
        findings
    }

    fn judge(&mut self, start: i64, window: HashMap<(String, String), Stats>) -> Vec<Finding> {
        let rules = &self.rules;
        // Shares are of each database's own time in the window.
        let mut database_ms: HashMap<String, f64> = HashMap::new();
        for ((database, _), stats) in &window {
            *database_ms.entry(database.clone()).or_default() += stats.total_ms;
        }
        let mut findings = Vec::new();
        let mut fingerprints: Vec<((String, String), Stats)> = window.into_iter().collect();
        fingerprints.sort_by(|a, b| b.1.total_ms.total_cmp(&a.1.total_ms));
        for (key, stats) in fingerprints {
            let window_ms = database_ms.get(&key.0).copied().unwrap_or(0.0);
            let mean_ms = stats.total_ms / stats.calls.max(1) as f64;
            let time_share = if window_ms > 0.0 { stats.total_ms / window_ms } else { 0.0 };
            let baseline = self.baselines.get(&key).copied();
            let kind = if stats.calls >= rules.min_calls && mean_ms >= rules.min_mean_ms {
                Some(FindingKind::Slow)
            } else if baseline.is_some_and(|b| {
                stats.calls >= rules.regression_min_calls && b > 0.0 && mean_ms >= b * rules.regression_factor
            }) {
                Some(FindingKind::Regressed)
            } else if window_ms >= rules.min_window_ms && time_share >= rules.min_time_share {
                Some(FindingKind::Heavy)
            } else {
                None
            };
            let p95_ms = stats.micros.value_at_quantile(0.95) as f64 / 1000.0;
            self.latest.insert(
                key.clone(),
                WindowSummary {
                    window_start_ms: start,
                    window_end_ms: start + self.window_ms,
                    calls: stats.calls,
                    mean_ms,
                    p95_ms,
                },
            );
            let weight = rules.baseline_weight.clamp(0.0, 1.0);
            self.baselines.insert(key.clone(), baseline.map_or(mean_ms, |b| b + weight * (mean_ms - b)));
            if let Some(kind) = kind {
                let (database, fingerprint) = key;
                findings.push(Finding {
                    kind,
                    database,
                    parsed: stats.parsed,
                    sql: stats.sql,
                    window_start_ms: start,
                    window_end_ms: start + self.window_ms,
                    calls: stats.calls,
                    errors: stats.errors,
                    total_ms: stats.total_ms,
                    mean_ms,
                    p95_ms,
                    p99_ms: stats.micros.value_at_quantile(0.99) as f64 / 1000.0,
                    rows: stats.rows,
                    time_share,
                    baseline_mean_ms: baseline,
                    fingerprint,
                });
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn windows() -> QueryWindows {
        QueryWindows::new(SlowRules::default(), MINUTE, 5_000)
    }

    fn statement<'a>(fingerprint: &'a str, ms: f64, at_ms: i64) -> StatementRun<'a> {
        StatementRun {
            database: "shop",
            fingerprint,
            sql: "SELECT ...",
            parsed: true,
            duration_ms: ms,
            calls: 1,
            rows: 1,
            failed: false,
            at_ms,
        }
    }

    fn run(windows: &mut QueryWindows, fingerprint: &str, ms: f64, count: usize, at: i64) {
        for i in 0..count {
            windows.record(&statement(fingerprint, ms, at + i as i64 % 1000));
        }
    }

    #[test]
    fn pghero_slow_is_a_mean_of_20_ms_over_100_calls() {
        let mut windows = windows();
        run(&mut windows, "slow", 25.0, 100, 0);
        run(&mut windows, "few", 80.0, 99, 0);
        run(&mut windows, "fast", 5.0, 1000, 0);
        let findings = windows.close_through(MINUTE + 5_000);
        let slow: Vec<&str> =
            findings.iter().filter(|f| f.kind == FindingKind::Slow).map(|f| f.fingerprint.as_str()).collect();
        assert_eq!(slow, ["slow"]);
        let finding = &findings.iter().find(|f| f.fingerprint == "slow").unwrap();
        assert_eq!((finding.calls, finding.window_start_ms, finding.window_end_ms), (100, 0, MINUTE));
        assert!((finding.p95_ms - 25.0).abs() < 0.1, "{finding:?}");
    }

    #[test]
    fn a_statement_taking_most_of_the_database_time_is_heavy() {
        let mut windows = windows();
        run(&mut windows, "bulk", 900.0, 3, 0);
        run(&mut windows, "other", 1.0, 500, 0);
        let findings = windows.close_through(2 * MINUTE);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!((findings[0].kind, findings[0].fingerprint.as_str()), (FindingKind::Heavy, "bulk"));
        assert!(findings[0].time_share > 0.8);
    }

    #[test]
    fn a_fingerprint_twice_as_slow_as_its_baseline_has_regressed() {
        let mut windows = windows();
        let noise = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        for minute in 0..6 {
            let lookup_ms = if minute == 5 { 6.0 } else { 2.0 };
            run(&mut windows, "lookup", lookup_ms, 50, minute * MINUTE);
            for other in noise {
                run(&mut windows, other, 1.0, 500, minute * MINUTE);
            }
        }
        let findings = windows.close_through(6 * MINUTE + 5_000);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, FindingKind::Regressed);
        assert_eq!(findings[0].window_start_ms, 5 * MINUTE);
        assert!((findings[0].baseline_mean_ms.unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_same_statement_on_two_databases_is_judged_apart() {
        // Only PgHero's rule: each database's one statement is all of its time.
        let rules = SlowRules { min_window_ms: f64::INFINITY, ..SlowRules::default() };
        let mut windows = QueryWindows::new(rules, MINUTE, 5_000);
        run(&mut windows, "slow", 25.0, 60, 0);
        for i in 0..60 {
            windows.record(&StatementRun { database: "other", ..statement("slow", 25.0, i) });
        }
        assert!(windows.close_through(MINUTE + 5_000).is_empty(), "60 calls on each is not 120 on one");
    }

    #[test]
    fn the_latest_window_of_every_shape_is_kept_finding_or_not() {
        let mut windows = windows();
        run(&mut windows, "quiet", 3.0, 10, 0);
        run(&mut windows, "quiet", 1.0, 10, MINUTE);
        assert!(windows.close_through(2 * MINUTE + 5_000).is_empty());
        let latest = windows.latest("shop", "quiet").unwrap();
        assert_eq!((latest.window_start_ms, latest.calls), (MINUTE, 10));
        assert!((latest.mean_ms - 1.0).abs() < 1e-9);
        assert!(windows.latest("other", "quiet").is_none());
    }

    #[test]
    fn a_collected_interval_counts_as_its_runs() {
        let mut windows = windows();
        windows.record(&StatementRun { calls: 150, ..statement("collected", 30.0, 0) });
        let findings = windows.close_through(MINUTE + 5_000);
        assert_eq!(findings.len(), 1, "150 runs of 30 ms are slow by PgHero's rule");
        assert_eq!((findings[0].calls, findings[0].total_ms), (150, 4500.0));
    }

    #[test]
    fn a_window_stays_open_for_its_lateness_and_later_events_are_counted_late() {
        let mut windows = windows();
        run(&mut windows, "slow", 25.0, 60, 0);
        assert!(windows.close_through(MINUTE + 4_999).is_empty());
        run(&mut windows, "slow", 25.0, 40, 59_000);
        assert_eq!(windows.close_through(MINUTE + 5_000).len(), 1);
        assert!(!windows.record(&statement("slow", 25.0, 30_000)));
        assert_eq!(windows.late(), 1);
    }
}
