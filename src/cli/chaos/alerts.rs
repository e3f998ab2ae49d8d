//! The alerts the SLA monitor sent during a scenario, placed in time against its fault.

use std::time::Instant;

use super::report::AlertSeen;
use crate::records::{Alert, AlertStatus};

/// The alerts firing at or after the fault, each with when it fired and resolved.
pub(super) fn seen_alerts(log: &[(Instant, Alert)], fault: Instant) -> Vec<AlertSeen> {
    let mut seen: Vec<(String, AlertSeen)> = Vec::new();
    for (at, alert) in log {
        // Negative: before the fault (the steady load's own latency on a busy machine), told
        // apart from what the fault raised.
        let after = match at.checked_duration_since(fault) {
            Some(since) => since.as_secs_f64(),
            None => -fault.duration_since(*at).as_secs_f64(),
        };
        let known = seen.iter().position(|(fp, _)| *fp == alert.fingerprint);
        if alert.status == AlertStatus::Resolved && after < 0.0 {
            // Over before the fault: nothing to do with it.
            if let Some(index) = known {
                seen.remove(index);
            }
            continue;
        }
        let index = match known {
            Some(index) => index,
            None => {
                if alert.status != AlertStatus::Firing {
                    continue;
                }
                let labels: Vec<String> = alert.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                seen.push((
                    alert.fingerprint.clone(),
                    AlertSeen {
                        name: alert.name.clone(),
                        labels: labels.join(","),
                        fired_after_s: after,
                        resolved_after_s: None,
                    },
                ));
                seen.len() - 1
            }
        };
        seen[index].1.resolved_after_s = (alert.status == AlertStatus::Resolved).then_some(after);
    }
    seen.into_iter().map(|(_, a)| a).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::records::Severity;

    fn alert(fingerprint: &str, status: AlertStatus) -> Alert {
        Alert {
            fingerprint: fingerprint.into(),
            name: "LatencyP95High".into(),
            severity: Severity::Warning,
            status,
            labels: BTreeMap::from([("service".to_owned(), "serve".to_owned())]),
            observed_value: 0.5,
            threshold: 0.2,
            window: "5m".into(),
            started_at: 0,
            ended_at: None,
            summary: String::new(),
            runbook_url: None,
            exemplars: Vec::new(),
            sent_at: 0,
        }
    }

    #[test]
    fn an_alert_firing_before_the_fault_is_told_apart_by_a_negative_time() {
        let fault = Instant::now();
        let log = [
            (fault - Duration::from_secs(12), alert("a", AlertStatus::Firing)),
            (fault + Duration::from_secs(30), alert("a", AlertStatus::Resolved)),
        ];
        let seen = seen_alerts(&log, fault);
        assert_eq!(seen.len(), 1);
        assert!((seen[0].fired_after_s + 12.0).abs() < 0.01, "{seen:?}");
        assert_eq!(seen[0].resolved_after_s.map(f64::round), Some(30.0));
    }

    #[test]
    fn an_alert_over_before_the_fault_is_left_out_and_a_later_firing_counts_afresh() {
        let fault = Instant::now();
        let log = [
            (fault - Duration::from_secs(20), alert("a", AlertStatus::Firing)),
            (fault - Duration::from_secs(5), alert("a", AlertStatus::Resolved)),
            (fault + Duration::from_secs(4), alert("a", AlertStatus::Firing)),
        ];
        let seen = seen_alerts(&log, fault);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].fired_after_s.round(), 4.0);
        assert_eq!(seen[0].resolved_after_s, None);
    }
}
