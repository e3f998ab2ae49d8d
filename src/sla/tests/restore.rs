//! Restart safety: the alert book rebuilt from the alerts topic.

use std::time::Duration;

use super::support::*;
use crate::records::{Alert, AlertStatus, RequestStatus};
use crate::sla::{AlertBook, AlertChange, Comparison, SlaConfig, SlaMonitor, Sli, SliWindow, ThresholdRule};

fn config() -> SlaConfig {
    only_rules(vec![ThresholdRule {
        for_duration: Duration::ZERO,
        ..ThresholdRule::new("LatencyP95High", Sli::LatencyP95, Comparison::Above, 200.0, SliWindow::OneMinute)
    }])
}

/// A monitor that fired the latency alert; returns it and every message it sent.
fn fired_before_restart() -> (Scenario, Alert) {
    let mut scenario = Scenario::new(config());
    scenario.run(2 * MINUTE, 20, |_| Shape::ok(450.0));
    let alert = of(AlertChange::Fired, &scenario.transitions)[0].alert.clone();
    (scenario, alert)
}

/// A fresh monitor restored from `sent`, continuing at `clock_ms`.
fn restarted(sent: &[crate::sla::AlertTransition], config: SlaConfig, clock_ms: i64) -> Scenario {
    let book = AlertBook::restore(sent.iter().map(|transition| transition.alert.clone()));
    let mut scenario = Scenario::with_monitor(SlaMonitor::with_alert_book(config, book).unwrap());
    scenario.clock_ms = clock_ms;
    scenario
}

#[test]
fn after_a_restart_a_firing_alert_stays_the_one_firing_alert_and_a_later_recovery_resolves_it() {
    let (before, alert) = fired_before_restart();
    let mut after = restarted(&before.transitions, config(), before.clock_ms + 10 * SECOND);
    assert!(after.monitor.alert_book().is_firing(&alert.fingerprint));

    let still_breaching = after.run(3 * MINUTE, 20, |_| Shape::ok(450.0));
    assert!(of(AlertChange::Fired, &still_breaching).is_empty(), "no duplicate: {still_breaching:#?}");

    let recovery = after.run(4 * MINUTE, 20, |_| Shape::ok(80.0));
    let resolved = of(AlertChange::Resolved, &recovery);
    assert_eq!(resolved.len(), 1, "{recovery:#?}");
    assert_eq!(resolved[0].alert.fingerprint, alert.fingerprint);
    assert_eq!(resolved[0].alert.started_at, alert.started_at, "the incident keeps its start across the restart");
}

#[test]
fn a_restored_alert_is_renotified_on_the_schedule_of_its_last_message() {
    let (before, alert) = fired_before_restart();
    let mut after = restarted(&before.transitions, config(), before.clock_ms);
    let transitions = after.run(6 * MINUTE, 20, |_| Shape::ok(450.0));
    let renotified = of(AlertChange::Renotified, &transitions);
    assert_eq!(renotified.len(), 1, "{transitions:#?}");
    assert_eq!(renotified[0].alert.sent_at, alert.sent_at + 5 * MINUTE);
    assert_eq!(renotified[0].alert.started_at, alert.started_at);
}

#[test]
fn restore_keeps_only_alerts_whose_last_message_is_firing() {
    let (_, alert) = fired_before_restart();
    let resolved = Alert { status: AlertStatus::Resolved, ended_at: Some(alert.started_at + MINUTE), ..alert.clone() };
    let other = Alert { fingerprint: "0123456789abcdef".into(), ..alert.clone() };
    // At-least-once delivery may repeat messages; the last one per fingerprint wins.
    let book = AlertBook::restore([alert.clone(), alert.clone(), resolved, other.clone()]);
    assert!(!book.is_firing(&alert.fingerprint));
    assert!(book.is_firing(&other.fingerprint));
    assert_eq!(book.firing().count(), 1);
}

#[test]
fn a_restored_alert_of_a_series_not_seen_since_the_restart_is_held() {
    let (before, alert) = fired_before_restart();
    let mut after = restarted(&before.transitions, config(), before.clock_ms);
    for second in 0..(10 * 60) {
        let at = after.clock_ms + second * SECOND;
        let mut other = event(&format!("o{second}"), 5.0, RequestStatus::Ok, at);
        other.service = "api-gateway".into();
        after.monitor.observe(&other, at);
        let transitions = after.monitor.evaluate(at + PROCESSING_LAG);
        assert!(transitions.iter().all(|t| t.alert.fingerprint != alert.fingerprint), "{transitions:#?}");
    }
    // Its series may be owned by another instance, or its traffic not arrived yet.
    assert!(after.monitor.alert_book().is_firing(&alert.fingerprint));
}

#[test]
fn a_restored_alert_whose_rule_is_no_longer_configured_is_resolved() {
    let (before, alert) = fired_before_restart();
    let mut after = restarted(&before.transitions, only_rules(Vec::new()), before.clock_ms);
    let transitions = after.monitor.evaluate(before.clock_ms);
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].change, AlertChange::Resolved);
    assert_eq!(transitions[0].alert.fingerprint, alert.fingerprint);
    assert!(transitions[0].alert.summary.contains("no longer configured"), "{}", transitions[0].alert.summary);
    assert!(after.monitor.evaluate(before.clock_ms + SECOND).is_empty(), "resolved once");
}
