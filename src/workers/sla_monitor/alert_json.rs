//! An alert as Alertmanager labels and annotates it, shared by the webhook (its notification
//! format) and the Alertmanager poster (its API), so both describe an alert the same way.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::records::Alert;

/// The labels that identify the alert (the set its fingerprint is made of, plus `alertname`
/// and `severity`) and the annotations that describe it.
pub(super) fn labels_and_annotations(alert: &Alert) -> (BTreeMap<String, String>, Map<String, Value>) {
    let mut labels = alert.labels.clone();
    labels.insert("alertname".into(), alert.name.clone());
    labels.insert("severity".into(), alert.severity.as_str().into());
    let mut annotations = Map::new();
    annotations.insert("summary".into(), json!(alert.summary));
    if let Some(url) = &alert.runbook_url {
        annotations.insert("runbook_url".into(), json!(url));
    }
    annotations.insert("observed_value".into(), json!(format!("{}", alert.observed_value)));
    annotations.insert("threshold".into(), json!(format!("{}", alert.threshold)));
    annotations.insert("window".into(), json!(alert.window));
    if !alert.exemplars.is_empty() {
        annotations.insert("exemplars".into(), json!(alert.exemplars.join(",")));
    }
    (labels, annotations)
}

/// Milliseconds since the epoch as RFC 3339. Alert times are event times already checked
/// against the clock; anything else is clamped to the range RFC 3339 can write (years 1970 to
/// 9999) rather than panic on it.
pub(super) fn rfc3339(epoch_ms: i64) -> String {
    const LAST_MS: u64 = 253_402_300_799_000;
    let ms = u64::try_from(epoch_ms).unwrap_or(0).min(LAST_MS);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
