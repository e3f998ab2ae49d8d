//! SLO counters across a restart: checkpoints written by one monitor, restored by the next.

use super::support::*;
use crate::records::{RequestStatus, Severity};
use crate::sla::{AlertChange, AlertTransition, SlaConfig, SlaMonitor, SloConfig, SloIndicator};

fn availability_only() -> SlaConfig {
    SlaConfig {
        rules: Vec::new(),
        slos: vec![SloConfig::new("AvailabilitySLO", SloIndicator::Availability, 0.999, None)],
        ..SlaConfig::default()
    }
}

/// One request in a hundred fails: ten times the budget of 99.9 %, a slow burn (6x over 6h and
/// 30m pages, 14.4x over 1h and 5m does not).
fn slow_burn(i: u32) -> Shape {
    Shape::ok(20.0).with_status(if i.is_multiple_of(100) { RequestStatus::Error } else { RequestStatus::Ok })
}

fn slow_burn_pages(transitions: &[AlertTransition]) -> Vec<&AlertTransition> {
    of(AlertChange::Fired, transitions)
        .into_iter()
        .filter(|t| t.alert.severity == Severity::Critical && t.alert.window == "6h")
        .collect()
}

/// A monitor that has watched an hour of slow burn (and paged for it), as it stops.
fn an_hour_of_slow_burn() -> Scenario {
    let mut before = Scenario::new(availability_only());
    before.evaluate_every_ms = 10 * SECOND;
    let transitions = before.run(60 * MINUTE, 100, slow_burn);
    assert_eq!(slow_burn_pages(&transitions).len(), 1, "{transitions:#?}");
    before
}

/// A new monitor at the same stream time, with no alert history, restored from `checkpoints`.
fn successor(checkpoints: Vec<crate::records::SloCounters>, clock_ms: i64) -> Scenario {
    let mut monitor = SlaMonitor::new(availability_only()).unwrap();
    monitor.restore_slo_counters(checkpoints, clock_ms);
    let mut after = Scenario::with_monitor(monitor);
    after.clock_ms = clock_ms;
    after.evaluate_every_ms = 10 * SECOND;
    after
}

#[test]
fn a_monitor_restored_from_checkpoints_pages_on_a_slow_burn_at_once_where_a_fresh_one_waits() {
    let mut before = an_hour_of_slow_burn();
    let checkpoints = before.monitor.checkpoint(before.clock_ms);

    let mut restored = successor(checkpoints, before.clock_ms);
    let transitions = restored.run(2 * MINUTE, 100, slow_burn);
    assert_eq!(slow_burn_pages(&transitions).len(), 1, "restored: {transitions:#?}");

    // Without the counters the 30m short window must first be seen whole.
    let mut fresh = successor(Vec::new(), before.clock_ms);
    let transitions = fresh.run(10 * MINUTE, 100, slow_burn);
    assert!(slow_burn_pages(&transitions).is_empty(), "fresh: {transitions:#?}");
}

#[test]
fn checkpoints_delivered_twice_restore_the_same_counts() {
    let mut before = an_hour_of_slow_burn();
    let checkpoints = before.monitor.checkpoint(before.clock_ms);
    let twice: Vec<_> = checkpoints.iter().chain(checkpoints.iter()).cloned().collect();

    let mut once = successor(checkpoints, before.clock_ms);
    let mut again = successor(twice, before.clock_ms);
    once.run(SECOND, 10, slow_burn);
    again.run(SECOND, 10, slow_burn);
    assert_eq!(once.monitor.burn_rates(), again.monitor.burn_rates());
    let hour = once.monitor.burn_rates().into_iter().find(|r| r.window == "1h").unwrap();
    assert!((hour.burn_rate - 10.0).abs() < 0.5, "the hour before the restart burns at 10x: {hour:?}");
}

#[test]
fn a_restored_series_whose_events_go_to_another_instance_is_never_judged_here() {
    let mut before = an_hour_of_slow_burn();
    let checkpoints = before.monitor.checkpoint(before.clock_ms);
    let mut after = successor(checkpoints, before.clock_ms);
    for second in 0..(10 * 60) {
        let at = after.clock_ms + second * SECOND;
        let mut other = event(&format!("o{second}"), 5.0, RequestStatus::Ok, at);
        other.service = "api-gateway".into();
        after.monitor.observe(&other, at);
        let transitions = after.monitor.evaluate(at + PROCESSING_LAG);
        assert!(transitions.is_empty(), "{transitions:#?}");
    }
    assert_eq!(after.monitor.series_count(), 1, "only the series whose events came");
}

#[test]
fn a_checkpoint_holds_the_hours_that_changed_since_the_last_one() {
    let mut monitor = SlaMonitor::new(availability_only()).unwrap();
    assert!(monitor.checkpoint(T0).is_empty());
    // T0 is a whole hour: one event in its last minute, one in the next hour's first.
    let (late, early) = (T0 + 59 * MINUTE + 30 * SECOND, T0 + 60 * MINUTE + 10 * SECOND);
    monitor.observe(&event("a", 5.0, RequestStatus::Error, late), late);
    monitor.observe(&event("b", 5.0, RequestStatus::Ok, early), early);
    let records = monitor.checkpoint(early);
    let hours: Vec<(i64, i32, i64, i64)> = records
        .iter()
        .map(|r| {
            (r.hour_start - T0, r.slos[0].minutes[0].minute, r.slos[0].minutes[0].events, r.slos[0].minutes[0].bad)
        })
        .collect();
    assert_eq!(hours, vec![(0, 59, 1, 1), (60 * MINUTE, 0, 1, 0)]);
    assert!(monitor.checkpoint(early + SECOND).is_empty(), "nothing changed since");
    monitor.observe(&event("c", 5.0, RequestStatus::Ok, early + SECOND), early + SECOND);
    let records = monitor.checkpoint(early + 2 * SECOND);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].slos[0].minutes[0].events, 2, "an hour's record is its whole count");
}
