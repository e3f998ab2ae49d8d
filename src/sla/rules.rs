//! Alert definitions compiled from the configuration, and how each judges a series: threshold
//! rules ([`RuleEvaluator`]) on a window's SLI, SLO burn-rate alerts ([`BurnRateAlert`]) on
//! per-minute good/bad counters. A judgement is a [`Verdict`]; the [`super::AlertBook`] turns
//! verdicts into state changes.

use std::collections::BTreeMap;

use super::alert::fingerprint;
use super::config::{Comparison, EventSource, SlaConfig, Sli, SliWindow, SloIndicator};
use super::series::WindowSli;
use super::slo_ring::{SloCounterRing, Tally};
use super::template::{SummaryTemplate, Unit};
use super::validate::SlaConfigError;
use crate::records::{RequestStatus, Severity};

/// How a series stands against an alert's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// The condition holds.
    Breaching,
    /// Not breaching, but not back past the hysteresis margin either (or only on a window that
    /// is not fully observed yet): a firing alert keeps firing, a pending one is dropped.
    Between,
    /// Back past the threshold by the margin, on a fully observed window.
    Recovered,
    /// Too few events to judge; `covered` says whether the window is fully observed, i.e.
    /// whether the lack of traffic is real (then a firing alert resolves) or just a monitor
    /// that restarted recently (then it holds).
    Insufficient { covered: bool },
}

/// One judgement of one alert on one series.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verdict<'d> {
    pub reading: Reading,
    /// Observed value; NaN when undefined.
    pub observed: f64,
    pub threshold: f64,
    pub unit: Unit,
    pub window: &'d str,
    pub short_window: &'d str,
    /// Events behind the judgement (the short window's, for burn rates).
    pub events: u64,
}

/// Which request ids illustrate an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExemplarKind {
    Slowest,
    Failed(Option<RequestStatus>),
}

/// A threshold rule on one SLI.
#[derive(Debug, Clone)]
pub(crate) struct RuleEvaluator {
    pub sli: Sli,
    pub comparison: Comparison,
    pub threshold: f64,
    pub window: SliWindow,
    /// Must breach too to fire; its recovery ends the alert.
    pub short_window: Option<SliWindow>,
}

/// The burn-rate window pairs of one SLO and severity.
#[derive(Debug, Clone)]
pub(crate) struct BurnRateAlert {
    /// Position of the SLO in the configuration.
    pub slo: usize,
    pub objective: f64,
    pub pairs: Vec<BurnWindowPair>,
}

/// One multiwindow condition.
#[derive(Debug, Clone)]
pub(crate) struct BurnWindowPair {
    pub burn_rate: f64,
    pub long_minutes: i64,
    pub short_minutes: i64,
    pub long_label: String,
    pub short_label: String,
}

/// What an alert checks.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    Threshold(RuleEvaluator),
    BurnRate(BurnRateAlert),
}

/// One alert as it applies to every matching series.
#[derive(Debug, Clone)]
pub(crate) struct AlertDefinition {
    pub name: String,
    pub severity: Severity,
    /// Labels besides `service` and `kind`.
    pub labels: BTreeMap<String, String>,
    pub services: Vec<String>,
    pub kinds: Vec<String>,
    pub source: EventSource,
    pub summary: SummaryTemplate,
    /// What `{sli}` shows.
    pub sli_name: &'static str,
    /// What `{objective}` shows (SLOs only).
    pub objective_text: String,
    pub runbook_url: Option<String>,
    pub for_ms: i64,
    pub min_events: u64,
    pub hysteresis: f64,
    pub exemplars: ExemplarKind,
    pub check: Check,
}

impl AlertDefinition {
    /// Every alert of a validated configuration: the rules in order, then per SLO one alert per
    /// severity (its window pairs OR-ed), most severe first.
    pub(crate) fn compile_all(config: &SlaConfig) -> Result<Vec<AlertDefinition>, SlaConfigError> {
        let mut definitions = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let summary = SummaryTemplate::parse(&rule.summary, false)
                .map_err(|message| SlaConfigError::Invalid { key: format!("rules[{i}].summary"), message })?;
            let exemplars = match rule.sli {
                Sli::ErrorRate => ExemplarKind::Failed(Some(RequestStatus::Error)),
                Sli::TimeoutRate => ExemplarKind::Failed(Some(RequestStatus::Timeout)),
                _ => ExemplarKind::Slowest,
            };
            definitions.push(AlertDefinition {
                name: rule.name.clone(),
                severity: rule.severity,
                labels: rule.labels.clone(),
                services: rule.services.clone(),
                kinds: rule.kinds.clone(),
                source: rule.source,
                summary,
                sli_name: rule.sli.describe(),
                objective_text: String::new(),
                runbook_url: rule.runbook_url.clone(),
                for_ms: millis(rule.for_duration),
                min_events: rule.min_events,
                hysteresis: rule.hysteresis,
                exemplars,
                check: Check::Threshold(RuleEvaluator {
                    sli: rule.sli,
                    comparison: rule.comparison,
                    threshold: rule.threshold,
                    window: rule.window,
                    short_window: rule.short_window,
                }),
            });
        }
        for (i, slo) in config.slos.iter().enumerate() {
            let summary = SummaryTemplate::parse(&slo.summary, true)
                .map_err(|message| SlaConfigError::Invalid { key: format!("slos[{i}].summary"), message })?;
            let mut severities: Vec<Severity> = slo.alerts.iter().map(|pair| pair.severity).collect();
            severities.sort();
            severities.dedup();
            for severity in severities {
                let pairs = slo
                    .alerts
                    .iter()
                    .filter(|pair| pair.severity == severity)
                    .map(|pair| BurnWindowPair {
                        burn_rate: pair.burn_rate,
                        long_minutes: minutes(pair.long_window),
                        short_minutes: minutes(pair.short_window),
                        long_label: duration_label(minutes(pair.long_window)),
                        short_label: duration_label(minutes(pair.short_window)),
                    })
                    .collect();
                let mut labels = slo.labels.clone();
                labels.insert("severity".into(), severity.as_str().into());
                definitions.push(AlertDefinition {
                    name: slo.name.clone(),
                    severity,
                    labels,
                    services: slo.services.clone(),
                    kinds: slo.kinds.clone(),
                    source: slo.source,
                    summary: summary.clone(),
                    sli_name: match slo.sli {
                        SloIndicator::Availability => "availability",
                        SloIndicator::Latency => "latency",
                    },
                    objective_text: Unit::Fraction.format(slo.objective),
                    runbook_url: slo.runbook_url.clone(),
                    for_ms: millis(slo.for_duration),
                    min_events: slo.min_events,
                    hysteresis: slo.hysteresis,
                    exemplars: match slo.sli {
                        SloIndicator::Availability => ExemplarKind::Failed(None),
                        SloIndicator::Latency => ExemplarKind::Slowest,
                    },
                    check: Check::BurnRate(BurnRateAlert { slo: i, objective: slo.objective, pairs }),
                });
            }
        }
        Ok(definitions)
    }

    /// Whether the alert covers this series.
    pub(crate) fn applies_to(&self, service: &str, kind: &str) -> bool {
        self.source == source_of(kind) && selected(&self.services, service) && selected(&self.kinds, kind)
    }

    /// The alert's labels for a series.
    pub(crate) fn labels_for(&self, service: &str, kind: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("service".into(), service.into());
        labels.insert("kind".into(), kind.into());
        labels
    }

    /// The alert's fingerprint for a series.
    pub(crate) fn fingerprint_for(&self, service: &str, kind: &str) -> String {
        fingerprint(&self.name, &self.labels_for(service, kind))
    }
}

impl RuleEvaluator {
    /// Judges the rule's window and, when it has one, its short window: both must breach to
    /// fire, and the short one recovered ends the alert.
    pub(crate) fn judge_windows<'d>(
        &'d self,
        long: &WindowSli,
        short: Option<&WindowSli>,
        definition: &AlertDefinition,
    ) -> Verdict<'d> {
        let mut verdict = self.judge(long, definition);
        if let (Reading::Breaching, Some(short)) = (verdict.reading, short) {
            verdict.reading = match self.judge(short, definition).reading {
                Reading::Breaching => Reading::Breaching,
                Reading::Recovered => Reading::Recovered,
                Reading::Between | Reading::Insufficient { .. } => Reading::Between,
            };
        }
        verdict
    }

    /// Judges one window's SLI.
    pub(crate) fn judge<'d>(&'d self, sli: &WindowSli, definition: &AlertDefinition) -> Verdict<'d> {
        let value = sli.value(self.sli);
        let margin = self.threshold.abs() * definition.hysteresis;
        let reading = match value {
            _ if sli.events < definition.min_events => Reading::Insufficient { covered: sli.covered },
            None => Reading::Insufficient { covered: sli.covered },
            Some(v) => {
                // A breach must hold for the whole confidence interval (see CONFIDENCE_Z), so
                // a small sample's noise cannot fire; recovery is judged on the value itself.
                let (low, high) = sli.bounds(self.sli).unwrap_or((v, v));
                let (breaching, recovered) = match self.comparison {
                    Comparison::Above => (low > self.threshold, v <= self.threshold - margin),
                    Comparison::Below => (high < self.threshold, v >= self.threshold + margin),
                };
                // A window not fully observed (after a restart) may prove a breach, but not a
                // recovery: the part it has not seen may still be bad.
                if breaching {
                    Reading::Breaching
                } else if recovered && sli.covered {
                    Reading::Recovered
                } else {
                    Reading::Between
                }
            }
        };
        Verdict {
            reading,
            observed: value.unwrap_or(f64::NAN),
            threshold: self.threshold,
            unit: match self.sli {
                Sli::LatencyP50 | Sli::LatencyP95 | Sli::LatencyP99 => Unit::Milliseconds,
                Sli::Throughput => Unit::PerSecond,
                Sli::ErrorRate | Sli::TimeoutRate | Sli::CacheHitRatio => Unit::Fraction,
            },
            window: self.window.label(),
            short_window: "",
            events: sli.events,
        }
    }
}

/// A window's burn rate and whether it is fully observed.
struct WindowBurn {
    burn: f64,
    covered: bool,
}

impl BurnRateAlert {
    /// Judges the SLO's counters of one series at stream time `now_ms`.
    pub(crate) fn judge<'d>(
        &'d self,
        ring: &SloCounterRing,
        now_ms: i64,
        filled_since_ms: i64,
        definition: &AlertDefinition,
    ) -> Verdict<'d> {
        let budget = 1.0 - self.objective;
        // A window not fully observed yet (a fresh or restarted monitor) is judged on the part
        // it has seen, as Prometheus computes a ratio over the samples it has, once that part
        // spans at least the pair's short window: the evidence the pair asks for. A monitor
        // restarted mid-burn then pages again after one short window (5 m for the fast pair)
        // instead of a whole long one. Before that, unseen time counts as good traffic at the
        // seen rate, a lower bound, so an hour of history cannot raise a three-day ticket.
        // `covered` alone decides whether a window may prove a recovery.
        let burn_of = |tally: Tally, evidence_ms: i64| {
            let covered = filled_since_ms <= tally.start_ms;
            let fraction = if tally.events == 0 { 0.0 } else { tally.bad as f64 / tally.events as f64 };
            let seen_ms = (now_ms - tally.start_ms.max(filled_since_ms)).max(0);
            let seen_share = if covered || seen_ms >= evidence_ms {
                1.0
            } else {
                seen_ms as f64 / (now_ms - tally.start_ms).max(1) as f64
            };
            WindowBurn { burn: fraction * seen_share / budget, covered }
        };
        let mut best: Option<(Reading, &BurnWindowPair, f64, u64)> = None;
        for pair in &self.pairs {
            let long_tally = ring.tally(now_ms, pair.long_minutes);
            let short_tally = ring.tally(now_ms, pair.short_minutes);
            let evidence_ms = pair.short_minutes * 60_000;
            let (long, short) = (burn_of(long_tally, evidence_ms), burn_of(short_tally, evidence_ms));
            let resolve_below = pair.burn_rate * (1.0 - definition.hysteresis);
            let reading = if short_tally.events < definition.min_events || short_tally.events == 0 {
                Reading::Insufficient { covered: long.covered }
            } else if long.burn > pair.burn_rate && short.burn > pair.burn_rate {
                Reading::Breaching
            } else if (long.covered || short.covered) && (long.burn <= resolve_below || short.burn <= resolve_below) {
                // Either window low enough ends the burn. Unobserved time counts as good, as for
                // breaches, but only once one window is fully observed: right after a restart a
                // restored alert holds until there is evidence either way.
                Reading::Recovered
            } else {
                Reading::Between
            };
            let strength = long.burn / pair.burn_rate;
            let replace = match &best {
                None => true,
                Some((current, _, current_strength, _)) => {
                    (precedence(reading), strength) > (precedence(*current), *current_strength)
                }
            };
            if replace {
                best = Some((reading, pair, strength, short_tally.events));
            }
        }
        match best {
            Some((reading, pair, strength, events)) => Verdict {
                reading,
                observed: strength * pair.burn_rate,
                threshold: pair.burn_rate,
                unit: Unit::BurnRate,
                window: &pair.long_label,
                short_window: &pair.short_label,
                events,
            },
            // Validation guarantees at least one pair; without one there is nothing to judge.
            None => Verdict {
                reading: Reading::Insufficient { covered: false },
                observed: f64::NAN,
                threshold: f64::NAN,
                unit: Unit::BurnRate,
                window: "",
                short_window: "",
                events: 0,
            },
        }
    }
}

/// Which pair's reading decides an alert of several pairs: any breach, else any pair still in
/// its hysteresis band, else a window not yet observed (hold), else recovery, and only when no
/// pair has data at all, the lack of it.
fn precedence(reading: Reading) -> u8 {
    match reading {
        Reading::Breaching => 4,
        Reading::Between => 3,
        Reading::Insufficient { covered: false } => 2,
        Reading::Recovered => 1,
        Reading::Insufficient { covered: true } => 0,
    }
}

/// Kinds of database series start with this (`db:analytics`); request events may not use it.
pub(crate) const QUERY_KIND_PREFIX: &str = "db:";

/// Which events a series of this kind is made of.
pub(crate) fn source_of(kind: &str) -> EventSource {
    if kind.starts_with(QUERY_KIND_PREFIX) { EventSource::Queries } else { EventSource::Requests }
}

/// Whether `value` passes a selector list (empty selects everything).
pub(crate) fn selected(allowed: &[String], value: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|allowed| allowed == value)
}

use crate::clock::duration_millis as millis;

fn minutes(duration: std::time::Duration) -> i64 {
    millis(duration) / 60_000
}

/// `5m`, `6h`, `3d`: the largest unit that divides the length.
pub(crate) fn duration_label(minutes: i64) -> String {
    if minutes % 1440 == 0 {
        format!("{}d", minutes / 1440)
    } else if minutes % 60 == 0 {
        format!("{}h", minutes / 60)
    } else {
        format!("{minutes}m")
    }
}
