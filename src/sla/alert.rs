//! The monitor's output: alert state changes (`schemas/alert.avsc`) and their fingerprints.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One alert message for `frontier.alerts` (`frontier.sla.Alert`): field for field the schema,
/// so `SchemaCatalog::encode(&alert_schema, &alert)` writes it and `Inbound::deserialize`
/// reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: [`fingerprint`] of `name` and `labels`; the Kafka message key.
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

/// Why an alert message is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertChange {
    /// The alert started firing (after its `for` duration).
    Fired,
    /// It is still firing and `renotify_interval` has passed since the last message.
    Renotified,
    /// It stopped firing.
    Resolved,
}

/// One alert message to produce, and why. Produce `alert` to `frontier.alerts` with
/// [`AlertTransition::key`] as the message key.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    /// What changed.
    pub change: AlertChange,
    /// The message itself.
    pub alert: Alert,
}

impl AlertTransition {
    /// The Kafka message key: the fingerprint, so all messages of one alert share a partition.
    pub fn key(&self) -> &[u8] {
        self.alert.fingerprint.as_bytes()
    }
}

/// Stable id of an alert: 64-bit FNV-1a over the rule name and the labels sorted by key, as 16
/// lowercase hex digits.
///
/// FNV-1a is spelled out here rather than taken from `std::hash`: std's hashers are seeded at
/// random per process and their output is not guaranteed across Rust releases, while a
/// fingerprint must be equal in every process and every release (it keys the alerts topic and
/// [`crate::sla::AlertBook::restore`] matches on it). Each string is framed by its length so
/// `{"ab": "c"}` and `{"a": "bc"}` cannot collide by concatenation.
pub fn fingerprint(name: &str, labels: &BTreeMap<String, String>) -> String {
    let mut hash = Fnv1a::new();
    hash.write_framed(name.as_bytes());
    // BTreeMap iterates in key order: the labels are hashed sorted without another sort.
    for (key, value) in labels {
        hash.write_framed(key.as_bytes());
        hash.write_framed(value.as_bytes());
    }
    format!("{:016x}", hash.0)
}

/// 64-bit FNV-1a (Fowler–Noll–Vo), http://www.isthe.com/chongo/tech/comp/fnv/.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a(Self::OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(Self::PRIME);
        }
    }

    fn write_framed(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }
}

#[cfg(test)]
mod fnv_tests {
    use super::Fnv1a;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        for (input, expected) in
            [("", 0xcbf2_9ce4_8422_2325_u64), ("a", 0xaf63_dc4c_8601_ec8c), ("foobar", 0x8594_4171_f739_67e8)]
        {
            let mut hash = Fnv1a::new();
            hash.write(input.as_bytes());
            assert_eq!(hash.0, expected, "FNV-1a 64 of {input:?}");
        }
    }
}
