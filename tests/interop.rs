//! Frontier's workers among other Avro implementations, through Kafka: records written by Avro's
//! Java reference implementation and by fastavro to each topic a user publishes to are consumed
//! by the real workers (`frontier run <worker>` as processes), and what the workers write is read
//! by both. Needs the local stack (`ops/stack up`), the tools (`ops/avro-reference/install`) and,
//! for the inference batcher, the model (`ops/models`).
//!
//! The schema-by-schema checks without Kafka are in `tests/avro_reference.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::avro_tools::{AvroTool, parse_exact};
use common::process::{Worker, assert_no_dead_letters, await_messages, drop_pg_schema, topics};
use common::*;
use frontier::bus::json::{avro_to_json, json_to_avro};
use frontier::clock::now_millis;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use serde_json::{Value, json};

fn payloads(messages: &[OwnedMessage]) -> Vec<Vec<u8>> {
    messages.iter().map(|m| m.payload().expect("a payload").to_vec()).collect()
}

/// Both tools decode what a worker wrote to the same plain JSON as our catalog; returns ours.
fn assert_both_tools_read(messages: &[OwnedMessage]) -> Vec<Value> {
    let ours = decoded_json(&catalog(), messages);
    let bytes = payloads(messages);
    for tool in AvroTool::BOTH {
        assert_eq!(tool.decode_all(&bytes), ours, "{} reads the worker's records differently", tool.name());
    }
    ours
}

/// `docs` (records of `schemas/<file>`) as written by `tool`, each keyed by `key(doc)`.
fn written_by(
    tool: AvroTool,
    file: &str,
    docs: &[Value],
    key: impl Fn(&Value) -> String,
) -> Vec<(Option<String>, Vec<u8>)> {
    let path = repo().join("schemas").join(file);
    let records: Vec<(PathBuf, Value)> = docs.iter().map(|doc| (path.clone(), doc.clone())).collect();
    tool.encode_all(&records).into_iter().zip(docs).map(|(bytes, doc)| (Some(key(doc)), bytes)).collect()
}

/// The `id` field, the key of requests and jobs.
fn by_id(doc: &Value) -> String {
    doc["id"].as_str().expect("an id").to_string()
}

/// An id naming the implementation that wrote the record.
fn id_for(tool: AvroTool, what: &str) -> String {
    let who = match tool {
        AvroTool::Java => "java",
        AvroTool::Fastavro => "fastavro",
    };
    format!("{who}-{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn field<'a>(records: &'a [Value], name: &str) -> Vec<&'a str> {
    let mut values: Vec<&str> = records.iter().map(|r| r[name].as_str().unwrap_or("?")).collect();
    values.sort();
    values
}

#[tokio::test]
async fn serve_answers_requests_written_by_java_and_fastavro_with_records_both_read() {
    let settings = settings();
    common::redis::stack_redis(&settings).await;
    let [requests, responses, metrics, heat, invalidations, query_events, dlq] = topics(
        &settings,
        "serve",
        ["requests", "responses", "metrics", "heat", "invalidations", "query-events", "dlq"],
    )
    .await;
    // Prices of the test's own PostgreSQL schema, through the real `frontier seed`.
    let schema = format!("test_interop_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let seeded = frontier()
        .args(["seed", "--symbols", "1", "--days", "60", "--names", "AAPL", "--schema", &schema])
        .args(["--invalidations-topic", &invalidations, "--query-events-topic", &query_events])
        .output()
        .expect("frontier seed runs");
    assert!(
        seeded.status.success(),
        "frontier seed failed ({START_HINT}): {}",
        String::from_utf8_lossy(&seeded.stderr)
    );

    let mut sent = Vec::new();
    for tool in AvroTool::BOTH {
        let doc = json!({
            "id": id_for(tool, "request"), "tenant": "acme", "user": "ana", "kind": "market.volatility",
            "params": {"symbol": "AAPL", "window_days": 30}, "priority": "normal", "issued_at": now_millis(),
            "deadline": null, "reply_to": null, "entitlements": []
        });
        sent.push(doc["id"].as_str().unwrap().to_string());
        produce(&settings, &requests, written_by(tool, "request.avsc", &[doc], by_id)).await;
    }
    sent.sort();

    let disk = tempfile::tempdir().expect("cache folder");
    let redis_prefix = unique("interop:serve");
    let mut worker = Worker::start(
        "serve",
        &[
            ("FRONTIER_WORKERS__SERVE__INPUT_TOPIC", requests.clone()),
            ("FRONTIER_WORKERS__SERVE__RESPONSES_TOPIC", responses.clone()),
            ("FRONTIER_WORKERS__SERVE__METRICS_TOPIC", metrics.clone()),
            ("FRONTIER_WORKERS__SERVE__HEAT_TOPIC", heat.clone()),
            ("FRONTIER_CACHE__INVALIDATIONS_TOPIC", invalidations.clone()),
            ("FRONTIER_PRICES__QUERY_EVENTS_TOPIC", query_events.clone()),
            ("FRONTIER_PRICES__SCHEMA", schema.clone()),
            ("FRONTIER_WORKERS__SERVE__GROUP_ID", unique("interop.serve.group")),
            ("FRONTIER_CACHE__REDIS_KEY_PREFIX", redis_prefix.clone()),
            ("FRONTIER_CACHE__DISK_DIR", path_str(disk.path())),
            ("FRONTIER_BUS__DLQ_TOPIC", dlq.clone()),
            ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
        ],
    );
    let answers = assert_both_tools_read(&await_messages(&settings, &mut worker, &responses, 2));
    let completed = assert_both_tools_read(&await_messages(&settings, &mut worker, &metrics, 2));
    // The answers' per-key counts for the cache warmer, written on the instance's next tick.
    let heat = assert_both_tools_read(&await_messages(&settings, &mut worker, &heat, 1));
    drop(worker);
    drop_pg_schema(&settings, &schema).await;
    common::redis::delete_prefix(&settings.redis.url, &redis_prefix).await;

    assert_eq!(field(&answers, "request_id"), sent, "one response per request, with its id");
    for answer in &answers {
        assert_eq!(answer["status"], "ok", "{answer}");
    }
    assert_eq!(field(&completed, "id"), sent, "one RequestCompleted event per request");
    let key = completed[0]["cache_key"].as_str().expect("an ok answer's event names its cache key");
    let counted = &heat[0]["keys"][0];
    assert_eq!((heat[0]["service"].as_str(), counted["cache_key"].as_str()), (Some("serve"), Some(key)), "{}", heat[0]);
    assert!(counted["requests"].as_i64().unwrap() >= 1, "{}", heat[0]);
    assert_no_dead_letters(&settings, &dlq);
}

#[tokio::test]
async fn the_cache_warmer_counts_cache_heat_written_by_java_and_fastavro_into_its_hot_set() {
    let settings = settings();
    let redis_url = common::redis::stack_redis(&settings).await;
    let [heat, invalidations, dlq] = topics(&settings, "warmer", ["heat", "invalidations", "dlq"]).await;
    // One key per implementation, answered 5 times in a window that ended just now: hot (the
    // shipped `min_score` is 2), so the warmer lists both in the hot set it publishes.
    let now = now_millis();
    let mut keys = Vec::new();
    for tool in AvroTool::BOTH {
        let params = json!({"symbol": id_for(tool, "key"), "window_days": 30});
        let key = frontier::cache::CacheKey::for_request("market.volatility", &params, "acme", &[]).as_str().to_owned();
        let doc = json!({
            "service": "serve", "instance": id_for(tool, "instance"), "window_start": now - 1_000, "window_end": now,
            "keys": [{"cache_key": key, "kind": "market.volatility", "requests": 5, "last_computed_at": now - 500}]
        });
        produce(&settings, &heat, written_by(tool, "cache_heat.avsc", &[doc], |_| "serve".into())).await;
        keys.push(key);
    }
    let redis_prefix = unique("interop:warmer");
    let mut worker = Worker::start(
        "cache-warmer",
        &[
            ("FRONTIER_WORKERS__CACHE_WARMER__INPUT_TOPIC", heat.clone()),
            ("FRONTIER_WORKERS__CACHE_WARMER__GROUP_ID", unique("interop.warmer.group")),
            ("FRONTIER_WORKERS__CACHE_WARMER__HOT_SET_INTERVAL", "200ms".into()),
            ("FRONTIER_CACHE__INVALIDATIONS_TOPIC", invalidations.clone()),
            ("FRONTIER_CACHE__REDIS_KEY_PREFIX", redis_prefix.clone()),
            ("FRONTIER_BUS__DLQ_TOPIC", dlq.clone()),
            ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
        ],
    );
    let started = std::time::Instant::now();
    let hot_set = loop {
        worker.assert_running();
        let listed = common::redis::hot_set(&redis_url, &redis_prefix).await;
        if listed.len() >= keys.len() || started.elapsed() > Duration::from_secs(30) {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(worker);
    common::redis::delete_prefix(&redis_url, &redis_prefix).await;

    let mut listed: Vec<&str> = hot_set.iter().map(|(key, _)| key.as_str()).collect();
    listed.sort();
    keys.sort();
    assert_eq!(listed, keys, "both implementations' keys are hot: {hot_set:?}");
    for (key, score) in &hot_set {
        // Five answers each, decayed by the seconds since (a 60 s half-life).
        assert!((4.0..=5.0 + 1e-9).contains(score), "{key} scored {score}, not about its 5 answers");
    }
    assert_no_dead_letters(&settings, &dlq);
}

#[tokio::test]
async fn the_inference_batcher_answers_embed_jobs_written_by_java_and_fastavro_with_results_both_read() {
    let model_dir = common::model_server::model_dir();
    let settings = settings();
    let [jobs, results, dlq] = topics(&settings, "inference", ["jobs", "results", "dlq"]).await;
    // The model the development config serves in-process.
    const MODEL: &str = "all-minilm-l6-v2";
    let mut sent = Vec::new();
    for tool in AvroTool::BOTH {
        let doc = json!({
            "id": id_for(tool, "job"), "model": MODEL, "task": "embed", "inputs": ["Oil prices rise"], "labels": null,
            "priority": "normal", "issued_at": now_millis(), "deadline": null, "reply_to": null
        });
        sent.push(doc["id"].as_str().unwrap().to_string());
        produce(&settings, &jobs, written_by(tool, "inference_job.avsc", &[doc], by_id)).await;
    }
    sent.sort();

    let mut worker = Worker::start(
        "inference-batcher",
        &[
            ("FRONTIER_WORKERS__INFERENCE__INPUT_TOPIC", jobs.clone()),
            ("FRONTIER_WORKERS__INFERENCE__RESULTS_TOPIC", results.clone()),
            ("FRONTIER_WORKERS__INFERENCE__GROUP_ID", unique("interop.inference.group")),
            ("FRONTIER_WORKERS__INFERENCE__MODEL_DIR", path_str(&model_dir)),
            // The batch settings endpoint on a port of its own.
            ("FRONTIER_WORKERS__INFERENCE__ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("FRONTIER_BUS__DLQ_TOPIC", dlq.clone()),
            ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
        ],
    );
    let answered = assert_both_tools_read(&await_messages(&settings, &mut worker, &results, 2));
    drop(worker);

    assert_eq!(field(&answered, "job_id"), sent, "one result per job, with its id");
    for result in &answered {
        assert_eq!(result["status"], "ok", "{result}");
        let embeddings = result["embeddings"].as_array().expect("embeddings");
        assert_eq!(embeddings.len(), 1, "one vector per input");
        assert_eq!(embeddings[0].as_array().map(Vec::len), Some(384));
    }
    assert_no_dead_letters(&settings, &dlq);
}

#[tokio::test]
async fn the_sla_monitor_counts_request_completed_events_from_java_and_fastavro_and_both_read_its_alert_status_and_checkpoint()
 {
    let settings = settings();
    let [metrics, alerts, query_events, status, autoscale, dlq, counters] =
        topics(&settings, "sla", ["metrics", "alerts", "query-events", "status", "autoscale", "dlq", "slo-counters"])
            .await;
    // Slow requests three minutes ago (event time), ten from each implementation: the rule needs
    // all twenty, so the alert fires only if every event from both was consumed.
    const PER_TOOL: usize = 10;
    let at = now_millis() - 180_000;
    for tool in AvroTool::BOTH {
        let docs: Vec<Value> = (0..PER_TOOL)
            .map(|i| {
                json!({
                    "id": id_for(tool, &format!("completed-{i}")), "service": "serving", "kind": "market.volatility",
                    "tenant": "acme", "latency_ms": 500.0, "status": "ok", "cache_layer": "none",
                    "occurred_at": at, "instance": null, "cache_key": null
                })
            })
            .collect();
        produce(
            &settings,
            &metrics,
            written_by(tool, "request_completed.avsc", &docs, |_| "serving/market.volatility".into()),
        )
        .await;
    }
    let rule = format!(
        r#"[{{name="LatencyP95High", sli="latency_p95", comparison="above", threshold=200.0, window="1m", for="0s", min_events={}, severity="critical"}}]"#,
        2 * PER_TOOL
    );
    let mut worker = Worker::start(
        "sla-monitor",
        &[
            ("FRONTIER_WORKERS__SLA__INPUT_TOPIC", metrics.clone()),
            ("FRONTIER_WORKERS__SLA__ALERTS_TOPIC", alerts.clone()),
            ("FRONTIER_WORKERS__SLA__QUERY_EVENTS_TOPIC", query_events.clone()),
            ("FRONTIER_WORKERS__SLA__WORKER_STATUS_TOPIC", status.clone()),
            ("FRONTIER_WORKERS__SLA__AUTOSCALE_TOPIC", autoscale.clone()),
            ("FRONTIER_WORKERS__SLA__GROUP_ID", unique("interop.sla.group")),
            ("FRONTIER_WORKERS__SLA__EVALUATION_INTERVAL", "200ms".into()),
            ("FRONTIER_WORKERS__SLA__MONITOR__RULES", rule),
            // The shipped SLOs (100 events before they judge anything), checkpointed every second.
            ("FRONTIER_WORKERS__SLA__SLO_COUNTERS_TOPIC", counters.clone()),
            ("FRONTIER_WORKERS__SLA__SLO_CHECKPOINT_INTERVAL", "1s".into()),
            ("FRONTIER_WORKERS__SLA__MONITOR__SIGNALS", "[]".into()),
            ("FRONTIER_BUS__DLQ_TOPIC", dlq.clone()),
            ("FRONTIER_BUS__STATUS_TOPIC", status.clone()),
            ("FRONTIER_BUS__STATUS_INTERVAL", "1s".into()),
        ],
    );
    let fired = assert_both_tools_read(&await_messages(&settings, &mut worker, &alerts, 1));
    let statuses = assert_both_tools_read(&await_messages(&settings, &mut worker, &status, 1));
    let checkpoints = assert_both_tools_read(&await_messages(&settings, &mut worker, &counters, 1));
    drop(worker);

    assert_eq!(
        (fired[0]["name"].as_str(), fired[0]["status"].as_str()),
        (Some("LatencyP95High"), Some("firing")),
        "{}",
        fired[0]
    );
    assert_eq!(statuses[0]["service"], "sla-monitor", "{}", statuses[0]);
    let latency_slo = checkpoints[0]["slos"].as_array().unwrap().iter().find(|slo| slo["slo"] == "LatencySLO");
    let minutes = latency_slo.expect("LatencySLO counted").get("minutes").unwrap();
    assert_eq!((minutes[0]["events"].as_i64(), minutes[0]["bad"].as_i64()), (Some(20), Some(20)), "{}", checkpoints[0]);
    assert_no_dead_letters(&settings, &dlq);
}

#[tokio::test]
async fn tail_prints_records_written_by_java_and_fastavro_as_the_plain_json_they_read() {
    let settings = settings();
    let topic = unique("interop.tail");
    create_topics(&settings, &[&topic], 1).await;
    let schema = catalog().by_file("request.avsc").unwrap();
    let (mut meant, mut bytes) = (Vec::new(), Vec::new());
    for tool in AvroTool::BOTH {
        let mut doc = request_json(&id_for(tool, "tail"));
        doc["params"] = json!({"symbols": ["AAPL", "MSFT"], "weights": {"AAPL": 0.6, "MSFT": 0.4}, "adjusted": true});
        let records = written_by(tool, "request.avsc", std::slice::from_ref(&doc), by_id);
        bytes.extend(records.iter().map(|(_, b)| b.clone()));
        produce(&settings, &topic, records).await;
        // The document as we read it: defaults filled.
        meant.push(avro_to_json(&json_to_avro(&doc, &schema.schema).unwrap()));
    }

    let tail =
        frontier().args(["tail", &topic, "--from-beginning", "--max", "2", "--timeout", "30s"]).output().unwrap();
    assert!(tail.status.success(), "tail failed: {}", String::from_utf8_lossy(&tail.stderr));
    let printed: Vec<Value> =
        String::from_utf8(tail.stdout).unwrap().lines().map(|l| parse_exact(l).expect("a JSON line")).collect();
    assert_eq!(printed, meant, "tail prints the records as they were written");
    for tool in AvroTool::BOTH {
        assert_eq!(printed, tool.decode_all(&bytes), "tail prints what {} reads", tool.name());
    }
}
