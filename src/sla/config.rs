//! Typed settings of the SLA monitor: stream tolerances, threshold rules and SLOs. Every field has
//! a default (the platform SLAs), unknown keys are errors, and [`SlaConfig::validate`] names the
//! key of anything the types cannot check. Writing any `[[rules]]` (or `[[slos]]`) replaces the
//! whole default list, so a deployment states exactly the rules it runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::signal::SignalRule;
use crate::records::Severity;

/// The whole SLA monitor configuration (to be nested under the worker's settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    /// How far behind the newest event time an event may arrive and still be counted in its own
    /// minute; older events are dropped as `too_late`. At most 1h.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// How far ahead of the processing clock an event time may be before the event is dropped as
    /// `future_timestamp`; at most 1h. Events within it count in their own bucket, but the stream
    /// clock never passes the processing clock, so a producer whose clock runs fast cannot push
    /// the watermark past everyone else's events.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// Latencies above this are recorded as this (histograms stay bounded); at most 24h.
    #[serde(with = "humantime_serde")]
    pub max_latency: Duration,
    /// How long a request id (with its service and kind) is remembered, so a `RequestCompleted`
    /// redelivered within it counts once: at least this long, at most twice, and at most
    /// 2,000,000 ids per half (about 64 MB). At most 1h; 0s counts every event.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// How often a still-firing alert is sent again (processing time).
    #[serde(with = "humantime_serde")]
    pub renotify_interval: Duration,
    /// Request ids kept per bucket as exemplars (slowest, and latest failed); at most 100.
    pub exemplars: usize,
    /// Most series (service + kind) tracked at once, so a flood of bogus kinds cannot exhaust
    /// memory; a busy series holds about a hundred histograms (tens of kilobytes each). When
    /// full, a new series takes the place of a near-idle one (at most one event in its last two
    /// minutes, none firing), so junk cannot lock real services out; only when every series is
    /// busy are its events dropped as `series_limit`.
    pub max_series: usize,
    /// Most series of one service (one per kind), so one service minting kinds cannot take the
    /// whole table; further kinds of it are dropped as `series_limit`.
    pub max_series_per_service: usize,
    /// The longest service or kind name (and worker status name) taken, in bytes: they become
    /// label values of alerts and gauges. Longer ones are dropped as `label_too_long`.
    pub max_label_bytes: usize,
    /// Threshold rules on SLIs, evaluated per series.
    pub rules: Vec<ThresholdRule>,
    /// Service level objectives with multiwindow, multi-burn-rate alerts, evaluated per series.
    pub slos: Vec<SloConfig>,
    /// Rules on what workers report about themselves (consumer lag, memory, CPU, descriptors)
    /// and on the autoscaler's decisions, judged per consumer group or instance.
    pub signals: Vec<SignalRule>,
    /// A subject with no report for this long has no value: its signal alerts resolve. Workers
    /// report every 10 s by default; at least 1s.
    #[serde(with = "humantime_serde")]
    pub signal_stale_after: Duration,
    /// The window `autoscale_actions` counts scale-ups and scale-downs over; whole minutes, 1m to 24h.
    #[serde(with = "humantime_serde")]
    pub autoscale_action_window: Duration,
    /// The window `dead_letters` sums a group's dead letters over: a dead-letter alert resolves
    /// this long after the last one. Whole minutes, 1m to 24h.
    #[serde(with = "humantime_serde")]
    pub dead_letter_window: Duration,
}

impl Default for SlaConfig {
    fn default() -> Self {
        SlaConfig {
            allowed_lateness: Duration::from_secs(120),
            max_clock_skew: Duration::from_secs(300),
            max_latency: Duration::from_secs(3600),
            duplicate_window: Duration::from_secs(300),
            renotify_interval: Duration::from_secs(300),
            exemplars: 5,
            max_series: 500,
            max_series_per_service: 100,
            max_label_bytes: 128,
            rules: ThresholdRule::platform_defaults(),
            slos: SloConfig::platform_defaults(),
            signals: SignalRule::platform_defaults(),
            signal_stale_after: Duration::from_secs(60),
            autoscale_action_window: Duration::from_secs(30 * 60),
            dead_letter_window: Duration::from_secs(5 * 60),
        }
    }
}

/// An SLI one series is measured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sli {
    /// Median latency, milliseconds.
    LatencyP50,
    /// 95th percentile latency, milliseconds.
    LatencyP95,
    /// 99th percentile latency, milliseconds.
    LatencyP99,
    /// Events per second over the window.
    Throughput,
    /// Fraction (0..1) of events with status `error`.
    ErrorRate,
    /// Fraction (0..1) of events with status `timeout`.
    TimeoutRate,
    /// Fraction (0..1) of events answered by any cache tier (`cache_layer` other than `none`).
    CacheHitRatio,
}

impl Sli {
    /// Human name used in summaries, e.g. `p95 latency`.
    pub fn describe(self) -> &'static str {
        match self {
            Sli::LatencyP50 => "p50 latency",
            Sli::LatencyP95 => "p95 latency",
            Sli::LatencyP99 => "p99 latency",
            Sli::Throughput => "throughput",
            Sli::ErrorRate => "error rate",
            Sli::TimeoutRate => "timeout rate",
            Sli::CacheHitRatio => "cache hit ratio",
        }
    }

    /// Whether the SLI needs the window's latency histogram.
    pub fn is_latency(self) -> bool {
        matches!(self, Sli::LatencyP50 | Sli::LatencyP95 | Sli::LatencyP99)
    }
}

/// Which side of the threshold is a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    /// Breach when the value is greater than the threshold.
    Above,
    /// Breach when the value is less than the threshold.
    Below,
}

/// Which events a series is made of, and so which rules and SLOs apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// Finished requests (`RequestCompleted` on `frontier.metrics`): series are service + kind.
    #[default]
    Requests,
    /// Database statements (`DbQueryEvent` on `frontier.db.query-events`): series are the
    /// application + `db:<database>`, so request rules (cache hit ratio, say) never judge them.
    Queries,
}

/// Windows an SLI can be computed over, written `30s`, `1m`, `5m`, `1h`, `6h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SliWindow {
    /// Thirty seconds (five-second buckets).
    #[serde(rename = "30s")]
    ThirtySeconds,
    /// One minute (five-second buckets).
    #[serde(rename = "1m")]
    OneMinute,
    /// Five minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour.
    #[serde(rename = "1h")]
    OneHour,
    /// Six hours (ten-minute buckets).
    #[serde(rename = "6h")]
    SixHours,
}

impl SliWindow {
    /// Every window, shortest first.
    pub const ALL: [SliWindow; 5] = [
        SliWindow::ThirtySeconds,
        SliWindow::OneMinute,
        SliWindow::FiveMinutes,
        SliWindow::OneHour,
        SliWindow::SixHours,
    ];

    /// Its length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            SliWindow::ThirtySeconds => 30,
            SliWindow::OneMinute => 60,
            SliWindow::FiveMinutes => 300,
            SliWindow::OneHour => 3600,
            SliWindow::SixHours => 6 * 3600,
        })
    }

    /// The duration string used in configs and in `Alert.window`.
    pub fn label(self) -> &'static str {
        match self {
            SliWindow::ThirtySeconds => "30s",
            SliWindow::OneMinute => "1m",
            SliWindow::FiveMinutes => "5m",
            SliWindow::OneHour => "1h",
            SliWindow::SixHours => "6h",
        }
    }

    /// Position in [`SliWindow::ALL`].
    pub(crate) fn position(self) -> usize {
        self as usize
    }
}

/// A threshold rule: alert when an SLI of a series stays on the wrong side of a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    /// Alert name, unique across rules and SLOs (e.g. `LatencyP95High`).
    pub name: String,
    /// The SLI compared.
    pub sli: Sli,
    /// Which side of `threshold` is a breach.
    pub comparison: Comparison,
    /// Threshold in the SLI's unit: milliseconds, events per second, or a fraction 0..1.
    pub threshold: f64,
    /// Window the SLI is computed over.
    pub window: SliWindow,
    /// A shorter window that must breach too before the alert fires, and whose recovery ends a
    /// firing alert (the SRE workbook's multiwindow idea applied to a threshold): the long
    /// window keeps blips from alerting, the short one lets a recovered series resolve within
    /// about its length instead of the long window's. None: `window` alone decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_window: Option<SliWindow>,
    /// How long (event time) the breach must hold continuously before the alert fires.
    #[serde(rename = "for", with = "humantime_serde", default = "default_rule_for")]
    pub for_duration: Duration,
    /// Fraction of the threshold the value must come back past before a firing alert resolves
    /// (0.05 with `above 200`: resolves at 190 or less), so a value hovering at the threshold
    /// does not flap. 0 to 1 (exclusive).
    #[serde(default = "default_hysteresis")]
    pub hysteresis: f64,
    /// Fewest events the window must hold to be judged at all: a handful of requests cannot page.
    /// Set 0 on throughput rules, where no traffic is the point.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
    /// Severity of the alert.
    #[serde(default = "default_rule_severity")]
    pub severity: Severity,
    /// One-line summary; placeholders: {name} {service} {kind} {sli} {value} {comparison}
    /// {threshold} {window} {severity}. `{comparison}` is how the value actually compares
    /// (`above`, `below`, `at`), so a resolved alert's summary reads true.
    #[serde(default = "default_rule_summary")]
    pub summary: String,
    /// Runbook link for the responder (http or https).
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// Extra labels on the alert (part of its fingerprint); `service`, `kind` and `severity` are
    /// reserved.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Services the rule applies to; empty means all.
    #[serde(default)]
    pub services: Vec<String>,
    /// Kinds the rule applies to; empty means all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Which series the rule judges: `requests` (the default) or `queries`.
    #[serde(default)]
    pub source: EventSource,
}

fn default_rule_for() -> Duration {
    Duration::from_secs(120)
}
fn default_hysteresis() -> f64 {
    0.05
}
fn default_min_events() -> u64 {
    100
}
fn default_rule_severity() -> Severity {
    Severity::Warning
}
fn default_rule_summary() -> String {
    "{sli} of {service} {kind} is {value}, {comparison} {threshold} over {window}".into()
}

impl ThresholdRule {
    /// A rule with the default `for`, hysteresis, volume guard, severity and summary.
    pub fn new(name: &str, sli: Sli, comparison: Comparison, threshold: f64, window: SliWindow) -> Self {
        ThresholdRule {
            name: name.into(),
            sli,
            comparison,
            threshold,
            window,
            short_window: None,
            for_duration: default_rule_for(),
            hysteresis: default_hysteresis(),
            min_events: default_min_events(),
            severity: default_rule_severity(),
            summary: default_rule_summary(),
            runbook_url: None,
            labels: BTreeMap::new(),
            services: Vec::new(),
            kinds: Vec::new(),
            source: EventSource::Requests,
        }
    }

    /// The platform SLAs: p95 latency under 200 ms, error rate under 1 %, cache hit ratio over
    /// 80 %; and database statements timing out at most 1 % of the time. Warnings: paging is left
    /// to the SLO burn-rate alerts, which weigh how fast the error budget goes.
    ///
    /// Each window and `for` is chosen so a sustained breach fires within 30 s of its onset,
    /// a 5-second blip does not, and a recovered series resolves within a minute
    /// (`frontier bench sla --live` measures all three):
    /// - p95 latency over 5m: all-slow traffic carries the p95 past 200 ms after 5 % of the
    ///   window (15-18 s), and a 5 s blip is under 2 % of it; a short window would fire on the
    ///   blip. The 30s window must breach too, and its recovery resolves the alert: a recovered
    ///   series is not held firing for the five minutes the long window remembers the breach
    ///   (the p95 of 30 s falls back once 95 % of them are healthy, after about 30 s).
    /// - error ratio over 30s: errors are rare events, and the window's length is what lets
    ///   few of them prove a breach; at 10 events/s and 5 % errors a 1m window, diluted by the
    ///   healthy minute before the onset, needs 30-50 s to be sure, a 30s window 15-35 s. A 5 s
    ///   blip of 5 % errors stays under 1 % of 30 s.
    /// - cache hit ratio over 1m with a 30s short window: 5 s without hits would bring 95 % of
    ///   a 30s window below 80 %, but only to 87 % of a 1m one; zero hits take 10-15 s to bring
    ///   the 1m window down, and the 30s window's recovery resolves.
    /// - database timeouts over 1m: statements are fewer than requests.
    /// - a breach is judged on the near bound of a 99 % confidence interval (see
    ///   `CONFIDENCE_Z`), so a small sample's noise cannot fire, and `for` 5 s absorbs a value
    ///   that grazes the threshold for one evaluation.
    pub fn platform_defaults() -> Vec<ThresholdRule> {
        let rule = |name: &str, sli, comparison, threshold, window, short_window| ThresholdRule {
            for_duration: Duration::from_secs(5),
            short_window,
            ..ThresholdRule::new(name, sli, comparison, threshold, window)
        };
        let short = Some(SliWindow::ThirtySeconds);
        let latency = rule("LatencyP95High", Sli::LatencyP95, Comparison::Above, 200.0, SliWindow::FiveMinutes, short);
        let errors = rule("ErrorRateHigh", Sli::ErrorRate, Comparison::Above, 0.01, SliWindow::ThirtySeconds, None);
        let hits = rule("CacheHitRatioLow", Sli::CacheHitRatio, Comparison::Below, 0.8, SliWindow::OneMinute, short);
        let mut db_timeouts =
            rule("DbQueryTimeouts", Sli::TimeoutRate, Comparison::Above, 0.01, SliWindow::OneMinute, None);
        db_timeouts.source = EventSource::Queries;
        // Statements are fewer than requests; 20 in a minute is already a pattern.
        db_timeouts.min_events = 20;
        db_timeouts.summary =
            "{service} statements on {kind} time out at {value}, {comparison} {threshold} over {window}".into();
        vec![latency, errors, hits, db_timeouts]
    }
}

/// What counts as a bad event for an SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SloIndicator {
    /// Bad = status `error` or `timeout`.
    Availability,
    /// Bad = latency above `latency_threshold_ms` (every event counts, whatever its status).
    Latency,
}

/// A service level objective per series, alerted on by burn rate (Google SRE workbook, ch. 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// Alert name of the SLO's burn-rate alerts, unique across rules and SLOs.
    pub name: String,
    /// What a bad event is.
    pub sli: SloIndicator,
    /// Target fraction of good events, e.g. 0.999; strictly between 0 and 1.
    pub objective: f64,
    /// For `latency` SLOs: an event slower than this many milliseconds is bad.
    #[serde(default)]
    pub latency_threshold_ms: Option<f64>,
    /// Fewest events the short window of a pair must hold before the pair is judged.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
    /// Fraction of the burn-rate threshold a window must drop below before a firing alert
    /// resolves (0 to 1, exclusive).
    #[serde(default = "default_hysteresis")]
    pub hysteresis: f64,
    /// How long a burn must hold before firing; 0 by default, as the short window already
    /// filters blips.
    #[serde(rename = "for", with = "humantime_serde", default)]
    pub for_duration: Duration,
    /// One-line summary; placeholders: {name} {service} {kind} {sli} {value} {comparison}
    /// {threshold} {window} {short_window} {objective} {severity}.
    #[serde(default = "default_slo_summary")]
    pub summary: String,
    /// Runbook link (http or https).
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// Extra labels (part of the fingerprint); `service`, `kind`, `severity` are reserved.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Services the SLO applies to; empty means all.
    #[serde(default)]
    pub services: Vec<String>,
    /// Kinds the SLO applies to; empty means all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Which series the SLO covers: `requests` (the default) or `queries`.
    #[serde(default)]
    pub source: EventSource,
    /// Window pairs; pairs of the same severity form one alert that fires when any of them
    /// burns (its `severity` label tells the alerts apart).
    #[serde(default = "BurnRateWindows::workbook_defaults")]
    pub alerts: Vec<BurnRateWindows>,
}

fn default_slo_summary() -> String {
    "{name}: {service} {kind} burns its error budget at {value} over {window} and {short_window} \
     (alert above {threshold}, objective {objective})"
        .into()
}

impl SloConfig {
    /// An SLO with the workbook's three window pairs and default guards.
    pub fn new(name: &str, sli: SloIndicator, objective: f64, latency_threshold_ms: Option<f64>) -> Self {
        SloConfig {
            name: name.into(),
            sli,
            objective,
            latency_threshold_ms,
            min_events: default_min_events(),
            hysteresis: default_hysteresis(),
            for_duration: Duration::ZERO,
            summary: default_slo_summary(),
            runbook_url: None,
            labels: BTreeMap::new(),
            services: Vec::new(),
            kinds: Vec::new(),
            source: EventSource::Requests,
            alerts: BurnRateWindows::workbook_defaults(),
        }
    }

    /// 99.9 % available, and 95 % of requests under 200 ms.
    pub fn platform_defaults() -> Vec<SloConfig> {
        vec![
            SloConfig::new("AvailabilitySLO", SloIndicator::Availability, 0.999, None),
            SloConfig::new("LatencySLO", SloIndicator::Latency, 0.95, Some(200.0)),
        ]
    }
}

/// One multiwindow burn-rate condition: both windows burn faster than `burn_rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnRateWindows {
    /// Severity of the alert this pair raises.
    pub severity: Severity,
    /// Burn rate both windows must exceed: bad fraction / (1 - objective).
    pub burn_rate: f64,
    /// The long window (whole minutes, at most 7 days), e.g. `1h`.
    #[serde(with = "humantime_serde")]
    pub long_window: Duration,
    /// The short window (whole minutes, shorter than the long one), e.g. `5m`.
    #[serde(with = "humantime_serde")]
    pub short_window: Duration,
}

impl BurnRateWindows {
    /// The workbook's pairs for a 30-day budget: page at 14.4x over 1h and 5m (2 % of the budget
    /// in an hour) or 6x over 6h and 30m (5 % in six hours); ticket at 1x over 3 days and 6h.
    pub fn workbook_defaults() -> Vec<BurnRateWindows> {
        let pair = |severity, burn_rate, long: u64, short: u64| BurnRateWindows {
            severity,
            burn_rate,
            long_window: Duration::from_secs(long * 60),
            short_window: Duration::from_secs(short * 60),
        };
        vec![
            pair(Severity::Critical, 14.4, 60, 5),
            pair(Severity::Critical, 6.0, 360, 30),
            pair(Severity::Ticket, 1.0, 3 * 24 * 60, 360),
        ]
    }
}
