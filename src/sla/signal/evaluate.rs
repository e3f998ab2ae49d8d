//! Judging signal rules: every rule on every subject its signal has, through the alert book.

use super::board::{Subject, Windows};
use super::config::{Signal, SignalRule};
use crate::records::Alert;
use crate::sla::alert::{AlertTransition, fingerprint};
use crate::sla::book::StepContext;
use crate::sla::config::Comparison;
use crate::sla::monitor::SlaMonitor;
use crate::sla::rules::{Reading, duration_label};
use crate::sla::template::{SummaryTemplate, SummaryValues, relation};

/// A signal rule ready to judge.
#[derive(Debug, Clone)]
pub(crate) struct SignalDefinition {
    pub rule: SignalRule,
    pub summary: SummaryTemplate,
}

impl SignalDefinition {
    /// Every signal rule of a validated configuration, in order.
    pub(crate) fn compile_all(
        config: &crate::sla::SlaConfig,
    ) -> Result<Vec<SignalDefinition>, crate::sla::SlaConfigError> {
        config
            .signals
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let summary = SummaryTemplate::parse(&rule.summary, false).map_err(|message| {
                    crate::sla::SlaConfigError::Invalid { key: format!("signals[{i}].summary"), message }
                })?;
                Ok(SignalDefinition { rule: rule.clone(), summary })
            })
            .collect()
    }

    /// The alert's fingerprint for a subject.
    pub(crate) fn fingerprint_for(&self, subject: &Subject) -> String {
        fingerprint(&self.rule.name, &self.labels_for(subject))
    }

    fn labels_for(&self, subject: &Subject) -> std::collections::BTreeMap<String, String> {
        let mut labels = self.rule.labels.clone();
        labels.extend(subject.labels());
        labels
    }

    fn reading(&self, value: Option<f64>) -> Reading {
        let Some(value) = value else { return Reading::Insufficient { covered: true } };
        let rule = &self.rule;
        let margin = rule.threshold.abs() * rule.hysteresis;
        let (breaching, recovered) = match rule.comparison {
            Comparison::Above => (value > rule.threshold, value <= rule.threshold - margin),
            Comparison::Below => (value < rule.threshold, value >= rule.threshold + margin),
        };
        if breaching {
            Reading::Breaching
        } else if recovered {
            Reading::Recovered
        } else {
            Reading::Between
        }
    }
}

impl SlaMonitor {
    /// Judges every signal rule on every subject, at processing time `now_ms` (signals are
    /// gauges of the present, so `for` and freshness run on the monitor's clock).
    pub(crate) fn evaluate_signals(&mut self, now_ms: i64, out: &mut Vec<AlertTransition>) {
        let stale_ms = crate::sla::monitor::millis(self.config.signal_stale_after);
        let windows = self.signal_windows();
        for definition in &self.signal_definitions {
            let rule = &definition.rule;
            let window = match rule.signal {
                Signal::AutoscaleActions => duration_label(windows.actions_ms / 60_000),
                Signal::DeadLetters => duration_label(windows.dead_letters_ms / 60_000),
                _ => "now".to_string(),
            };
            for (subject, value) in self.signals.values(rule.signal, now_ms, stale_ms, windows) {
                let fingerprint = definition.fingerprint_for(&subject);
                let reading = definition.reading(value);
                let context = StepContext {
                    stream_ms: now_ms,
                    now_ms,
                    for_ms: crate::sla::monitor::millis(rule.for_duration),
                    renotify_ms: self.renotify_ms,
                    generation: self.generation,
                };
                let observed = value.unwrap_or(f64::NAN);
                let build = |emission: crate::sla::book::Emission| {
                    let unit = rule.signal.unit();
                    let describe = subject.describe();
                    let values = SummaryValues {
                        name: &rule.name,
                        service: "",
                        kind: "",
                        subject: &describe,
                        sli: rule.signal.describe(),
                        value: unit.format(observed),
                        comparison: relation(observed, rule.threshold),
                        threshold: unit.format(rule.threshold),
                        window: &window,
                        short_window: "",
                        objective: String::new(),
                        severity: rule.severity.as_str(),
                    };
                    let mut summary = definition.summary.render(&values);
                    if value.is_none() {
                        summary.push_str(" (resolved: no fresh report)");
                    }
                    Alert {
                        fingerprint: fingerprint.clone(),
                        name: rule.name.clone(),
                        severity: rule.severity,
                        status: emission.status,
                        labels: definition.labels_for(&subject),
                        observed_value: observed,
                        threshold: rule.threshold,
                        window: window.clone(),
                        started_at: emission.started_at_ms,
                        ended_at: emission.ended_at_ms,
                        summary,
                        runbook_url: rule.runbook_url.clone(),
                        exemplars: Vec::new(),
                        sent_at: emission.sent_at_ms,
                    }
                };
                if let Some(transition) = self.book.step(&fingerprint, reading, context, build) {
                    out.push(transition);
                }
            }
        }
        let forget_ms = stale_ms.saturating_mul(5);
        let book = &self.book;
        let definitions = &self.signal_definitions;
        self.signals.prune(now_ms, forget_ms, windows, |subject| {
            definitions.iter().any(|definition| book.is_active(&definition.fingerprint_for(subject)))
        });
    }

    /// Every signal's value per subject now, as `(signal, subject labels, value)`; NaN for a
    /// subject whose reports went stale. For gauges: the same figures the rules judge.
    pub fn signal_values(&self, now_ms: i64) -> Vec<(Signal, std::collections::BTreeMap<String, String>, f64)> {
        let stale_ms = crate::sla::monitor::millis(self.config.signal_stale_after);
        let windows = self.signal_windows();
        let signals = [
            Signal::ConsumerLag,
            Signal::MemoryUtilization,
            Signal::CpuUtilization,
            Signal::FdUtilization,
            Signal::AutoscaleSaturation,
            Signal::AutoscaleActions,
            Signal::AutoscaleStuck,
            Signal::SlowStatements,
            Signal::DeadLetters,
        ];
        signals
            .into_iter()
            .flat_map(|signal| {
                self.signals
                    .values(signal, now_ms, stale_ms, windows)
                    .into_iter()
                    .map(move |(subject, value)| (signal, subject.labels(), value.unwrap_or(f64::NAN)))
            })
            .collect()
    }

    /// The windows of the signals that count over one, from the configuration.
    fn signal_windows(&self) -> Windows {
        Windows {
            actions_ms: crate::sla::monitor::millis(self.config.autoscale_action_window),
            dead_letters_ms: crate::sla::monitor::millis(self.config.dead_letter_window),
        }
    }

    /// Whether a firing alert that no evaluation judged belongs to a signal rule whose subject
    /// this monitor has not heard from: held, like a series not seen since a restart (another
    /// monitor instance may own it).
    pub(crate) fn signal_alert_held(&self, alert: &Alert) -> Option<bool> {
        let definition = self.signal_definitions.iter().find(|definition| definition.rule.name == alert.name)?;
        let subject = Subject::from_labels(&alert.labels)?;
        let still_defined = definition.fingerprint_for(&subject) == alert.fingerprint;
        Some(still_defined && !self.signals.knows(&subject))
    }
}
