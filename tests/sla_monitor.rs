//! The SLA monitor worker against the real broker: request-completed events in, alerts out.
//! (The window, rule and SLO logic is specified in detail by the unit tests in `src/sla/tests`.)
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::time::Duration;

use common::sla::*;
use common::*;
use frontier::bus::json::json_to_avro;
use frontier::bus::{SchemaCatalog, dlq};
use frontier::settings::Settings;
use frontier::sla::{DropReason, SlaConfig};
use frontier::workers::sla_monitor::SlaMonitorSettings;
use serde_json::json;

/// One latency rule that fires as soon as a minute's p95 is above 200 ms over 20 events.
fn worker_settings(input: &str, alerts: &str) -> SlaMonitorSettings {
    let monitor: SlaConfig = toml::from_str(
        r#"
        slos = []
        [[rules]]
        name = "LatencyP95High"
        sli = "latency_p95"
        comparison = "above"
        threshold = 200.0
        window = "1m"
        for = "0s"
        min_events = 20
        severity = "critical"
        runbook_url = "https://runbooks.example/latency"
        "#,
    )
    .expect("test rules parse");
    SlaMonitorSettings {
        input_topic: input.into(),
        alerts_topic: alerts.into(),
        evaluation_interval: Duration::from_millis(200),
        query_events_topic: None,
        worker_status_topic: None,
        autoscale_topic: None,
        slow_queries_topic: None,
        monitor,
        slo_counters_topic: None,
        ..SlaMonitorSettings::default()
    }
}

use frontier::clock::now_millis;

/// `count` request-completed events of one series, `latency_ms` each, at event time `at_ms`.
fn events(
    catalog: &SchemaCatalog,
    prefix: &str,
    count: usize,
    latency_ms: f64,
    at_ms: i64,
) -> Vec<(Option<String>, Vec<u8>)> {
    let schema = catalog.by_file("request_completed.avsc").unwrap();
    (0..count)
        .map(|i| {
            let doc = json!({
                "id": format!("{prefix}-{i}"), "service": "serving", "kind": "market.volatility",
                "tenant": "acme", "latency_ms": latency_ms, "status": "ok", "cache_layer": "none",
                "occurred_at": at_ms, "instance": null
            });
            let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema).unwrap()).unwrap();
            (Some("serving/market.volatility".to_string()), bytes)
        })
        .collect()
}

async fn setup(name: &str) -> (Settings, SlaMonitorSettings) {
    let mut settings = settings();
    let (input, alerts_topic, dlq_topic) =
        (unique(&format!("{name}.metrics")), unique(&format!("{name}.alerts")), unique(&format!("{name}.dlq")));
    settings.bus.dlq_topic = dlq_topic.clone();
    create_topics(&settings, &[&input, &alerts_topic, &dlq_topic], 1).await;
    let config = worker_settings(&input, &alerts_topic);
    (settings, config)
}

#[tokio::test]
async fn a_latency_breach_fires_an_alert_and_the_recovery_resolves_it() {
    let (settings, config) = setup("breach").await;
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    // Event time: slow requests three minutes ago, then fast ones now (the stream clock never
    // runs ahead of the processing clock, so recovery is written in the past tense).
    let now = now_millis();
    produce(&settings, &config.input_topic, events(&catalog, "slow", 40, 500.0, now - 180_000)).await;
    let fired = alerts(&settings, &config.alerts_topic, 1).await;
    assert_eq!(fired.len(), 1, "no alert fired");
    assert_eq!(fired[0]["status"], "firing");
    assert_eq!(fired[0]["name"], "LatencyP95High");
    assert_eq!(fired[0]["severity"], "critical");
    assert_eq!(fired[0]["labels"]["service"], "serving");
    assert_eq!(fired[0]["exemplars"].as_array().map(Vec::len), Some(5));
    assert!(fired[0]["observed_value"].as_f64().unwrap() > 200.0);

    // Three minutes later in event time, the minute window holds only fast requests.
    produce(&settings, &config.input_topic, events(&catalog, "fast", 40, 20.0, now)).await;
    let all = alerts(&settings, &config.alerts_topic, 2).await;
    stop(monitor).await;
    assert_eq!(all.len(), 2, "the alert was not resolved: {all:?}");
    assert_eq!(all[1]["status"], "resolved");
    assert_eq!(all[1]["fingerprint"], fired[0]["fingerprint"]);
    assert!(!all[1]["ended_at"].is_null());
}

#[tokio::test]
async fn a_restart_keeps_exactly_one_firing_alert() {
    let (settings, config) = setup("restart").await;
    let catalog = catalog();
    let group = unique("group");
    let now = now_millis();

    let first = start(&settings, &config, &group).await;
    produce(&settings, &config.input_topic, events(&catalog, "slow-a", 40, 500.0, now - 180_000)).await;
    assert_eq!(alerts(&settings, &config.alerts_topic, 1).await.len(), 1, "no alert fired before the restart");
    stop(first).await;

    // The new instance restores the firing alert from the alerts topic: still slow, no new alert.
    let second = start(&settings, &config, &group).await;
    produce(&settings, &config.input_topic, events(&catalog, "slow-b", 40, 500.0, now - 179_000)).await;
    produce(&settings, &config.input_topic, events(&catalog, "fast", 40, 20.0, now)).await;
    let all = alerts(&settings, &config.alerts_topic, 2).await;
    stop(second).await;
    let statuses: Vec<&str> = all.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["firing", "resolved"], "one firing alert across the restart, then its resolution");
    assert_eq!(all[0]["fingerprint"], all[1]["fingerprint"]);
}

#[tokio::test]
async fn garbage_goes_to_the_dlq_and_absurd_events_are_dropped_with_a_reason() {
    let (settings, config) = setup("absurd").await;
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    let mut records = vec![(None, b"{\"latency\": 12}".to_vec())];
    records.extend(events(&catalog, "negative", 1, -5.0, now_millis()));
    records.extend(events(&catalog, "fine", 3, 10.0, now_millis()));
    produce(&settings, &config.input_topic, records).await;

    let letters = tokio::task::spawn_blocking({
        let (settings, dlq_topic) = (settings.clone(), settings.bus.dlq_topic.clone());
        move || read_topic(&settings, &dlq_topic, 1, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let taken = taken_in(&monitor.worker, 4).await;
    let snapshot = monitor.worker.snapshot().await.unwrap();
    let (accepted, negative) = (snapshot.accepted, snapshot.drops.get(DropReason::NegativeLatency));
    stop(monitor).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(header(&letters[0], dlq::header::ERROR_KIND).as_deref(), Some("not_single_object"));
    assert!(taken, "the events never reached the monitor");
    assert_eq!(accepted, 3, "the valid events were not all counted");
    assert_eq!(negative, 1, "the negative latency was not dropped with its reason");
}

#[tokio::test]
async fn too_little_traffic_does_not_page() {
    let (settings, config) = setup("volume").await;
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    // Ten very slow requests: below the rule's 20-event minimum.
    produce(&settings, &config.input_topic, events(&catalog, "few", 10, 900.0, now_millis())).await;
    let counted = taken_in(&monitor.worker, 10).await && monitor.worker.snapshot().await.unwrap().accepted == 10;
    // Several evaluation intervals (200 ms) pass while the topic is read.
    let alerts_now = read_topic(&settings, &config.alerts_topic, 1, Duration::from_secs(2));
    stop(monitor).await;
    assert!(counted, "the events were not counted");
    assert!(alerts_now.is_empty(), "ten requests paged");
}

#[tokio::test]
async fn late_events_count_in_their_window_and_too_late_ones_are_dropped() {
    let (settings, config) = setup("late").await;
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    let now = now_millis();
    // Fast requests two minutes ago and now (so the minute window is fully observed), then slow
    // ones from 50 s ago (late, within the 2-minute tolerance) and from 5 minutes ago (behind
    // the watermark).
    produce(&settings, &config.input_topic, events(&catalog, "early", 30, 20.0, now - 110_000)).await;
    produce(&settings, &config.input_topic, events(&catalog, "fast", 30, 20.0, now)).await;
    produce(&settings, &config.input_topic, events(&catalog, "late", 30, 600.0, now - 50_000)).await;
    produce(&settings, &config.input_topic, events(&catalog, "stale", 5, 600.0, now - 300_000)).await;
    let fired = alerts(&settings, &config.alerts_topic, 1).await;
    assert!(taken_in(&monitor.worker, 95).await, "the events never reached the monitor");
    let too_late = monitor.worker.snapshot().await.unwrap().drops.get(DropReason::TooLate);
    stop(monitor).await;
    assert_eq!(fired.len(), 1, "the late slow requests did not count in the minute window");
    assert_eq!(fired[0]["status"], "firing");
    assert!(fired[0]["exemplars"].as_array().unwrap().iter().all(|id| id.as_str().unwrap().starts_with("late-")));
    assert_eq!(too_late, 5, "requests behind the watermark were not dropped as too late");
}

#[tokio::test]
async fn a_restarted_monitor_pages_on_the_slo_counters_its_predecessor_checkpointed() {
    let (settings, mut config) = setup("slo-restore").await;
    let catalog = catalog();
    let counters = unique("slo-restore.counters");
    let (control_alerts, restored_alerts) = (unique("slo-restore.control"), unique("slo-restore.restored"));
    create_topics(&settings, &[&counters, &control_alerts, &restored_alerts], 1).await;
    // 10 % of requests may be slower than 200 ms; page at 5x over 1h and 1m.
    config.monitor = toml::from_str(
        r#"
        rules = []
        [[slos]]
        name = "LatencySLO"
        sli = "latency"
        objective = 0.9
        latency_threshold_ms = 200.0
        min_events = 10
        [[slos.alerts]]
        severity = "critical"
        burn_rate = 5.0
        long_window = "1h"
        short_window = "1m"
        "#,
    )
    .expect("test SLO parses");
    config.slo_counters_topic = Some(counters);
    config.slo_checkpoint_interval = Duration::from_millis(500);
    let group = unique("group");
    let now = now_millis();

    // The first instance has watched a minute and a half of slow requests (stamped across it).
    let first = start(&settings, &config, &group).await;
    let watched: Vec<_> = (0..90)
        .flat_map(|second| events(&catalog, &format!("before-{second}"), 1, 900.0, now - (90 - second) * 1_000))
        .collect();
    produce(&settings, &config.input_topic, watched).await;
    assert!(taken_in(&first.worker, 90).await, "the first instance did not take the events in");
    tokio::time::sleep(Duration::from_secs(2)).await; // a few checkpoint intervals
    stop(first).await;

    // Without the counters, a few seconds of the same slow traffic prove nothing yet: the short
    // window has not been seen whole.
    let control =
        SlaMonitorSettings { alerts_topic: control_alerts.clone(), slo_counters_topic: None, ..config.clone() };
    let second = start(&settings, &control, &group).await;
    produce(&settings, &config.input_topic, events(&catalog, "control", 20, 900.0, now_millis())).await;
    assert!(taken_in(&second.worker, 20).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(second).await;
    assert!(read_topic(&settings, &control_alerts, 1, Duration::from_secs(2)).is_empty(), "paged without history");

    // With them, the restarted instance pages on its first evaluations.
    let restored = SlaMonitorSettings { alerts_topic: restored_alerts.clone(), ..config.clone() };
    let third = start(&settings, &restored, &group).await;
    produce(&settings, &config.input_topic, events(&catalog, "restored", 20, 900.0, now_millis())).await;
    let paged = alerts(&settings, &restored_alerts, 1).await;
    stop(third).await;
    assert_eq!(paged.len(), 1, "no page after the restart");
    assert_eq!((paged[0]["name"].as_str(), paged[0]["status"].as_str()), (Some("LatencySLO"), Some("firing")));
}
