//! `frontier run sla-monitor` against crafted events.

use frontier::bus::SchemaCatalog;
use frontier::bus::json::json_to_avro;
use frontier::clock::now_millis;
use frontier::records::RequestCompleted;
use frontier::settings::Settings;
use serde_json::{Value, json};

use super::common::process::{Worker, await_messages, topics};
use super::common::*;
use super::{dead_letters, produce_large};

/// The rule the tests watch: p95 over 200 ms in the last minute, from 5 events, at once.
const RULE: &str = r#"[{name="LatencyP95High", sli="latency_p95", comparison="above", threshold=200.0, window="1m", for="0s", min_events=5, severity="critical"}]"#;

struct Monitoring {
    settings: Settings,
    metrics: String,
    alerts: String,
    dlq: String,
    worker: Worker,
}

impl Monitoring {
    async fn start(test: &str, extra: &[(&str, String)]) -> Monitoring {
        let settings = settings();
        let [metrics, alerts, query_events, status, autoscale, slow_queries, slo_counters, dlq] = topics(
            &settings,
            &format!("hostile.sla.{test}"),
            ["metrics", "alerts", "query-events", "status", "autoscale", "slow-queries", "slo-counters", "dlq"],
        )
        .await;
        let mut env = vec![
            ("FRONTIER_WORKERS__SLA__INPUT_TOPIC", metrics.clone()),
            ("FRONTIER_WORKERS__SLA__ALERTS_TOPIC", alerts.clone()),
            ("FRONTIER_WORKERS__SLA__QUERY_EVENTS_TOPIC", query_events),
            ("FRONTIER_WORKERS__SLA__WORKER_STATUS_TOPIC", status),
            ("FRONTIER_WORKERS__SLA__AUTOSCALE_TOPIC", autoscale),
            ("FRONTIER_WORKERS__SLA__SLOW_QUERIES_TOPIC", slow_queries),
            // Topics of its own: the shipped ones exist only after `frontier topics apply`.
            ("FRONTIER_WORKERS__SLA__SLO_COUNTERS_TOPIC", slo_counters),
            ("FRONTIER_WORKERS__SLA__GROUP_ID", unique("hostile.sla.group")),
            ("FRONTIER_WORKERS__SLA__EVALUATION_INTERVAL", "200ms".into()),
            ("FRONTIER_WORKERS__SLA__MONITOR__RULES", RULE.into()),
            ("FRONTIER_WORKERS__SLA__MONITOR__SLOS", "[]".into()),
            ("FRONTIER_WORKERS__SLA__MONITOR__SIGNALS", "[]".into()),
            ("FRONTIER_BUS__DLQ_TOPIC", dlq.clone()),
            ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
        ];
        env.extend(extra.iter().cloned());
        let worker = Worker::start("sla-monitor", &env);
        Monitoring { settings, metrics, alerts, dlq, worker }
    }

    /// Publishes request-completed events (plain JSON), keyed by service.
    async fn send(&self, events: &[Value]) {
        let catalog = catalog();
        let schema = catalog.schema_of::<RequestCompleted>().unwrap();
        let records = events
            .iter()
            .map(|doc| {
                let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(doc, &schema.schema).unwrap()).unwrap();
                (doc["service"].as_str().map(|s| s.chars().take(64).collect()), bytes)
            })
            .collect();
        produce(&self.settings, &self.metrics, records).await;
    }

    /// Slow events of `service` now: the rule fires for it once they are counted.
    async fn breach(&self, service: &str) {
        let slow: Vec<Value> =
            (0..10).map(|i| completed(service, "market.volatility", 900.0, now_millis() - i)).collect();
        self.send(&slow).await;
    }

    /// The first alert fired for `service`: proof its events were counted.
    fn fired_for(&mut self, service: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let alerts = decoded_json(&catalog(), &await_messages(&self.settings, &mut self.worker, &self.alerts, 1));
            if let Some(alert) = alerts.into_iter().find(|a| a["labels"]["service"] == service) {
                return alert;
            }
            assert!(
                started.elapsed() < super::common::process::PATIENCE,
                "no alert for {service}:\n{}",
                self.worker.log_text()
            );
        }
    }
}

fn completed(service: &str, kind: &str, latency_ms: f64, at: i64) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(), "service": service, "kind": kind, "tenant": "acme",
        "latency_ms": latency_ms, "status": "ok", "cache_layer": "none", "occurred_at": at, "instance": null,
        "cache_key": null
    })
}

#[tokio::test]
async fn a_megabyte_of_random_bytes_is_dead_lettered_in_part_and_the_monitor_goes_on() {
    let mut monitoring = Monitoring::start("random-megabyte", &[]).await;
    let noise: Vec<u8> = (0..1_048_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    produce_large(&monitoring.settings, &monitoring.metrics, "noise", noise).await;

    let letters = dead_letters(&monitoring.settings, &monitoring.dlq, 1);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, "not_single_object", "{:?}", letters[0]);
    assert!(letters[0].payload_note.as_deref().unwrap_or_default().starts_with("truncated"), "{:?}", letters[0]);
    monitoring.breach("after-noise").await;
    assert_eq!(monitoring.fired_for("after-noise")["status"], "firing");
}

#[tokio::test]
async fn five_hundred_junk_series_do_not_lock_a_new_service_out() {
    let mut monitoring =
        Monitoring::start("junk-series", &[("FRONTIER_WORKERS__SLA__MONITOR__MAX_SERIES", "500".into())]).await;
    let junk: Vec<Value> = (0..600).map(|i| completed(&format!("junk-{i}"), "x", 1.0, now_millis())).collect();
    monitoring.send(&junk).await;
    monitoring.breach("real-service").await;
    assert_eq!(monitoring.fired_for("real-service")["labels"]["service"], "real-service");
}

#[tokio::test]
async fn a_service_name_of_100_kb_is_dropped_and_later_events_still_counted() {
    let mut monitoring = Monitoring::start("long-name", &[]).await;
    let long: Vec<Value> = (0..100).map(|_| completed(&"s".repeat(100_000), "x", 900.0, now_millis())).collect();
    monitoring.send(&long).await;
    monitoring.breach("after-long-names").await;
    let alert = monitoring.fired_for("after-long-names");
    assert_eq!(alert["status"], "firing");
    let log = monitoring.worker.log_text();
    assert!(log.len() < 1_000_000, "the monitor does not copy 100 KB names into its logs ({} bytes)", log.len());
}

#[tokio::test]
async fn a_first_event_at_i64_min_does_not_make_later_events_too_late() {
    let mut monitoring = Monitoring::start("ancient-first", &[]).await;
    monitoring.send(&[completed("ancient", "x", 900.0, i64::MIN)]).await;
    monitoring.breach("after-ancient").await;
    assert_eq!(monitoring.fired_for("after-ancient")["status"], "firing");
}
