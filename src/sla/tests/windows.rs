//! SLIs per window: exact percentiles, counters, late events and the 6h ring.

use super::support::*;
use crate::records::{CacheLayer, RequestStatus};
use crate::sla::{DropReason, Observation, SlaConfig, SlaMonitor, SliWindow};

/// Nearest-rank percentile of raw values, the definition HDR histograms implement.
fn exact_percentile(sorted: &[f64], quantile: f64) -> f64 {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn p95_from_the_histogram_matches_the_exact_p95_of_the_raw_values_within_hdr_precision() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let mut random = Lcg(7);
    let mut raw = Vec::new();
    for i in 0..20_000 {
        // Long-tailed like real latencies: mostly 5-50 ms, some up to seconds.
        let u = random.next_unit();
        let latency_ms = (5.0 + 45.0 * random.next_unit()) * if u > 0.9 { 40.0 * u } else { 1.0 };
        let latency_ms = (latency_ms * 1000.0).round() / 1000.0; // the µs resolution events are recorded at
        raw.push(latency_ms);
        let at = T0 + i * 10; // 200 s of traffic
        monitor.observe(&event(&format!("r{i}"), latency_ms, RequestStatus::Ok, at), at);
    }
    raw.sort_by(f64::total_cmp);

    let sli = monitor.sli(SERVICE, KIND, SliWindow::FiveMinutes).unwrap();
    let latency = sli.latency.unwrap();
    assert_eq!(sli.events, 20_000);
    for (quantile, from_histogram) in [(0.5, latency.p50_ms), (0.95, latency.p95_ms), (0.99, latency.p99_ms)] {
        let exact = exact_percentile(&raw, quantile);
        // 3 significant digits: within 1 part in 1000 (HDR reports the top of the value's bucket).
        let tolerance = exact * 1e-3 + 1e-3;
        assert!(
            (from_histogram - exact).abs() <= tolerance,
            "p{} from histogram {from_histogram} vs exact {exact}",
            quantile * 100.0
        );
    }
}

#[test]
fn a_window_counts_errors_timeouts_cache_hits_and_throughput() {
    let mut scenario = Scenario::new(SlaConfig::default());
    scenario.run(5 * MINUTE, 10, |i| match i {
        0 => Shape::ok(20.0).with_status(RequestStatus::Error),
        1 => Shape::ok(20.0).with_status(RequestStatus::Timeout),
        2..=7 => Shape::ok(20.0).with_cache(CacheLayer::Redis),
        _ => Shape::ok(20.0),
    });
    let sli = scenario.monitor.sli(SERVICE, KIND, SliWindow::FiveMinutes).unwrap();
    assert_eq!(sli.events, 3_000);
    assert_eq!((sli.errors, sli.timeouts, sli.cache_hits), (300, 300, 1_800));
    assert!((sli.value(crate::sla::Sli::ErrorRate).unwrap() - 0.1).abs() < 1e-9);
    assert!((sli.value(crate::sla::Sli::CacheHitRatio).unwrap() - 0.6).abs() < 1e-9);
    assert!((sli.throughput_per_s - 10.0).abs() < 0.1, "throughput {}", sli.throughput_per_s);
}

#[test]
fn a_late_event_within_the_allowed_lateness_lands_in_the_window_of_its_own_minute() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let at = |minutes: i64, seconds: i64| T0 + minutes * MINUTE + seconds * SECOND;
    monitor.observe(&event("early", 10.0, RequestStatus::Ok, at(0, 30)), at(0, 31));
    monitor.observe(&event("head", 10.0, RequestStatus::Ok, at(3, 10)), at(3, 11));
    // 100 s behind the newest event, within the 2 min allowed: counted in minute 1.
    let late = event("late", 10.0, RequestStatus::Error, at(1, 30));
    assert_eq!(monitor.observe(&late, at(3, 12)), Observation::Accepted);

    let one_minute = monitor.sli(SERVICE, KIND, SliWindow::OneMinute).unwrap();
    let five_minutes = monitor.sli(SERVICE, KIND, SliWindow::FiveMinutes).unwrap();
    // The 1m window is minutes 2 and 3: the late error is not in it; the 5m window holds it.
    assert_eq!((one_minute.events, one_minute.errors), (1, 0));
    assert_eq!((five_minutes.events, five_minutes.errors), (3, 1));
}

#[test]
fn an_event_older_than_the_watermark_is_dropped_as_too_late() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    monitor.observe(&event("head", 10.0, RequestStatus::Ok, T0 + 10 * MINUTE), T0 + 10 * MINUTE);
    let stale = event("stale", 10.0, RequestStatus::Error, T0 + 10 * MINUTE - 2 * MINUTE - 1);
    assert_eq!(monitor.observe(&stale, T0 + 10 * MINUTE), Observation::Dropped(DropReason::TooLate));
    assert_eq!(monitor.drops().get(DropReason::TooLate), 1);
    let sli = monitor.sli(SERVICE, KIND, SliWindow::FiveMinutes).unwrap();
    assert_eq!((sli.events, sli.errors), (1, 0));
}

#[test]
fn the_six_hour_window_holds_hours_of_traffic_that_the_one_hour_window_has_let_go() {
    let mut scenario = Scenario::new(SlaConfig::default());
    scenario.evaluate_every_ms = 10 * MINUTE;
    scenario.run(3 * 3_600 * SECOND, 1, |_| Shape::ok(500.0));
    scenario.run(3_600 * SECOND, 1, |_| Shape::ok(50.0));
    let hour = scenario.monitor.sli(SERVICE, KIND, SliWindow::OneHour).unwrap();
    let six_hours = scenario.monitor.sli(SERVICE, KIND, SliWindow::SixHours).unwrap();
    assert_eq!(six_hours.events, 4 * 3_600);
    assert!(hour.events >= 3_600 && hour.events <= 3_660, "1h window holds {} events", hour.events);
    assert!(hour.latency.unwrap().p95_ms < 60.0);
    assert!(six_hours.latency.unwrap().p95_ms > 400.0);
    assert!(!six_hours.covered, "4h of history cannot cover a 6h window");
    assert!(hour.covered);
}

#[test]
fn latencies_beyond_max_latency_are_clamped_not_dropped() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let absurd = event("slow", 1e12, RequestStatus::Ok, T0);
    assert_eq!(monitor.observe(&absurd, T0), Observation::Accepted);
    let p99 = monitor.sli(SERVICE, KIND, SliWindow::OneMinute).unwrap().latency.unwrap().p99_ms;
    assert!((p99 - 3_600_000.0).abs() <= 3_600.0, "clamped to 1h, got {p99} ms");
}

#[test]
fn a_producer_whose_clock_runs_fast_does_not_make_everyone_elses_events_too_late() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let now = T0 + 10 * MINUTE;
    monitor.observe(&event("on-time", 10.0, RequestStatus::Ok, now - SECOND), now);
    // Four minutes fast: within the 5 min skew allowed, so counted, but time stays at `now`.
    let fast = event("fast", 10.0, RequestStatus::Ok, now + 4 * MINUTE);
    assert_eq!(monitor.observe(&fast, now), Observation::Accepted);
    assert_eq!(monitor.stream_time_ms(), Some(now));
    // A correct producer a little behind is still on time.
    let slightly_late = event("slightly-late", 10.0, RequestStatus::Ok, now - MINUTE);
    assert_eq!(monitor.observe(&slightly_late, now + SECOND), Observation::Accepted);
    assert_eq!(monitor.sli(SERVICE, KIND, SliWindow::FiveMinutes).unwrap().events, 2);
    // Once processing time catches up, the fast event's minute joins the windows.
    let later = T0 + 15 * MINUTE;
    monitor.observe(&event("later", 10.0, RequestStatus::Ok, later), later);
    assert_eq!(monitor.sli(SERVICE, KIND, SliWindow::FiveMinutes).unwrap().events, 2, "minutes 10-15: fast and later");
    assert_eq!(monitor.sli(SERVICE, KIND, SliWindow::OneHour).unwrap().events, 4);
}

#[test]
fn the_one_minute_window_slides_in_five_second_steps() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    monitor.observe(&event("old", 10.0, RequestStatus::Error, T0), T0);
    for (seconds, expected) in [(60, 1), (64, 1), (65, 0)] {
        let at = T0 + seconds * SECOND;
        monitor.observe(&event(&format!("at{seconds}"), 10.0, RequestStatus::Ok, at), at);
        let errors = monitor.sli(SERVICE, KIND, SliWindow::OneMinute).unwrap().errors;
        assert_eq!(errors, expected, "{seconds} s after the error");
    }
}

#[test]
fn the_thirty_second_window_holds_thirty_to_thirty_five_seconds() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    for second in 0..=40 {
        let at = T0 + second * SECOND;
        monitor.observe(&event(&format!("s{second}"), 10.0, RequestStatus::Ok, at), at);
    }
    let sli = monitor.sli(SERVICE, KIND, SliWindow::ThirtySeconds).unwrap();
    // At 40 s: the bucket of 40-44 s and the six before it, from 10 s.
    assert_eq!((sli.start_ms, sli.events), (T0 + 10 * SECOND, 31));
}

#[test]
fn an_event_stamped_ahead_of_the_processing_clock_counts_in_the_short_windows_at_once() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    monitor.observe(&event("now", 10.0, RequestStatus::Ok, T0), T0);
    // A producer whose clock runs 90 s fast: within the allowed skew, and counted now.
    let ahead = event("ahead", 10.0, RequestStatus::Error, T0 + 90 * SECOND);
    assert_eq!(monitor.observe(&ahead, T0 + SECOND), Observation::Accepted);
    for window in [SliWindow::ThirtySeconds, SliWindow::OneMinute] {
        assert_eq!(monitor.sli(SERVICE, KIND, window).unwrap().errors, 1, "{window:?}");
    }
}

#[test]
fn a_late_event_older_than_the_short_windows_still_counts_in_the_long_ones() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    monitor.observe(&event("head", 10.0, RequestStatus::Ok, T0 + 100 * SECOND), T0 + 100 * SECOND);
    // 90 s late: outside the 1m window, within the allowed lateness.
    let late = event("late", 10.0, RequestStatus::Error, T0 + 10 * SECOND);
    assert_eq!(monitor.observe(&late, T0 + 101 * SECOND), Observation::Accepted);
    assert_eq!(monitor.sli(SERVICE, KIND, SliWindow::OneMinute).unwrap().errors, 0);
    assert_eq!(monitor.sli(SERVICE, KIND, SliWindow::FiveMinutes).unwrap().errors, 1);
}
