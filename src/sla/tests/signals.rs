//! Signals: consumer lag, resource exhaustion and autoscaling, per group or instance.

use std::time::Duration;

use super::support::*;
use crate::records::{
    AlertStatus, AutoscaleDecision, PartitionHealth, ScaleAction, SlowQueryFinding, SlowQueryKind, WorkerStatus,
};
use crate::sla::{
    AlertBook, AlertChange, Comparison, DropReason, Observation, Signal, SignalRule, SlaConfig, SlaMonitor,
};

fn status(instance: &str, lag: i64, rss_fraction: f64, at_ms: i64) -> WorkerStatus {
    WorkerStatus {
        service: "serve".into(),
        instance: instance.into(),
        consumer_group: Some("frontier.serve".into()),
        consumer_lag: Some(lag),
        rss_bytes: Some((rss_fraction * 1e9) as i64),
        memory_limit_bytes: Some(1_000_000_000),
        cpu_utilization: Some(0.3),
        open_fds: Some(100),
        max_fds: Some(1024),
        occurred_at: at_ms,
        busy_share: None,
        dead_lettered: None,
    }
}

fn decision(action: ScaleAction, current: i32, lag_rate: f64, at_ms: i64) -> AutoscaleDecision {
    AutoscaleDecision {
        id: format!("d{at_ms}"),
        consumer_group: "frontier.serve".into(),
        topic: "frontier.requests".into(),
        total_lag: 50_000,
        lag_rate_per_s: lag_rate,
        current_instances: current,
        desired_instances: if action == ScaleAction::ScaleUp { (current + 1).min(20) } else { current },
        min_instances: 2,
        max_instances: 20,
        action,
        reason: "test".into(),
        decided_at: at_ms,
        health: PartitionHealth::Ok,
    }
}

fn only_signals(signals: Vec<SignalRule>) -> SlaConfig {
    SlaConfig { rules: Vec::new(), slos: Vec::new(), signals, ..SlaConfig::default() }
}

/// Feeds one status per instance every 10 s for `seconds`, evaluating every second.
fn report(
    monitor: &mut SlaMonitor,
    from_ms: i64,
    seconds: i64,
    statuses: impl Fn(i64) -> Vec<WorkerStatus>,
) -> Vec<crate::sla::AlertTransition> {
    let mut transitions = Vec::new();
    for second in 0..seconds {
        let now = from_ms + second * SECOND;
        if second % 10 == 0 {
            for status in statuses(now) {
                monitor.observe_status(status, now);
            }
        }
        transitions.extend(monitor.evaluate(now));
    }
    transitions
}

#[test]
fn consumer_lag_is_summed_over_a_groups_instances_and_fires_after_its_for_duration() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    // Each instance is 6,000 behind: neither alone passes 10,000, the group does.
    let transitions =
        report(&mut monitor, T0, 6 * 60, |now| vec![status("a-1", 6_000, 0.2, now), status("b-2", 6_000, 0.2, now)]);

    let fired: Vec<_> = transitions.iter().filter(|t| t.change == AlertChange::Fired).collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    let alert = &fired[0].alert;
    assert_eq!(alert.name, "ConsumerLagHigh");
    assert_eq!(alert.labels.get("group").map(String::as_str), Some("frontier.serve"));
    assert_eq!(alert.observed_value, 12_000.0);
    // Default `for` is 5 minutes of processing time.
    assert!(alert.started_at >= T0 + 5 * MINUTE && alert.started_at <= T0 + 5 * MINUTE + 10 * SECOND);
    assert_eq!(alert.summary, "consumer lag of group frontier.serve is 12000, above 10000");
}

#[test]
fn an_instance_near_its_memory_limit_fires_memory_exhaustion_and_recovers() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let high = report(&mut monitor, T0, 6 * 60, |now| vec![status("a-1", 0, 0.95, now), status("b-2", 0, 0.5, now)]);
    let fired: Vec<_> = high.iter().filter(|t| t.change == AlertChange::Fired).collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].alert.name, "MemoryExhaustion");
    assert_eq!(fired[0].alert.labels.get("instance").map(String::as_str), Some("a-1"));

    let low = report(&mut monitor, T0 + 6 * MINUTE, 30, |now| vec![status("a-1", 0, 0.5, now)]);
    let resolved: Vec<_> = low.iter().filter(|t| t.change == AlertChange::Resolved).collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].alert.status, AlertStatus::Resolved);
}

#[test]
fn a_silent_instance_loses_its_evidence_and_its_alert_resolves() {
    let rule = SignalRule {
        for_duration: Duration::ZERO,
        ..SignalRule::new("Mem", Signal::MemoryUtilization, Comparison::Above, 0.9)
    };
    let mut monitor = SlaMonitor::new(only_signals(vec![rule])).unwrap();
    let fired = report(&mut monitor, T0, 5, |now| vec![status("a-1", 0, 0.95, now)]);
    assert_eq!(fired.len(), 1);
    // No report for longer than signal_stale_after (60 s by default).
    let later = report(&mut monitor, T0 + 5 * SECOND, 70, |_| Vec::new());
    assert_eq!(later.len(), 1, "{later:#?}");
    assert_eq!(later[0].change, AlertChange::Resolved);
    assert!(later[0].alert.summary.ends_with("(resolved: no fresh report)"), "{}", later[0].alert.summary);
}

#[test]
fn a_group_at_max_instances_and_still_falling_behind_fires_autoscale_at_max() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let mut transitions = Vec::new();
    for second in 0..6 * 60 {
        let now = T0 + second * SECOND;
        if second % 15 == 0 {
            monitor.observe_decision(decision(ScaleAction::Hold, 20, 300.0, now), now);
        }
        transitions.extend(monitor.evaluate(now));
    }
    let fired: Vec<_> = transitions.iter().filter(|t| t.change == AlertChange::Fired).collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].alert.name, "AutoscaleAtMaxInstances");
    assert_eq!(fired[0].alert.severity, crate::records::Severity::Critical);
    assert_eq!(fired[0].alert.summary, "group frontier.serve is at its maximum instances and still falling behind");
}

#[test]
fn a_group_the_autoscaler_finds_stalled_fires_autoscale_group_stuck_and_resolves_when_it_moves() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let mut transitions = Vec::new();
    for second in 0..4 * 60 {
        let now = T0 + second * SECOND;
        if second % 5 == 0 {
            // Stalled for the first two minutes, then moving again.
            let health = if second < 120 { PartitionHealth::Stall } else { PartitionHealth::Ok };
            monitor.observe_decision(AutoscaleDecision { health, ..decision(ScaleAction::Hold, 4, 0.0, now) }, now);
        }
        transitions.extend(monitor.evaluate(now));
    }
    let changes: Vec<_> = transitions.iter().map(|t| (t.alert.name.as_str(), t.change)).collect();
    assert_eq!(changes, [("AutoscaleGroupStuck", AlertChange::Fired), ("AutoscaleGroupStuck", AlertChange::Resolved)]);
    assert_eq!(transitions[0].alert.severity, crate::records::Severity::Critical);
    assert_eq!(
        transitions[0].alert.summary,
        "group frontier.serve is stuck (STALL or STOP: messages wait and no offset moves); the autoscaler holds its size"
    );
}

#[test]
fn a_group_scaled_up_and_down_six_times_in_half_an_hour_is_flapping() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let mut transitions = Vec::new();
    for step in 0..6 {
        let now = T0 + step * 2 * MINUTE;
        let action = if step % 2 == 0 { ScaleAction::ScaleUp } else { ScaleAction::ScaleDown };
        monitor.observe_decision(decision(action, 5, 0.0, now), now);
        transitions.extend(monitor.evaluate(now));
    }
    let fired: Vec<_> = transitions.iter().filter(|t| t.change == AlertChange::Fired).collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].alert.name, "AutoscaleFlapping");
    assert_eq!(fired[0].alert.observed_value, 6.0);
    assert_eq!(fired[0].alert.window, "30m");
    // Half an hour after the last action the count is back to zero and the alert resolves.
    let later = monitor.evaluate(T0 + 10 * MINUTE + 30 * MINUTE + SECOND);
    assert_eq!(later.iter().filter(|t| t.change == AlertChange::Resolved).count(), 1, "{later:#?}");
}

#[test]
fn implausible_reports_are_dropped_with_a_reason() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let mut negative = status("a-1", -5, 0.2, T0);
    assert_eq!(monitor.observe_status(negative.clone(), T0), Observation::Dropped(DropReason::ImplausibleReport));
    negative.consumer_lag = Some(5);
    negative.max_fds = Some(0);
    assert_eq!(monitor.observe_status(negative, T0), Observation::Dropped(DropReason::ImplausibleReport));
    let future = status("a-1", 5, 0.2, T0 + 10 * MINUTE);
    assert_eq!(monitor.observe_status(future, T0), Observation::Dropped(DropReason::FutureTimestamp));
    let mut inverted = decision(ScaleAction::Hold, 3, 0.0, T0);
    inverted.min_instances = 30;
    assert_eq!(monitor.observe_decision(inverted, T0), Observation::Dropped(DropReason::ImplausibleReport));
}

#[test]
fn a_restored_signal_alert_is_held_until_its_subject_reports_then_judged() {
    let rule = SignalRule {
        for_duration: Duration::ZERO,
        ..SignalRule::new("Mem", Signal::MemoryUtilization, Comparison::Above, 0.9)
    };
    let mut first = SlaMonitor::new(only_signals(vec![rule.clone()])).unwrap();
    let fired = report(&mut first, T0, 1, |now| vec![status("a-1", 0, 0.95, now)]);
    assert_eq!(fired.len(), 1);

    let book = AlertBook::restore(fired.iter().map(|t| t.alert.clone()));
    let mut restarted = SlaMonitor::with_alert_book(only_signals(vec![rule]), book).unwrap();
    // Nothing heard yet: neither resolved nor re-fired.
    assert!(restarted.evaluate(T0 + 30 * SECOND).is_empty());
    // Still high: one firing alert, no new `fired`.
    let again = report(&mut restarted, T0 + 31 * SECOND, 5, |now| vec![status("a-1", 0, 0.95, now)]);
    assert!(again.iter().all(|t| t.change != AlertChange::Fired), "{again:#?}");
    assert_eq!(restarted.alert_book().firing().count(), 1);
}

fn finding(database: &str, window_start: i64, window_findings: i32, at_ms: i64) -> SlowQueryFinding {
    SlowQueryFinding {
        id: format!("f{window_start}"),
        kind: SlowQueryKind::Slow,
        database: database.into(),
        fingerprint: "abc".into(),
        sql: "SELECT * FROM orders WHERE customer = $1".into(),
        parsed: true,
        window_start,
        window_end: window_start + 60 * SECOND,
        calls: 150,
        errors: 0,
        total_ms: 4_500.0,
        mean_ms: 30.0,
        p95_ms: 35.0,
        p99_ms: 40.0,
        rows: 150,
        time_share: 0.6,
        baseline_mean_ms: None,
        window_findings,
        detected_at: at_ms,
    }
}

#[test]
fn a_slow_statement_finding_pages_for_its_database_and_resolves_when_findings_stop() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    // Findings of three consecutive minute windows, each published 10 s after its window.
    let mut transitions = Vec::new();
    for minute in 0..3 {
        let at = T0 + minute * 60 * SECOND + 70 * SECOND;
        monitor.observe_finding(finding("shop", at - 70 * SECOND, 2, at), at);
        for second in 0..60 {
            transitions.extend(monitor.evaluate(at + second * SECOND));
        }
    }
    let fired: Vec<_> = transitions.iter().filter(|t| t.change == AlertChange::Fired).collect();
    assert_eq!(fired.len(), 1, "one alert across the windows: {transitions:#?}");
    assert_eq!(fired[0].alert.name, "SlowStatements");
    assert_eq!(fired[0].alert.labels.get("database").map(String::as_str), Some("shop"));
    assert_eq!(fired[0].alert.observed_value, 2.0);
    assert!(transitions.iter().all(|t| t.change != AlertChange::Resolved), "no gap between windows resolved it");

    // No finding for a window plus the staleness: the database recovered.
    let last = T0 + 2 * 60 * SECOND + 70 * SECOND;
    let later: Vec<_> = (60..200).flat_map(|s| monitor.evaluate(last + s * SECOND)).collect();
    let resolved: Vec<_> = later.iter().filter(|t| t.change == AlertChange::Resolved).collect();
    assert_eq!(resolved.len(), 1, "{later:#?}");
}

#[test]
fn dead_letters_of_a_groups_instances_fire_at_once_and_resolve_a_window_after_the_last() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let with = |instance: &str, dead: i64, now: i64| WorkerStatus {
        dead_lettered: Some(dead),
        ..status(instance, 0, 0.2, now)
    };
    // A clean minute, then 3 and 4 dead letters in one report each, then none again.
    let quiet = report(&mut monitor, T0, 60, |now| vec![with("a-1", 0, now), with("b-2", 0, now)]);
    assert!(quiet.is_empty(), "{quiet:#?}");
    let poisoned = report(&mut monitor, T0 + MINUTE, 10, |now| vec![with("a-1", 3, now), with("b-2", 4, now)]);
    let fired: Vec<_> = poisoned.iter().filter(|t| t.change == AlertChange::Fired).collect();
    assert_eq!(fired.len(), 1, "one alert for the group: {poisoned:#?}");
    let alert = &fired[0].alert;
    assert_eq!(alert.name, "MessagesDeadLettered");
    assert_eq!(alert.labels.get("group").map(String::as_str), Some("frontier.serve"));
    assert_eq!(alert.observed_value, 7.0);
    assert_eq!(alert.started_at, T0 + MINUTE, "no `for`: a dead letter is news at once");
    assert_eq!(
        alert.summary,
        "group frontier.serve dead-lettered 7 message(s) in 5m: they are on the dead-letter topic with their reasons"
    );

    // Still firing within the 5 minute window, resolved once it passes the last dead letter.
    let clean = |now| vec![with("a-1", 0, now), with("b-2", 0, now)];
    let within = report(&mut monitor, T0 + MINUTE + 10 * SECOND, 4 * 60, clean);
    assert!(within.iter().all(|t| t.change != AlertChange::Resolved), "{within:#?}");
    let after = report(&mut monitor, T0 + 5 * MINUTE + 10 * SECOND, 60, clean);
    let resolved: Vec<_> = after.iter().filter(|t| t.change == AlertChange::Resolved).collect();
    assert_eq!(resolved.len(), 1, "{after:#?}");
    assert_eq!(resolved[0].alert.ended_at, Some(T0 + 6 * MINUTE), "a window after the last dead letter");
}

#[test]
fn a_worker_too_old_to_report_dead_letters_counts_as_none() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let transitions = report(&mut monitor, T0, 60, |now| vec![status("a-1", 0, 0.2, now)]);
    assert!(transitions.is_empty(), "{transitions:#?}");
    let values = monitor.signal_values(T0 + MINUTE);
    let dead = values.iter().find(|(signal, _, _)| *signal == Signal::DeadLetters).expect("a dead_letters value");
    assert_eq!(dead.2, 0.0);
}
