//! Signal rules as configured (`[[workers.sla.monitor.signals]]`), with the platform defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::records::Severity;
use crate::sla::config::Comparison;
use crate::sla::template::Unit;

/// A gauge judged per subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Messages a consumer group is behind: the sum over its instances' fresh statuses. Per group.
    ConsumerLag,
    /// Resident memory over the memory limit (0..1). Per instance.
    MemoryUtilization,
    /// CPU used over the cores available (0..1). Per instance.
    CpuUtilization,
    /// Open file descriptors over the limit (0..1). Per instance.
    FdUtilization,
    /// 1 while the autoscaler's latest decision has the group at `max_instances` with its lag
    /// still growing, else 0. Per group.
    AutoscaleSaturation,
    /// Scale-up and scale-down decisions within `autoscale_action_window`. Per group.
    AutoscaleActions,
    /// 1 while the autoscaler's latest decision finds the group stuck (STALL or STOP: messages
    /// wait and no offset moves), else 0. Per group.
    AutoscaleStuck,
    /// Slow, heavy or regressed statement shapes the query analyzer found in its latest judged
    /// window (`frontier.db.slow-queries`). Per database; fresh for a window plus
    /// `signal_stale_after` after the finding, so a database whose statements recover resolves.
    SlowStatements,
    /// Messages a consumer group dead-lettered within `dead_letter_window` (undecodable,
    /// hostile or rejected input): the sum of its instances' status reports. Per group; a count
    /// over a window is never stale.
    DeadLetters,
}

impl Signal {
    /// Human name used in summaries.
    pub fn describe(self) -> &'static str {
        match self {
            Signal::ConsumerLag => "consumer lag",
            Signal::MemoryUtilization => "memory use",
            Signal::CpuUtilization => "CPU use",
            Signal::FdUtilization => "file descriptor use",
            Signal::AutoscaleSaturation => "autoscaling saturation",
            Signal::AutoscaleActions => "scaling actions",
            Signal::AutoscaleStuck => "a stuck consumer group",
            Signal::SlowStatements => "slow statements",
            Signal::DeadLetters => "dead letters",
        }
    }

    /// The name in configs and metric labels, e.g. `consumer_lag`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::ConsumerLag => "consumer_lag",
            Signal::MemoryUtilization => "memory_utilization",
            Signal::CpuUtilization => "cpu_utilization",
            Signal::FdUtilization => "fd_utilization",
            Signal::AutoscaleSaturation => "autoscale_saturation",
            Signal::AutoscaleActions => "autoscale_actions",
            Signal::AutoscaleStuck => "autoscale_stuck",
            Signal::SlowStatements => "slow_statements",
            Signal::DeadLetters => "dead_letters",
        }
    }

    /// Whether the signal is about a consumer group (else about one worker instance or, for
    /// slow statements, one database).
    pub fn per_group(self) -> bool {
        matches!(
            self,
            Signal::ConsumerLag
                | Signal::AutoscaleSaturation
                | Signal::AutoscaleActions
                | Signal::AutoscaleStuck
                | Signal::DeadLetters
        )
    }

    pub(crate) fn unit(self) -> Unit {
        match self {
            Signal::ConsumerLag | Signal::AutoscaleActions | Signal::SlowStatements | Signal::DeadLetters => {
                Unit::Count
            }
            Signal::AutoscaleSaturation | Signal::AutoscaleStuck => Unit::Flag,
            Signal::MemoryUtilization | Signal::CpuUtilization | Signal::FdUtilization => Unit::Fraction,
        }
    }
}

/// A threshold rule on a signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRule {
    /// Alert name, unique across rules, SLOs and signals.
    pub name: String,
    /// The gauge compared.
    pub signal: Signal,
    /// Which side of `threshold` is a breach.
    pub comparison: Comparison,
    /// Threshold in the signal's unit: messages, a fraction 0..1, or a count of actions.
    pub threshold: f64,
    /// How long (processing time) the breach must hold before the alert fires.
    #[serde(rename = "for", with = "humantime_serde", default = "default_for")]
    pub for_duration: Duration,
    /// Fraction of the threshold the value must come back past before a firing alert resolves.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: f64,
    /// Severity of the alert.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// One-line summary; placeholders: {name} {subject} {sli} {value} {comparison} {threshold}
    /// {window} {severity}. `{subject}` reads `group frontier.serve` or `serve on host-42`.
    #[serde(default = "default_summary")]
    pub summary: String,
    /// Runbook link (http or https).
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// Extra labels (part of the fingerprint); `group`, `service`, `instance`, `kind` and
    /// `severity` are reserved.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_for() -> Duration {
    Duration::from_secs(120)
}
fn default_hysteresis() -> f64 {
    0.05
}
fn default_severity() -> Severity {
    Severity::Warning
}
fn default_summary() -> String {
    "{sli} of {subject} is {value}, {comparison} {threshold}".into()
}

impl SignalRule {
    /// A rule with the default `for`, hysteresis, severity and summary.
    pub fn new(name: &str, signal: Signal, comparison: Comparison, threshold: f64) -> Self {
        SignalRule {
            name: name.into(),
            signal,
            comparison,
            threshold,
            for_duration: default_for(),
            hysteresis: default_hysteresis(),
            severity: default_severity(),
            summary: default_summary(),
            runbook_url: None,
            labels: BTreeMap::new(),
        }
    }

    /// The platform's defaults: a group 10,000 messages behind for 5 minutes; an instance above
    /// 90 % of its memory or descriptors for 5 minutes (critical: the next step is an OOM kill
    /// or refused connections), or 95 % CPU for 10; a group at its maximum size and still
    /// falling behind for 5 minutes (critical: scaling cannot fix it); and a group scaled 6 or
    /// more times within the action window (flapping: its thresholds need tuning); and a
    /// database with a slow, heavy or regressed statement in the query analyzer's latest window
    /// (its finding carries the statement and the index advice follows on its own topic); and a
    /// group that dead-lettered any message within the dead-letter window (the input someone
    /// sent was dropped: garbage, an attack or a producer on the wrong schema).
    pub fn platform_defaults() -> Vec<SignalRule> {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let lag = SignalRule {
            for_duration: minutes(5),
            ..SignalRule::new("ConsumerLagHigh", Signal::ConsumerLag, Comparison::Above, 10_000.0)
        };
        let memory = SignalRule {
            for_duration: minutes(5),
            severity: Severity::Critical,
            ..SignalRule::new("MemoryExhaustion", Signal::MemoryUtilization, Comparison::Above, 0.9)
        };
        let descriptors = SignalRule {
            for_duration: minutes(5),
            severity: Severity::Critical,
            ..SignalRule::new("FileDescriptorExhaustion", Signal::FdUtilization, Comparison::Above, 0.9)
        };
        let cpu = SignalRule {
            for_duration: minutes(10),
            ..SignalRule::new("CpuSaturated", Signal::CpuUtilization, Comparison::Above, 0.95)
        };
        let saturated = SignalRule {
            for_duration: minutes(5),
            severity: Severity::Critical,
            summary: "{subject} is at its maximum instances and still falling behind".into(),
            ..SignalRule::new("AutoscaleAtMaxInstances", Signal::AutoscaleSaturation, Comparison::Above, 0.5)
        };
        let flapping = SignalRule {
            for_duration: Duration::ZERO,
            hysteresis: 0.0,
            summary: "{subject} was scaled {value} times in {window}, {comparison} {threshold}".into(),
            ..SignalRule::new("AutoscaleFlapping", Signal::AutoscaleActions, Comparison::Above, 5.0)
        };
        let stuck = SignalRule {
            for_duration: minutes(1),
            severity: Severity::Critical,
            summary:
                "{subject} is stuck (STALL or STOP: messages wait and no offset moves); the autoscaler holds its size"
                    .into(),
            ..SignalRule::new("AutoscaleGroupStuck", Signal::AutoscaleStuck, Comparison::Above, 0.5)
        };
        let slow_statements = SignalRule {
            for_duration: Duration::ZERO,
            hysteresis: 0.0,
            summary: "{subject} has {value} slow statement(s) in the query analyzer's latest window".into(),
            ..SignalRule::new("SlowStatements", Signal::SlowStatements, Comparison::Above, 0.5)
        };
        let dead_letters = SignalRule {
            for_duration: Duration::ZERO,
            hysteresis: 0.0,
            summary: "{subject} dead-lettered {value} message(s) in {window}: they are on the dead-letter topic with their reasons"
                .into(),
            ..SignalRule::new("MessagesDeadLettered", Signal::DeadLetters, Comparison::Above, 0.5)
        };
        vec![lag, memory, descriptors, cpu, saturated, flapping, stuck, slow_statements, dead_letters]
    }
}
