//! The SLA monitor's other inputs against the real broker: database statements, worker status
//! reports and autoscaler decisions in, alerts out (and to a webhook); plus a noisy series that
//! must not flap. The rule logic itself is specified by the unit tests in `src/sla/tests`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sla::*;
use common::*;
use frontier::bus::json::{avro_to_json, json_to_avro};
use frontier::bus::{ConsumerLoop, LoopOptions, SchemaCatalog};
use frontier::clock::now_millis;
use frontier::settings::Settings;
use frontier::sla::SlaConfig;
use frontier::workers::passthrough::Passthrough;
use frontier::workers::sla_monitor::SlaMonitorSettings;
use frontier::workers::sla_monitor::webhook::WebhookSettings;
use rdkafka::Message;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A monitor reading four test topics, with `rules` (TOML) as its only rules.
async fn setup(name: &str, rules: &str) -> (Settings, SlaMonitorSettings) {
    let mut settings = settings();
    let topic = |what: &str| unique(&format!("{name}.{what}"));
    let (metrics, queries, status, decisions, alerts, dlq) =
        (topic("metrics"), topic("queries"), topic("status"), topic("decisions"), topic("alerts"), topic("dlq"));
    let slow = topic("slow");
    settings.bus.dlq_topic = dlq.clone();
    create_topics(&settings, &[&metrics, &queries, &status, &decisions, &alerts, &dlq, &slow], 1).await;
    let mut monitor: SlaConfig = toml::from_str(rules).expect("test rules parse");
    // Only the rules given: no default ones beside them.
    monitor.slos.clear();
    if !rules.contains("[[rules]]") {
        monitor.rules.clear();
    }
    if !rules.contains("[[signals]]") {
        monitor.signals.clear();
    }
    let config = SlaMonitorSettings {
        input_topic: metrics,
        query_events_topic: Some(queries),
        worker_status_topic: Some(status),
        autoscale_topic: Some(decisions),
        slow_queries_topic: Some(slow),
        alerts_topic: alerts,
        evaluation_interval: Duration::from_millis(200),
        monitor,
        slo_counters_topic: None,
        ..SlaMonitorSettings::default()
    };
    (settings, config)
}

fn encode(catalog: &SchemaCatalog, file: &str, doc: Value) -> Vec<u8> {
    let schema = catalog.by_file(file).unwrap();
    SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema).unwrap()).unwrap()
}

fn status_doc(instance: &str, lag: i64, now: i64) -> Value {
    json!({
        "service": "serve", "instance": instance, "consumer_group": "frontier.serve", "consumer_lag": lag,
        "rss_bytes": 200_000_000, "memory_limit_bytes": 1_000_000_000, "cpu_utilization": 0.4,
        "open_fds": 80, "max_fds": 1024, "occurred_at": now
    })
}

#[tokio::test]
async fn statements_timing_out_on_the_query_events_topic_fire_db_query_timeouts() {
    let (settings, config) = setup(
        "queries",
        r#"
        [[rules]]
        name = "DbQueryTimeouts"
        source = "queries"
        sli = "timeout_rate"
        comparison = "above"
        threshold = 0.01
        window = "1m"
        for = "0s"
        min_events = 20
        "#,
    )
    .await;
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    let now = now_millis();
    let statements = (0..40)
        .map(|i| {
            let status = if i % 10 == 0 { "timeout" } else { "ok" };
            let doc = json!({
                "id": format!("q{i}"), "sql": "SELECT close FROM prices WHERE symbol = $1", "fingerprint": null,
                "duration_ms": if status == "timeout" { 5000.0 } else { 2.5 }, "rows": 250,
                "database": "frontier", "application": "serve", "status": status, "error": null, "occurred_at": now
            });
            (Some("serve".to_string()), encode(&catalog, "db_query_event.avsc", doc))
        })
        .collect();
    produce(&settings, config.query_events_topic.as_deref().unwrap(), statements).await;

    let fired = alerts(&settings, &config.alerts_topic, 1).await;
    stop(monitor).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["name"], "DbQueryTimeouts");
    assert_eq!(fired[0]["labels"]["kind"], "db:frontier");
    assert_eq!(fired[0]["observed_value"], 0.1);
    // The slowest statements are the exemplars, so the responder sees which ones timed out.
    assert!(fired[0]["exemplars"].as_array().unwrap().iter().any(|id| id == "q0"), "{}", fired[0]);
}

#[tokio::test]
async fn every_worker_loop_publishes_its_status_with_lag_and_resource_figures() {
    let mut settings = settings();
    let (input, output, status) = (unique("status.in"), unique("status.out"), unique("status.reports"));
    create_topics(&settings, &[&input, &output, &status], 2).await;
    settings.bus.status_topic = status.clone();
    settings.bus.status_interval = Duration::from_secs(1);
    let group = unique("group");
    let options = LoopOptions::new(&settings.bus, group.clone(), vec![input.clone()]);
    let worker = Arc::new(Passthrough::new(&output));
    let consumer_loop = ConsumerLoop::new(&settings.kafka, options, worker, catalog()).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer_loop.run(token.clone()));

    let reports = tokio::task::spawn_blocking({
        let (settings, status) = (settings.clone(), status.clone());
        move || read_topic(&settings, &status, 3, Duration::from_secs(30))
    })
    .await
    .unwrap();
    token.cancel();
    task.await.unwrap().unwrap();

    assert!(reports.len() >= 3, "expected a status a second, got {}", reports.len());
    let catalog = catalog();
    let last = reports.last().unwrap();
    assert_eq!(last.key(), Some(group.as_bytes()), "keyed by group, so one monitor sees a whole group");
    let report = avro_to_json(&catalog.decode(last.payload().unwrap()).unwrap().value);
    assert_eq!(report["service"], "passthrough");
    assert_eq!(report["consumer_group"], group.as_str());
    assert!(report["rss_bytes"].as_i64().unwrap() > 0, "{report}");
    assert!(report["rss_bytes"].as_i64() < report["memory_limit_bytes"].as_i64(), "{report}");
    assert!(report["open_fds"].as_i64() < report["max_fds"].as_i64(), "{report}");
    assert!((0.0..=1.0).contains(&report["cpu_utilization"].as_f64().unwrap()), "{report}");
}

#[tokio::test]
async fn a_group_far_behind_fires_consumer_lag_high_from_its_instances_statuses() {
    let (settings, config) = setup(
        "lag",
        r#"
        [[signals]]
        name = "ConsumerLagHigh"
        signal = "consumer_lag"
        comparison = "above"
        threshold = 10000.0
        for = "0s"
        "#,
    )
    .await;
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    let now = now_millis();
    let reports = ["a-1", "b-2"]
        .iter()
        .map(|instance| {
            (
                Some("frontier.serve".to_string()),
                encode(&catalog, "worker_status.avsc", status_doc(instance, 7_000, now)),
            )
        })
        .collect();
    produce(&settings, config.worker_status_topic.as_deref().unwrap(), reports).await;

    let fired = alerts(&settings, &config.alerts_topic, 1).await;
    stop(monitor).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["name"], "ConsumerLagHigh");
    assert_eq!(fired[0]["labels"]["group"], "frontier.serve");
    assert_eq!(fired[0]["observed_value"], 14_000.0);
}

#[tokio::test]
async fn an_autoscaler_stuck_at_max_instances_fires_autoscale_at_max_instances() {
    let (settings, config) = setup(
        "autoscale",
        r#"
        [[signals]]
        name = "AutoscaleAtMaxInstances"
        signal = "autoscale_saturation"
        comparison = "above"
        threshold = 0.5
        for = "0s"
        severity = "critical"
        "#,
    )
    .await;
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    let decision = json!({
        "id": "d1", "consumer_group": "frontier.serve", "topic": "frontier.requests", "total_lag": 90_000,
        "lag_rate_per_s": 450.0, "current_instances": 20, "desired_instances": 20, "min_instances": 2,
        "max_instances": 20, "action": "hold", "reason": "already at max_instances", "decided_at": now_millis()
    });
    let record = (Some("frontier.serve".to_string()), encode(&catalog, "autoscale_decision.avsc", decision));
    produce(&settings, config.autoscale_topic.as_deref().unwrap(), vec![record]).await;

    let fired = alerts(&settings, &config.alerts_topic, 1).await;
    stop(monitor).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["name"], "AutoscaleAtMaxInstances");
    assert_eq!(fired[0]["severity"], "critical");
}

#[tokio::test]
async fn a_query_analyzer_finding_fires_slow_statements_for_its_database() {
    let (settings, mut config) = setup("slow", "").await;
    // The shipped rule, as users get it.
    config.monitor.signals =
        frontier::sla::SignalRule::platform_defaults().into_iter().filter(|r| r.name == "SlowStatements").collect();
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    let now = now_millis();
    let finding = frontier::records::SlowQueryFinding {
        id: "f1".into(),
        kind: frontier::records::SlowQueryKind::Slow,
        database: "shop".into(),
        fingerprint: "abc".into(),
        sql: "SELECT * FROM orders WHERE customer = $1".into(),
        parsed: true,
        window_start: now - 70_000,
        window_end: now - 10_000,
        calls: 150,
        errors: 0,
        total_ms: 4_500.0,
        mean_ms: 30.0,
        p95_ms: 35.0,
        p99_ms: 40.0,
        rows: 150,
        time_share: 0.6,
        baseline_mean_ms: None,
        window_findings: 1,
        detected_at: now,
    };
    let record = (Some("abc".to_string()), catalog.encode_record(&finding).unwrap());
    produce(&settings, config.slow_queries_topic.as_deref().unwrap(), vec![record]).await;

    let fired = alerts(&settings, &config.alerts_topic, 1).await;
    stop(monitor).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["name"], "SlowStatements");
    assert_eq!(fired[0]["labels"]["database"], "shop");
    assert_eq!(fired[0]["summary"], "database shop has 1 slow statement(s) in the query analyzer's latest window");
}

/// Request-completed events of one series at event time `at_ms`, latencies cycling through `latencies`.
fn requests(
    catalog: &SchemaCatalog,
    prefix: &str,
    count: usize,
    latencies: &[f64],
    at_ms: i64,
) -> Vec<(Option<String>, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let doc = json!({
                "id": format!("{prefix}-{i}"), "service": "serving", "kind": "market.volatility",
                "tenant": "acme", "latency_ms": latencies[i % latencies.len()], "status": "ok", "cache_layer": "none",
                "occurred_at": at_ms, "instance": null
            });
            (Some("serving/market.volatility".to_string()), encode(catalog, "request_completed.avsc", doc))
        })
        .collect()
}

const P95_RULE: &str = r#"
    [[rules]]
    name = "LatencyP95High"
    sli = "latency_p95"
    comparison = "above"
    threshold = 200.0
    window = "1m"
    for = "0s"
    hysteresis = 0.05
    min_events = 20
"#;

#[tokio::test]
async fn a_noisy_series_hovering_at_the_threshold_fires_once_and_does_not_flap() {
    let (settings, config) = setup("flap", P95_RULE).await;
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    let now = now_millis();
    // A clear breach, then five minutes whose p95 wanders around the threshold (the 1m window
    // also holds the minute before, so its p95 reads 500, 198, 198, 204, 204): below 200 ms but
    // inside the 5 % hysteresis band (resolve at 190 ms or less), so the alert neither resolves
    // nor re-fires. Without hysteresis it would resolve at 198 and fire again at 204.
    produce(&settings, &config.input_topic, requests(&catalog, "breach", 40, &[500.0], now - 300_000)).await;
    let noise = [[196.0], [198.0], [193.0], [204.0], [197.0]];
    for (minute, latencies) in noise.iter().enumerate() {
        let at = now - 240_000 + minute as i64 * 60_000;
        produce(&settings, &config.input_topic, requests(&catalog, &format!("noise{minute}"), 40, latencies, at)).await;
    }
    assert!(taken_in(&monitor.worker, 240).await, "the monitor took in every event");
    // A few evaluations after the last event, so a flap would have been produced by now.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Asking for two messages, with a few seconds' patience: only a flap would bring a second.
    let read = tokio::task::spawn_blocking({
        let (settings, topic) = (settings.clone(), config.alerts_topic.clone());
        move || read_topic(&settings, &topic, 2, Duration::from_secs(3))
    })
    .await
    .unwrap();
    let messages = decoded_json(&catalog, &read);
    let firing = monitor.worker.snapshot().await.unwrap().firing;
    stop(monitor).await;
    let statuses: Vec<&str> = messages.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["firing"], "one alert, never resolved or re-fired: {messages:#?}");
    assert_eq!(firing, 1);
}

#[tokio::test]
async fn alerts_are_forwarded_to_a_webhook_in_alertmanager_format() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = received.clone();
            move |axum::Json(body): axum::Json<Value>| async move {
                received.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (settings, mut config) = setup("webhook", P95_RULE).await;
    config.webhook = Some(WebhookSettings {
        url: format!("http://{address}/hook"),
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        receiver: "on-call".into(),
    });
    let catalog = catalog();
    let monitor = start(&settings, &config, &unique("group")).await;
    produce(&settings, &config.input_topic, requests(&catalog, "slow", 40, &[500.0], now_millis())).await;
    assert_eq!(alerts(&settings, &config.alerts_topic, 1).await.len(), 1);
    let mut body = None;
    for _ in 0..100 {
        if let Some(first) = received.lock().unwrap().first() {
            body = Some(first.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop(monitor).await;
    server.abort();

    let body = body.expect("the webhook received the alert within 10 s");
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "on-call");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "LatencyP95High");
    assert_eq!(body["alerts"][0]["labels"]["service"], "serving");
}

#[tokio::test]
async fn garbage_in_a_groups_input_fires_messages_dead_lettered_from_its_own_status_reports_under_the_shipped_rules() {
    let (mut settings, mut config) = setup("dead", "").await;
    config.monitor = SlaConfig::default();
    let monitor = start(&settings, &config, &unique("group")).await;
    // A passthrough group reporting its status every second to the monitor's status topic.
    let (input, output) = (unique("dead.in"), unique("dead.out"));
    create_topics(&settings, &[&input, &output], 1).await;
    settings.bus.status_topic = config.worker_status_topic.clone().unwrap();
    settings.bus.status_interval = Duration::from_secs(1);
    let group = unique("group");
    let options = LoopOptions::new(&settings.bus, group.clone(), vec![input.clone()]);
    let consumer_loop =
        ConsumerLoop::new(&settings.kafka, options, Arc::new(Passthrough::new(&output)), catalog()).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer_loop.run(token.clone()));
    let garbage = (0..3).map(|i| (None, format!("not avro {i}").into_bytes())).collect();
    produce(&settings, &input, garbage).await;

    let fired = alerts(&settings, &config.alerts_topic, 1).await;
    token.cancel();
    task.await.unwrap().unwrap();
    stop(monitor).await;
    assert_eq!(fired[0]["name"], "MessagesDeadLettered", "{fired:#?}");
    assert_eq!(fired[0]["labels"]["group"], group.as_str());
    // The three may be split over two reports; the alert fires on the first.
    let seen = fired[0]["observed_value"].as_f64().unwrap();
    assert!((1.0..=3.0).contains(&seen), "{}", fired[0]);
}
