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
    assert_eq!(monitor.observe(&event("a", 1.0, RequestStatus::Ok, T0), T0), Observation::Accepted);
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
            "implausible_report"
        ]
    );
}
