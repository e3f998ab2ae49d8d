//! SLO burn-rate alerts (Google SRE workbook, ch. 5): fast burns page, slow ones do not.

use super::support::*;
use crate::records::{RequestStatus, Severity};
use crate::sla::{AlertChange, SlaConfig, SloConfig, SloIndicator};

fn availability_only() -> SlaConfig {
    SlaConfig {
        rules: Vec::new(),
        slos: vec![SloConfig::new("AvailabilitySLO", SloIndicator::Availability, 0.999, None)],
        ..SlaConfig::default()
    }
}

/// A scenario with six hours of clean traffic behind it, so both page pairs' windows are fully
/// observed.
fn warmed_up(config: SlaConfig) -> Scenario {
    let mut scenario = Scenario::new(config);
    scenario.evaluate_every_ms = 10 * SECOND;
    assert!(scenario.run(365 * MINUTE, 10, |_| Shape::ok(20.0)).is_empty());
    scenario
}

/// The pages among `transitions` of one kind: the tests here are about the page pairs (with
/// less than three days of history the ticket pair may fire beside them, judged on what it saw).
fn pages(change: AlertChange, transitions: &[crate::sla::AlertTransition]) -> Vec<&crate::sla::AlertTransition> {
    of(change, transitions).into_iter().filter(|t| t.alert.severity == Severity::Critical).collect()
}

/// Every `every`-th event fails.
fn failing_one_in(every: u64) -> impl FnMut(u32) -> Shape {
    let mut count = 0_u64;
    move |_| {
        count += 1;
        Shape::ok(20.0).with_status(if count.is_multiple_of(every) { RequestStatus::Error } else { RequestStatus::Ok })
    }
}

#[test]
fn a_fast_burn_pages_within_minutes() {
    let mut scenario = warmed_up(availability_only());
    let burn_began = scenario.clock_ms;
    // Half the requests fail: burn rate 500, the budget of 30 days gone in under 1.5 hours.
    let transitions = scenario.run(5 * MINUTE, 10, failing_one_in(2));
    let fired = pages(AlertChange::Fired, &transitions);
    assert_eq!(fired.len(), 1, "{transitions:#?}");
    let alert = &fired[0].alert;
    assert_eq!((alert.name.as_str(), alert.severity), ("AvailabilitySLO", Severity::Critical));
    assert_eq!(alert.labels.get("severity").map(String::as_str), Some("critical"));
    assert_eq!((alert.window.as_str(), alert.threshold), ("1h", 14.4));
    assert!(alert.observed_value > 14.4);
    assert!(alert.started_at - burn_began <= 3 * MINUTE, "paged after {} s", (alert.started_at - burn_began) / 1000);
    assert!(!alert.exemplars.is_empty(), "failed requests are the exemplars");
    assert!(alert.summary.contains("over 1h and 5m"), "{}", alert.summary);
}

#[test]
fn a_slow_burn_does_not_page() {
    let mut scenario = warmed_up(availability_only());
    // One request in 200 fails: burn rate 5, under both page thresholds (14.4 and 6).
    let transitions = scenario.run(60 * MINUTE, 10, failing_one_in(200));
    let pages: Vec<_> = transitions.iter().filter(|t| t.alert.severity == Severity::Critical).collect();
    assert!(pages.is_empty(), "{pages:#?}");
}

#[test]
fn a_burn_rate_page_resolves_once_the_short_window_is_clean() {
    let mut scenario = warmed_up(availability_only());
    // 150 s at burn rate 500 pages through the 1h/5m pair, yet spends too little budget for
    // the 6h/30m pair (which would rightly keep paging for half an hour).
    let fired = scenario.run(150 * SECOND, 10, failing_one_in(2));
    let fingerprint = pages(AlertChange::Fired, &fired)[0].alert.fingerprint.clone();
    // The 1h window still burns (~20x), but the 5m window is clean after six minutes.
    let recovery = scenario.run(8 * MINUTE, 10, |_| Shape::ok(20.0));
    let resolved = pages(AlertChange::Resolved, &recovery);
    assert_eq!(resolved.len(), 1, "{recovery:#?}");
    assert_eq!(resolved[0].alert.fingerprint, fingerprint);
}

#[test]
fn a_latency_slo_pages_when_too_many_requests_are_slower_than_its_threshold() {
    let config = SlaConfig {
        rules: Vec::new(),
        slos: vec![SloConfig::new("LatencySLO", SloIndicator::Latency, 0.999, Some(200.0))],
        ..SlaConfig::default()
    };
    let mut scenario = warmed_up(config);
    let mut slow = false;
    let transitions = scenario.run(5 * MINUTE, 10, |_| {
        slow = !slow;
        Shape::ok(if slow { 350.0 } else { 20.0 })
    });
    let fired = pages(AlertChange::Fired, &transitions);
    assert_eq!(fired.len(), 1, "{transitions:#?}");
    assert_eq!(fired[0].alert.name, "LatencySLO");
}

#[test]
fn a_monitor_restarted_mid_burn_pages_once_it_has_seen_a_short_window() {
    // No history, a modest burn (rate 20): after five minutes the fast pair has the evidence
    // it asks for, and the hour is judged on what was seen.
    let mut cold = Scenario::new(availability_only());
    cold.evaluate_every_ms = 10 * SECOND;
    let transitions = cold.run(6 * MINUTE, 10, failing_one_in(50));
    let fired = of(AlertChange::Fired, &transitions);
    assert_eq!(fired.len(), 1, "{transitions:#?}");
    assert_eq!((fired[0].alert.severity, fired[0].alert.window.as_str()), (Severity::Critical, "1h"));
}

#[test]
fn before_a_short_window_is_seen_unseen_time_counts_as_good_traffic() {
    // The same burn for four minutes: 20 * 4/60 of the hour is certain, under 14.4.
    let mut cold = Scenario::new(availability_only());
    cold.evaluate_every_ms = 10 * SECOND;
    let transitions = cold.run(4 * MINUTE, 10, failing_one_in(50));
    assert!(of(AlertChange::Fired, &transitions).is_empty(), "{transitions:#?}");
}

#[test]
fn an_hour_of_history_cannot_raise_a_three_day_ticket() {
    // An hour with a tenth of the budget's worth of failures (burn 2): the ticket pair's 6h
    // short window has not been seen, so it stays a lower bound (2 * 1/6), under 1.
    let mut cold = Scenario::new(availability_only());
    cold.evaluate_every_ms = 10 * SECOND;
    let transitions = cold.run(60 * MINUTE, 10, failing_one_in(500));
    assert!(of(AlertChange::Fired, &transitions).is_empty(), "{transitions:#?}");
}
