//! Garbage in, counted out: absurd events never reach a window.

use super::support::*;
use crate::records::RequestStatus;
use crate::sla::{DropReason, Observation, SlaConfig, SlaMonitor, SliWindow};

#[test]
fn absurd_events_are_dropped_with_their_reason_and_never_break_a_window() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let now = T0 + MINUTE;
    for i in 0..100 {
        monitor.observe(&event(&format!("ok{i}"), 40.0, RequestStatus::Ok, T0 + i * 100), now);
    }
    let cases = [
        (event("negative", -5.0, RequestStatus::Ok, T0), DropReason::NegativeLatency),
        (event("nan", f64::NAN, RequestStatus::Ok, T0), DropReason::NonFiniteLatency),
        (event("inf", f64::INFINITY, RequestStatus::Ok, T0), DropReason::NonFiniteLatency),
        (event("future", 40.0, RequestStatus::Error, now + 5 * MINUTE + 1), DropReason::FutureTimestamp),
    ];
    for (absurd, reason) in &cases {
        assert_eq!(monitor.observe(absurd, now), Observation::Dropped(*reason), "{}", absurd.id);
    }

    assert_eq!(monitor.drops().get(DropReason::NegativeLatency), 1);
    assert_eq!(monitor.drops().get(DropReason::NonFiniteLatency), 2);
    assert_eq!(monitor.drops().get(DropReason::FutureTimestamp), 1);
    assert_eq!(monitor.drops().total(), 4);
    assert_eq!(monitor.accepted(), 100);
    // The future event did not drag the stream clock (and every window) forward.
    assert_eq!(monitor.stream_time_ms(), Some(T0 + 99 * 100));
    let sli = monitor.sli(SERVICE, KIND, SliWindow::OneMinute).unwrap();
    assert_eq!((sli.events, sli.errors), (100, 0));
    assert!((sli.latency.unwrap().p99_ms - 40.0).abs() < 0.05);
}

#[test]
fn events_of_a_series_beyond_max_series_are_dropped_as_series_limit() {
    let config = SlaConfig { max_series: 1, ..SlaConfig::default() };
    let mut monitor = SlaMonitor::new(config).unwrap();
    // Two events: a busy series, which a new one may not replace.
    assert_eq!(monitor.observe(&event("a", 1.0, RequestStatus::Ok, T0), T0), Observation::Accepted);
    assert_eq!(monitor.observe(&event("a2", 1.0, RequestStatus::Ok, T0), T0), Observation::Accepted);
    let mut other = event("b", 1.0, RequestStatus::Ok, T0);
    other.kind = "inference.embed".into();
    assert_eq!(monitor.observe(&other, T0), Observation::Dropped(DropReason::SeriesLimit));
    assert_eq!(monitor.series_count(), 1);
    let labels: Vec<&str> = monitor.drops().iter().map(|(reason, _)| reason.as_str()).collect();
    assert_eq!(
        labels,
        [
            "too_late",
            "negative_latency",
            "non_finite_latency",
            "future_timestamp",
            "series_limit",
            "reserved_kind",
            "implausible_report",
            "label_too_long",
            "aggregate_event",
            "duplicate"
        ]
    );
}

#[test]
fn a_first_event_at_i64_min_is_too_old_and_live_events_after_it_are_accepted() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    assert_eq!(
        monitor.observe(&event("ancient", 1.0, RequestStatus::Ok, i64::MIN), T0),
        Observation::Dropped(DropReason::TooLate)
    );
    for i in 0..10 {
        let live = event(&format!("live{i}"), 1.0, RequestStatus::Ok, T0 + i);
        assert_eq!(monitor.observe(&live, T0 + 10), Observation::Accepted);
    }
    assert_eq!(monitor.stream_time_ms(), Some(T0 + 9));
}

#[test]
fn a_first_event_at_i64_max_is_from_the_future_and_live_events_after_it_are_accepted() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let far = event("far", 1.0, RequestStatus::Ok, i64::MAX);
    assert_eq!(monitor.observe(&far, T0), Observation::Dropped(DropReason::FutureTimestamp));
    assert_eq!(monitor.observe(&event("live", 1.0, RequestStatus::Ok, T0), T0), Observation::Accepted);
}

#[test]
fn a_service_or_kind_name_over_max_label_bytes_is_dropped_as_label_too_long() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let mut long = event("long", 1.0, RequestStatus::Ok, T0);
    long.service = "s".repeat(100_000);
    assert_eq!(monitor.observe(&long, T0), Observation::Dropped(DropReason::LabelTooLong));
    let mut long_kind = event("long-kind", 1.0, RequestStatus::Ok, T0);
    long_kind.kind = "k".repeat(129);
    assert_eq!(monitor.observe(&long_kind, T0), Observation::Dropped(DropReason::LabelTooLong));
    assert_eq!(monitor.series_count(), 0);
}

/// `count` series of one event each, `junk-<i>` services, at `at_ms`.
fn junk(monitor: &mut SlaMonitor, count: usize, at_ms: i64) {
    for i in 0..count {
        let mut one = event(&format!("junk{i}"), 1.0, RequestStatus::Ok, at_ms);
        one.service = format!("junk-{i}");
        monitor.observe(&one, at_ms);
    }
}

#[test]
fn a_table_full_of_junk_series_still_admits_a_new_service() {
    let config = SlaConfig { max_series: 500, ..SlaConfig::default() };
    let mut monitor = SlaMonitor::new(config).unwrap();
    junk(&mut monitor, 500, T0);
    assert_eq!(monitor.series_count(), 500);
    let real = event("real", 1.0, RequestStatus::Ok, T0 + 1);
    assert_eq!(monitor.observe(&real, T0 + 1), Observation::Accepted);
    assert_eq!(monitor.series_count(), 500);
    assert!(monitor.sli(SERVICE, KIND, SliWindow::OneMinute).is_some());
}

#[test]
fn a_new_series_never_pushes_out_one_with_steady_traffic() {
    let config = SlaConfig { max_series: 3, ..SlaConfig::default() };
    let mut monitor = SlaMonitor::new(config).unwrap();
    for service in ["a", "b", "c"] {
        for i in 0..3 {
            let mut busy = event(&format!("{service}{i}"), 1.0, RequestStatus::Ok, T0 + i);
            busy.service = service.into();
            monitor.observe(&busy, T0 + 3);
        }
    }
    let newcomer = event("new", 1.0, RequestStatus::Ok, T0 + 4);
    assert_eq!(monitor.observe(&newcomer, T0 + 4), Observation::Dropped(DropReason::SeriesLimit));
    for service in ["a", "b", "c"] {
        let mut next = event("next", 1.0, RequestStatus::Ok, T0 + 5);
        next.service = service.into();
        assert_eq!(monitor.observe(&next, T0 + 5), Observation::Accepted, "{service} kept its series");
    }
}

#[test]
fn one_service_cannot_take_more_than_max_series_per_service() {
    let config = SlaConfig { max_series_per_service: 2, ..SlaConfig::default() };
    let mut monitor = SlaMonitor::new(config).unwrap();
    for kind in ["k1", "k2", "k3"] {
        let mut one = event(kind, 1.0, RequestStatus::Ok, T0);
        one.kind = kind.into();
        let expected = if kind == "k3" { Observation::Dropped(DropReason::SeriesLimit) } else { Observation::Accepted };
        assert_eq!(monitor.observe(&one, T0), expected, "{kind}");
    }
    let mut other = event("other", 1.0, RequestStatus::Ok, T0);
    other.service = "another-service".into();
    assert_eq!(monitor.observe(&other, T0), Observation::Accepted, "another service still gets series");
}

#[test]
fn a_redelivered_request_counts_once_with_the_latency_its_client_saw_first() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    assert_eq!(monitor.observe(&event("r-1", 40.0, RequestStatus::Ok, T0), T0), Observation::Accepted);
    // Handled again after its partition was rewound: it completes later and slower.
    let again = event("r-1", 9_000.0, RequestStatus::Ok, T0 + 30 * SECOND);
    assert_eq!(monitor.observe(&again, T0 + 30 * SECOND), Observation::Dropped(DropReason::Duplicate));

    assert_eq!(monitor.drops().get(DropReason::Duplicate), 1);
    let sli = monitor.sli(SERVICE, KIND, SliWindow::OneMinute).unwrap();
    assert_eq!(sli.events, 1);
    assert!((sli.latency.unwrap().p99_ms - 40.0).abs() < 0.05);
}
