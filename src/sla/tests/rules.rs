//! Threshold rules: pending, firing, hysteresis, volume guard, re-notification, resolution.

use std::time::Duration;

use super::support::*;
use crate::records::{AlertStatus, CacheLayer, RequestStatus, Severity};
use crate::sla::{AlertChange, Comparison, Sli, SliWindow, ThresholdRule};

fn p95_rule() -> ThresholdRule {
    ThresholdRule {
        for_duration: Duration::from_secs(60),
        runbook_url: Some("https://runbooks.example/latency".into()),
        ..ThresholdRule::new("LatencyP95High", Sli::LatencyP95, Comparison::Above, 200.0, SliWindow::OneMinute)
    }
}

#[test]
fn a_latency_breach_fires_once_its_window_crosses_the_threshold_and_a_recovery_resolves_it() {
    let mut scenario = Scenario::new(only_rules(vec![p95_rule()]));
    assert!(scenario.run(3 * MINUTE, 20, |_| Shape::ok(80.0)).is_empty(), "healthy traffic raises nothing");

    // Every request slow: the 1m window crosses 200 ms within seconds, then `for` (1m) runs.
    let breach = scenario.run(3 * MINUTE, 20, |_| Shape::ok(450.0));
    let fired = of(AlertChange::Fired, &breach);
    assert_eq!(fired.len(), 1, "{breach:#?}");
    let alert = &fired[0].alert;
    assert_eq!(alert.status, AlertStatus::Firing);
    assert_eq!(alert.name, "LatencyP95High");
    assert_eq!(alert.severity, Severity::Warning);
    assert!((alert.observed_value - 450.0).abs() < 1.0, "observed {}", alert.observed_value);
    assert_eq!(alert.threshold, 200.0);
    assert_eq!(alert.window, "1m");
    assert_eq!(alert.labels.get("service").map(String::as_str), Some(SERVICE));
    assert_eq!(alert.labels.get("kind").map(String::as_str), Some(KIND));
    assert_eq!(alert.runbook_url.as_deref(), Some("https://runbooks.example/latency"));
    assert_eq!(alert.ended_at, None);
    assert_eq!(alert.summary, "p95 latency of analysis-worker portfolio.risk is 450.0 ms, above 200.0 ms over 1m");
    // Fired a minute (the `for`) after the window crossed, not at the first slow request.
    let breach_began = T0 + 3 * MINUTE;
    assert!(alert.started_at >= breach_began + MINUTE && alert.started_at < breach_began + 2 * MINUTE);

    let recovery = scenario.run(3 * MINUTE, 20, |_| Shape::ok(80.0));
    let resolved = of(AlertChange::Resolved, &recovery);
    assert_eq!(resolved.len(), 1, "{recovery:#?}");
    assert_eq!(resolved[0].alert.fingerprint, alert.fingerprint);
    assert_eq!(resolved[0].alert.status, AlertStatus::Resolved);
    assert_eq!(resolved[0].alert.started_at, alert.started_at);
    assert!(resolved[0].alert.ended_at.is_some_and(|ended| ended > alert.started_at));
    assert!(!scenario.monitor.alert_book().is_firing(&alert.fingerprint));
}

#[test]
fn the_slowest_requests_of_the_window_are_the_exemplars() {
    let mut scenario = Scenario::new(only_rules(vec![p95_rule()]));
    let fired = scenario.run(3 * MINUTE, 20, |i| Shape::ok(if i == 7 { 900.0 + f64::from(i) } else { 450.0 }));
    let alert = &of(AlertChange::Fired, &fired)[0].alert;
    assert_eq!(alert.exemplars.len(), 5);
    // One request in twenty is the slow outlier: ids 8, 28, 48, ...: all exemplars are outliers.
    for id in &alert.exemplars {
        let n: u64 = id.trim_start_matches("req-").parse().unwrap();
        assert_eq!(n % 20, 8, "exemplar {id} is not one of the slowest requests");
    }
}

#[test]
fn a_pending_breach_that_does_not_hold_for_its_duration_never_fires() {
    let rule = ThresholdRule { for_duration: Duration::from_secs(300), ..p95_rule() };
    let mut scenario = Scenario::new(only_rules(vec![rule]));
    scenario.run(2 * MINUTE, 20, |_| Shape::ok(80.0));
    scenario.run(2 * MINUTE, 20, |_| Shape::ok(450.0));
    let fingerprint = crate::sla::fingerprint("LatencyP95High", &labels());
    assert!(scenario.monitor.alert_book().is_pending(&fingerprint));
    assert!(scenario.run(3 * MINUTE, 20, |_| Shape::ok(80.0)).is_empty());
    assert!(!scenario.monitor.alert_book().is_pending(&fingerprint));
}

fn labels() -> std::collections::BTreeMap<String, String> {
    [("kind", KIND), ("service", SERVICE)].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn a_noisy_series_hovering_around_the_threshold_does_not_flap() {
    let rule = ThresholdRule { for_duration: Duration::ZERO, ..p95_rule() };
    let mut scenario = Scenario::new(only_rules(vec![rule]));
    let mut random = Lcg(11);
    let mut calls = 0_u64;
    let mut p95_seen = Vec::new();
    // Latencies alternate each half minute between 186-198 ms and 192-204 ms, so the window's
    // p95 wanders across 200 ms but never drops to the 190 ms the 5 % hysteresis asks for.
    for _ in 0..(20 * 6) {
        scenario.run(10 * SECOND, 20, |_| {
            calls += 1;
            let low = if (calls / (20 * 30)).is_multiple_of(2) { 186.0 } else { 192.0 };
            Shape::ok(low + 12.0 * random.next_unit())
        });
        p95_seen.push(scenario.monitor.sli(SERVICE, KIND, SliWindow::OneMinute).unwrap().latency.unwrap().p95_ms);
    }
    assert!(p95_seen.iter().any(|p95| *p95 > 200.0) && p95_seen.iter().any(|p95| *p95 < 200.0), "{p95_seen:?}");
    let transitions = &scenario.transitions;
    assert_eq!(of(AlertChange::Fired, transitions).len(), 1, "fires once");
    assert!(of(AlertChange::Resolved, transitions).is_empty(), "and never resolves while hovering");
}

#[test]
fn too_little_traffic_does_not_page() {
    // A 1m window spans at most two minutes: 120 requests at one a second, under the guard.
    let rule = ThresholdRule { for_duration: Duration::ZERO, min_events: 200, ..p95_rule() };
    let mut trickle = Scenario::new(only_rules(vec![rule.clone()]));
    assert!(trickle.run(10 * MINUTE, 1, |_| Shape::ok(5_000.0)).is_empty(), "a handful of slow requests pages");

    let mut busy = Scenario::new(only_rules(vec![rule]));
    let transitions = busy.run(2 * MINUTE, 20, |_| Shape::ok(5_000.0));
    assert_eq!(of(AlertChange::Fired, &transitions).len(), 1, "the same latency with enough traffic pages");
}

#[test]
fn a_firing_alert_is_renotified_every_interval_with_the_same_fingerprint() {
    let rule = ThresholdRule { for_duration: Duration::ZERO, ..p95_rule() };
    let mut scenario = Scenario::new(only_rules(vec![rule]));
    let transitions = scenario.run(16 * MINUTE, 20, |_| Shape::ok(450.0));
    let fired = of(AlertChange::Fired, &transitions);
    let renotified = of(AlertChange::Renotified, &transitions);
    assert_eq!(fired.len(), 1);
    // 5 min interval over ~16 min of firing: 3 reminders.
    assert_eq!(renotified.len(), 3, "{renotified:#?}");
    for reminder in &renotified {
        assert_eq!(reminder.alert.fingerprint, fired[0].alert.fingerprint);
        assert_eq!(reminder.alert.status, AlertStatus::Firing);
        assert_eq!(reminder.alert.started_at, fired[0].alert.started_at);
    }
    let gaps: Vec<i64> = renotified.windows(2).map(|pair| pair[1].alert.sent_at - pair[0].alert.sent_at).collect();
    assert!(gaps.iter().all(|gap| *gap == 5 * MINUTE), "{gaps:?}");
}

#[test]
fn a_cache_hit_ratio_below_its_threshold_fires_and_names_the_ratio() {
    let rule = ThresholdRule {
        for_duration: Duration::ZERO,
        ..ThresholdRule::new("CacheHitRatioLow", Sli::CacheHitRatio, Comparison::Below, 0.8, SliWindow::OneMinute)
    };
    let mut scenario = Scenario::new(only_rules(vec![rule]));
    let transitions = scenario
        .run(2 * MINUTE, 20, |i| Shape::ok(5.0).with_cache(if i < 10 { CacheLayer::Memory } else { CacheLayer::None }));
    let fired = of(AlertChange::Fired, &transitions);
    assert_eq!(fired.len(), 1);
    assert!((fired[0].alert.observed_value - 0.5).abs() < 1e-9);
    assert!(fired[0].alert.summary.contains("is 50%, below 80% over 1m"), "{}", fired[0].alert.summary);
}

#[test]
fn an_error_rate_alert_shows_failed_requests_as_exemplars() {
    let rule = ThresholdRule {
        for_duration: Duration::ZERO,
        ..ThresholdRule::new("ErrorRateHigh", Sli::ErrorRate, Comparison::Above, 0.01, SliWindow::OneMinute)
    };
    let mut scenario = Scenario::new(only_rules(vec![rule]));
    let transitions = scenario.run(2 * MINUTE, 20, |i| {
        Shape::ok(5.0).with_status(match i {
            0 => RequestStatus::Error,
            1 => RequestStatus::Timeout,
            _ => RequestStatus::Ok,
        })
    });
    let alert = &of(AlertChange::Fired, &transitions)[0].alert;
    assert!(!alert.exemplars.is_empty());
    for id in &alert.exemplars {
        let n: u64 = id.trim_start_matches("req-").parse().unwrap();
        assert_eq!(n % 20, 1, "exemplar {id} is not an errored request");
    }
}

#[test]
fn a_firing_alert_resolves_when_its_series_stops_sending_while_others_keep_the_stream_moving() {
    let rule = ThresholdRule { for_duration: Duration::ZERO, ..p95_rule() };
    let mut scenario = Scenario::new(only_rules(vec![rule]));
    let fired = scenario.run(2 * MINUTE, 20, |_| Shape::ok(450.0));
    assert_eq!(of(AlertChange::Fired, &fired).len(), 1);

    // Only another series from now on: ours empties out of its window.
    let mut resolved = Vec::new();
    for second in 0..180 {
        let at = scenario.clock_ms + second * SECOND;
        let mut other = event(&format!("o{second}"), 5.0, RequestStatus::Ok, at);
        other.service = "api-gateway".into();
        scenario.monitor.observe(&other, at);
        resolved.extend(scenario.monitor.evaluate(at + PROCESSING_LAG));
    }
    let resolved = of(AlertChange::Resolved, &resolved);
    assert_eq!(resolved.len(), 1);
    assert!(resolved[0].alert.summary.contains("fewer than the 100 needed"), "{}", resolved[0].alert.summary);
}

#[test]
fn the_shipped_latency_rule_fires_on_a_live_breach() {
    // The configuration as shipped, events stamped as they happen (processed half a second
    // later), 40 a second, every one 900 ms: the repro, minute for minute.
    let mut scenario = Scenario::new(crate::sla::SlaConfig::default());
    scenario.evaluate_every_ms = 250;
    let breach = scenario.run(4 * MINUTE, 40, |_| Shape::ok(900.0));
    let fired: Vec<&str> = of(AlertChange::Fired, &breach).iter().map(|t| t.alert.name.as_str()).collect();
    assert!(fired.contains(&"LatencyP95High"), "fired: {fired:?}");
}

#[test]
fn a_breach_whose_events_stop_arriving_still_fires_once_its_for_has_passed() {
    // A burst of slow requests, then silence from every producer: event time follows the
    // processing clock, so the rule's `for` runs out although no further event comes.
    let mut scenario = Scenario::new(crate::sla::SlaConfig::default());
    assert!(of(AlertChange::Fired, &scenario.run(3 * SECOND, 200, |_| Shape::ok(900.0))).is_empty());
    let quiet_from = scenario.clock_ms + PROCESSING_LAG;
    let fired: Vec<String> = (1..=30)
        .flat_map(|second| scenario.monitor.evaluate(quiet_from + second * SECOND))
        .filter(|t| t.change == AlertChange::Fired)
        .map(|t| t.alert.name)
        .collect();
    assert!(fired.contains(&"LatencyP95High".to_string()), "fired: {fired:?}");
}

#[test]
fn a_firing_alert_resolves_when_the_whole_stream_falls_silent() {
    let mut scenario = Scenario::new(crate::sla::SlaConfig::default());
    let fired = scenario.run(MINUTE, 50, |_| Shape::ok(900.0));
    assert!(of(AlertChange::Fired, &fired).iter().any(|t| t.alert.name == "LatencyP95High"));
    let quiet_from = scenario.clock_ms + PROCESSING_LAG;
    // Seven minutes without any event: the 5m window empties and the alert resolves.
    let resolved: Vec<String> = (1..=7 * 60)
        .flat_map(|second| scenario.monitor.evaluate(quiet_from + second * SECOND))
        .filter(|t| t.change == AlertChange::Resolved)
        .map(|t| t.alert.name)
        .collect();
    assert!(resolved.contains(&"LatencyP95High".to_string()), "resolved: {resolved:?}");
}

/// A healthy request: 40-119 ms, answered from memory.
fn healthy(i: u32) -> Shape {
    Shape::ok(40.0 + f64::from(i % 80)).with_cache(CacheLayer::Memory)
}

/// The shipped configuration after six minutes of healthy traffic: every window full.
fn warmed_up_defaults(per_second: u32) -> Scenario {
    let mut scenario = Scenario::new(crate::sla::SlaConfig::default());
    scenario.evaluate_every_ms = 250;
    let warm_up = scenario.run(6 * MINUTE, per_second, healthy);
    assert!(warm_up.is_empty(), "{warm_up:#?}");
    scenario
}

#[test]
fn under_the_shipped_rules_a_sustained_latency_breach_fires_within_thirty_seconds_of_event_time() {
    let mut scenario = warmed_up_defaults(50);
    let onset = scenario.clock_ms;
    let breach = scenario.run(MINUTE, 50, |_| Shape::ok(900.0).with_cache(CacheLayer::Memory));
    let fired = of(AlertChange::Fired, &breach);
    let latency = fired.iter().find(|t| t.alert.name == "LatencyP95High").expect("LatencyP95High fired");
    assert!(latency.alert.started_at - onset <= 30 * SECOND, "after {} ms", latency.alert.started_at - onset);
}

#[test]
fn under_the_shipped_rules_a_five_second_blip_fires_nothing() {
    let mut scenario = warmed_up_defaults(50);
    let mut transitions = scenario.run(5 * SECOND, 50, |_| Shape::ok(900.0).with_cache(CacheLayer::Memory));
    transitions.extend(scenario.run(6 * MINUTE, 50, healthy));
    assert!(transitions.is_empty(), "{transitions:#?}");
}

#[test]
fn a_recovered_series_resolves_on_the_short_window_long_before_the_long_one_forgets() {
    let mut scenario = warmed_up_defaults(50);
    let breach = scenario.run(MINUTE, 50, |_| Shape::ok(900.0).with_cache(CacheLayer::Memory));
    assert!(of(AlertChange::Fired, &breach).iter().any(|t| t.alert.name == "LatencyP95High"));
    let recovered_at = scenario.clock_ms;
    let recovery = scenario.run(3 * MINUTE, 50, healthy);
    let resolved = of(AlertChange::Resolved, &recovery);
    let latency = resolved.iter().find(|t| t.alert.name == "LatencyP95High").expect("resolved within 3 minutes");
    // The 30s window holds 30 to 35 s; the 5m window would hold the breach for five minutes.
    assert!(latency.alert.ended_at.unwrap() - recovered_at <= MINUTE);
    let refired = of(AlertChange::Fired, &recovery);
    assert!(refired.is_empty(), "no flapping while the 5m window still remembers: {refired:#?}");
}

/// The breach each shipped request rule is for: 5 % of requests failing, or no cache hits.
fn errors_breach(i: u32) -> Shape {
    healthy(i).with_status(if i.is_multiple_of(20) { RequestStatus::Error } else { RequestStatus::Ok })
}
fn misses_breach(i: u32) -> Shape {
    healthy(i).with_cache(CacheLayer::None)
}

#[test]
fn under_the_shipped_rules_errors_and_misses_fire_within_thirty_seconds_and_resolve_within_a_minute() {
    for (name, breach) in [("ErrorRateHigh", errors_breach as fn(u32) -> Shape), ("CacheHitRatioLow", misses_breach)] {
        let mut scenario = warmed_up_defaults(50);
        let onset = scenario.clock_ms;
        let breaching = scenario.run(MINUTE, 50, breach);
        let fired = of(AlertChange::Fired, &breaching);
        let alert = fired.iter().find(|t| t.alert.name == name).unwrap_or_else(|| panic!("{name}: {breaching:#?}"));
        assert!(alert.alert.started_at - onset <= 30 * SECOND, "{name} after {} ms", alert.alert.started_at - onset);
        let recovered_at = scenario.clock_ms;
        let recovery = scenario.run(2 * MINUTE, 50, healthy);
        let resolved = of(AlertChange::Resolved, &recovery);
        let resolution = resolved.iter().find(|t| t.alert.name == name).unwrap_or_else(|| panic!("{name}"));
        let after = resolution.alert.ended_at.unwrap() - recovered_at;
        assert!(after <= MINUTE, "{name} resolved {after} ms after the recovery");
    }
}

#[test]
fn under_the_shipped_rules_five_seconds_of_errors_or_misses_fire_nothing() {
    for breach in [errors_breach as fn(u32) -> Shape, misses_breach] {
        let mut scenario = warmed_up_defaults(2_000);
        let mut transitions = scenario.run(5 * SECOND, 2_000, breach);
        transitions.extend(scenario.run(2 * MINUTE, 2_000, healthy));
        assert!(transitions.is_empty(), "{transitions:#?}");
    }
}

#[test]
fn a_low_rate_series_with_errors_just_under_the_threshold_never_fires() {
    // 10 requests a second, 0.6 % failing at random, for half an hour: a minute often holds
    // six or more errors (1 % of 600), but never significantly more than 1 %.
    let mut scenario = warmed_up_defaults(10);
    let mut random = Lcg(42);
    let transitions = scenario.run(30 * MINUTE, 10, |i| {
        let failed = random.next_unit() < 0.006;
        healthy(i).with_status(if failed { RequestStatus::Error } else { RequestStatus::Ok })
    });
    let fired = of(AlertChange::Fired, &transitions);
    assert!(fired.is_empty(), "{fired:#?}");
}

#[test]
fn a_low_rate_series_whose_p95_sits_just_under_the_threshold_never_fires() {
    // 10 a second: 96 % between 20 and 180 ms, 4 % between 200 and 400 (p95 about 178 ms).
    let mut scenario = warmed_up_defaults(10);
    let mut random = Lcg(7);
    let transitions = scenario.run(30 * MINUTE, 10, |_| {
        let (draw, spread) = (random.next_unit(), random.next_unit());
        let latency = if draw < 0.96 { 20.0 + 160.0 * spread } else { 200.0 + 200.0 * spread };
        Shape::ok(latency).with_cache(CacheLayer::Memory)
    });
    let fired = of(AlertChange::Fired, &transitions);
    assert!(fired.is_empty(), "{fired:#?}");
}

#[test]
fn the_wilson_interval_is_tight_on_many_events_and_wide_on_few() {
    let (low, high) = crate::sla::series::wilson_interval(6, 600, 2.326);
    assert!(low < 0.005 && high > 0.02, "({low}, {high})");
    let (low, high) = crate::sla::series::wilson_interval(1_000, 100_000, 2.326);
    assert!((low - 0.01).abs() < 0.001 && (high - 0.01).abs() < 0.001, "({low}, {high})");
}
