//! `alert.avsc`: an alert state change, on `frontier.alerts`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One alert message for `frontier.alerts` (`frontier.sla.Alert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: `crate::sla::fingerprint` of `name` and `labels`; the Kafka message key.
    pub fingerprint: String,
    /// Name of the rule (or SLO) that raised it.
    pub name: String,
    /// How urgent it is.
    pub severity: Severity,
    /// Firing or resolved, as of `sent_at`.
    pub status: AlertStatus,
    /// Dimensions: `service`, `kind`, the rule's own labels, and `severity` for SLO alerts.
    pub labels: BTreeMap<String, String>,
    /// The metric over the window, in the unit of `threshold`; NaN when the window had no value
    /// (an alert resolved for lack of traffic).
    pub observed_value: f64,
    /// The value the metric was compared against.
    pub threshold: f64,
    /// The window the metric was computed over (`5m`, `1h`; the long window of a burn-rate pair).
    pub window: String,
    /// Event time at which the alert started firing, ms since the epoch.
    pub started_at: i64,
    /// Event time at which it resolved; `None` while firing.
    pub ended_at: Option<i64>,
    /// One human-readable line.
    pub summary: String,
    /// What the responder should read, if the rule names a runbook.
    pub runbook_url: Option<String>,
    /// Ids of example requests: the slowest in the window, or the latest failed ones.
    pub exemplars: Vec<String>,
    /// Processing time at which this message was produced, ms since the epoch.
    pub sent_at: i64,
}

/// How urgent an alert is; serialized as the schema's lowercase symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Page someone now.
    Critical,
    /// Look soon.
    Warning,
    /// File a ticket.
    Ticket,
    /// No action needed.
    Info,
}

impl Severity {
    /// The schema symbol, e.g. `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Ticket => "ticket",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of an alert as of `sent_at`; serialized as `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition stopped holding (or its traffic went away).
    Resolved,
}
