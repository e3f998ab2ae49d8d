//! Database statements: their own series, judged only by rules for queries.

use super::support::*;
use crate::records::RequestStatus;
use crate::records::{QueryEvent, QueryStatus};
use crate::sla::{AlertChange, DropReason, Observation, SlaConfig, SlaMonitor, SliWindow};

fn statement(id: u64, status: QueryStatus, at_ms: i64) -> QueryEvent {
    QueryEvent {
        id: format!("q{id}"),
        sql: "SELECT close FROM prices WHERE symbol = $1".into(),
        fingerprint: None,
        duration_ms: if status == QueryStatus::Timeout { 5_000.0 } else { 3.0 },
        rows: 250,
        database: "frontier".into(),
        application: "serve".into(),
        status,
        error: None,
        occurred_at: at_ms,
        calls: 1,
    }
}

/// Runs `minutes` of 2 statements a second, one in `timeout_every` timing out.
fn run_statements(monitor: &mut SlaMonitor, minutes: i64, timeout_every: u64) -> Vec<crate::sla::AlertTransition> {
    let mut transitions = Vec::new();
    let mut id = 0;
    for second in 0..minutes * 60 {
        for half in 0..2 {
            id += 1;
            let status = if id % timeout_every == 0 { QueryStatus::Timeout } else { QueryStatus::Ok };
            let at = T0 + second * SECOND + half * 500;
            monitor.observe_query(&statement(id, status, at), at + PROCESSING_LAG);
        }
        transitions.extend(monitor.evaluate(T0 + (second + 1) * SECOND + PROCESSING_LAG));
    }
    transitions
}

#[test]
fn statements_timing_out_fire_the_db_query_timeouts_rule_on_their_own_series() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let transitions = run_statements(&mut monitor, 10, 20);

    let fired: Vec<_> = transitions.iter().filter(|t| t.change == AlertChange::Fired).collect();
    let names: Vec<&str> = fired.iter().map(|t| t.alert.name.as_str()).collect();
    // 5 % of statements time out; slow ones (5 s) do not trip request rules, and no cache-hit
    // rule judges a database series.
    assert_eq!(names, ["DbQueryTimeouts"], "{fired:#?}");
    let alert = &fired[0].alert;
    assert_eq!(alert.labels["service"], "serve");
    assert_eq!(alert.labels["kind"], "db:frontier");
    assert!((alert.observed_value - 0.05).abs() < 0.01, "{}", alert.observed_value);
    assert!(alert.summary.starts_with("serve statements on db:frontier time out at 4."), "{}", alert.summary);
    assert!(alert.summary.ends_with("above 1% over 1m"), "{}", alert.summary);
    let sli = monitor.sli("serve", "db:frontier", SliWindow::FiveMinutes).unwrap();
    assert!(sli.timeouts > 0);
}

#[test]
fn statements_that_rarely_time_out_do_not_page() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let transitions = run_statements(&mut monitor, 10, 500);
    assert!(transitions.is_empty(), "{transitions:#?}");
}

#[test]
fn a_request_event_in_the_database_namespace_is_dropped_as_reserved_kind() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let mut request = event("r1", 10.0, RequestStatus::Ok, T0);
    request.kind = "db:frontier".into();
    assert_eq!(monitor.observe(&request, T0), Observation::Dropped(DropReason::ReservedKind));
    assert_eq!(monitor.series_count(), 0);
}

#[test]
fn a_collected_interval_is_the_analyzers_and_not_counted_as_one_statement() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let mut interval = statement(1, QueryStatus::Ok, T0);
    interval.calls = 500;
    assert_eq!(monitor.observe_query(&interval, T0), Observation::Dropped(DropReason::AggregateEvent));
}
