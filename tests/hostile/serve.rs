//! `frontier run serve` against crafted requests.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use frontier::bus::SchemaCatalog;
use frontier::bus::json::json_to_avro;
use frontier::clock::now_millis;
use frontier::records::{AnalysisRequest, ParamValue, Priority};
use frontier::settings::Settings;
use serde_json::{Value, json};

use super::common::process::{PATIENCE, Worker, drop_pg_schema, topics};
use super::common::*;
use super::{DeadLetter, dead_letters, produce_large};

/// The five symbols every test's schema holds.
const SYMBOLS: [&str; 5] = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA"];

/// A serving worker with its own topics, price schema, Redis prefix and disk folder.
struct Serving {
    settings: Settings,
    requests: String,
    responses: String,
    dlq: String,
    schema: String,
    redis_prefix: String,
    worker: Worker,
    /// Responses read so far, by request id.
    answers: HashMap<String, Value>,
    _disk: tempfile::TempDir,
}

impl Serving {
    async fn start(test: &str) -> Serving {
        let settings = settings();
        super::common::redis::stack_redis(&settings).await;
        let [requests, responses, metrics, heat, invalidations, query_events, dlq] = topics(
            &settings,
            &format!("hostile.serve.{test}"),
            ["requests", "responses", "metrics", "heat", "invalidations", "query-events", "dlq"],
        )
        .await;
        let schema = format!("test_hostile_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let seeded = frontier()
            .args(["seed", "--symbols", "5", "--days", "300", "--names", &SYMBOLS.join(","), "--schema", &schema])
            .args(["--invalidations-topic", &invalidations, "--query-events-topic", &query_events])
            .output()
            .expect("frontier seed runs");
        assert!(
            seeded.status.success(),
            "frontier seed failed ({START_HINT}): {}",
            String::from_utf8_lossy(&seeded.stderr)
        );
        let disk = tempfile::tempdir().expect("cache folder");
        let redis_prefix = unique("hostile:serve");
        let worker = Worker::start(
            "serve",
            &[
                ("FRONTIER_WORKERS__SERVE__INPUT_TOPIC", requests.clone()),
                ("FRONTIER_WORKERS__SERVE__RESPONSES_TOPIC", responses.clone()),
                ("FRONTIER_WORKERS__SERVE__METRICS_TOPIC", metrics.clone()),
                ("FRONTIER_WORKERS__SERVE__HEAT_TOPIC", heat),
                ("FRONTIER_WORKERS__SERVE__GROUP_ID", unique("hostile.serve.group")),
                ("FRONTIER_CACHE__INVALIDATIONS_TOPIC", invalidations),
                ("FRONTIER_CACHE__REDIS_KEY_PREFIX", redis_prefix.clone()),
                ("FRONTIER_CACHE__DISK_DIR", path_str(disk.path())),
                ("FRONTIER_PRICES__QUERY_EVENTS_TOPIC", query_events),
                ("FRONTIER_PRICES__SCHEMA", schema.clone()),
                ("FRONTIER_BUS__DLQ_TOPIC", dlq.clone()),
                ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
            ],
        );
        Serving {
            settings,
            requests,
            responses,
            dlq,
            schema,
            redis_prefix,
            worker,
            answers: HashMap::new(),
            _disk: disk,
        }
    }

    /// Publishes a request given as plain JSON (keyed by its id).
    async fn send(&self, doc: &Value) {
        let catalog = catalog();
        let schema = catalog.schema_of::<AnalysisRequest>().unwrap();
        let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(doc, &schema.schema).unwrap()).unwrap();
        produce(&self.settings, &self.requests, vec![(doc["id"].as_str().map(String::from), bytes)]).await;
    }

    /// Publishes a typed request (for values plain JSON cannot carry, like NaN).
    async fn send_record(&self, request: &AnalysisRequest) {
        let bytes = catalog().encode_record(request).unwrap();
        produce(&self.settings, &self.requests, vec![(Some(request.id.clone()), bytes)]).await;
    }

    /// The response to request `id` on the responses topic, failing with the worker's log if it
    /// does not come (or the worker stopped).
    fn answer(&mut self, id: &str) -> Value {
        let started = Instant::now();
        while !self.answers.contains_key(id) {
            self.worker.assert_running();
            assert!(
                started.elapsed() < PATIENCE,
                "no answer to {id} within {PATIENCE:?}; the worker's log:\n{}",
                self.worker.log_text()
            );
            let read = read_topic(&self.settings, &self.responses, usize::MAX, std::time::Duration::from_secs(2));
            for response in decoded_json(&catalog(), &read) {
                self.answers.insert(response["request_id"].as_str().unwrap_or_default().to_string(), response);
            }
        }
        self.answers[id].clone()
    }

    /// The dead letters so far, at least `count`.
    fn dead_letters(&mut self, count: usize) -> Vec<DeadLetter> {
        self.worker.assert_running();
        let letters = dead_letters(&self.settings, &self.dlq, count);
        assert!(
            letters.len() >= count,
            "{} of {count} dead letters; the worker's log:\n{}",
            letters.len(),
            self.worker.log_text()
        );
        letters
    }

    /// A normal request is still answered, and the worker runs.
    async fn still_serves(&mut self) {
        let normal = request("market.volatility", json!({"symbol": "AAPL", "window_days": 30}));
        self.send(&normal).await;
        let answer = self.answer(normal["id"].as_str().unwrap());
        assert_eq!(answer["status"], "ok", "the next normal request is answered: {answer}");
        self.worker.assert_running();
    }

    async fn stop(self) {
        drop(self.worker);
        drop_pg_schema(&self.settings, &self.schema).await;
        super::common::redis::delete_prefix(&self.settings.redis.url, &self.redis_prefix).await;
    }
}

/// A request of `kind` with `params`, issued now, no deadline.
fn request(kind: &str, params: Value) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(), "tenant": "acme", "user": "ana", "kind": kind, "params": params,
        "priority": "normal", "issued_at": now_millis(), "deadline": null, "reply_to": null, "entitlements": []
    })
}

fn id(doc: &Value) -> &str {
    doc["id"].as_str().unwrap()
}

#[tokio::test]
async fn an_answer_too_large_for_a_message_is_answered_response_too_large_and_dead_lettered() {
    let mut serving = Serving::start("large-answer").await;
    // 20,000 confidence levels: 40,000 numbers in the answer, well over a megabyte.
    let levels: Vec<String> = (1..=20_000).map(|i| format!("{:.6}", 0.5 + f64::from(i) * 0.00002)).collect();
    let params = json!({"weights": {"AAPL": 0.5, "MSFT": 0.5}, "confidence_levels": levels, "window_days": 60});
    let large = request("portfolio.risk", params);
    serving.send(&large).await;

    let answer = serving.answer(id(&large));
    assert_eq!(
        (answer["status"].as_str(), answer["error"]["code"].as_str()),
        (Some("error"), Some("response_too_large")),
        "{answer}"
    );
    let letters = serving.dead_letters(1);
    assert_eq!(letters[0].kind, "output_too_large", "{:?}", letters[0]);
    serving.still_serves().await;
    serving.stop().await;
}

#[tokio::test]
async fn a_tenant_too_long_to_echo_is_dead_lettered_truncated_as_field_too_long() {
    let mut serving = Serving::start("long-tenant").await;
    let mut long = request("market.volatility", json!({"symbol": "AAPL"}));
    long["tenant"] = Value::String("t".repeat(1_040_000));
    let catalog = catalog();
    let schema = catalog.schema_of::<AnalysisRequest>().unwrap();
    let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(&long, &schema.schema).unwrap()).unwrap();
    produce_large(&serving.settings, &serving.requests, id(&long), bytes).await;

    let letters = serving.dead_letters(1);
    assert_eq!(letters[0].kind, "field_too_long", "{:?}", letters[0]);
    assert!(letters[0].reason.contains("tenant"), "{:?}", letters[0]);
    let note = letters[0].payload_note.as_deref().unwrap_or_default();
    assert!(note.starts_with("truncated"), "a 1 MB message is kept in part in the DLQ: {note:?}");
    assert!(letters[0].bytes < 1_000_000);
    serving.still_serves().await;
    serving.stop().await;
}

#[tokio::test]
async fn a_reply_to_that_is_no_topic_name_is_answered_invalid_reply_to_on_the_responses_topic() {
    let mut serving = Serving::start("bad-reply-to").await;
    let mut bad = request("market.volatility", json!({"symbol": "AAPL"}));
    bad["reply_to"] = Value::String("bad topic name!".into());
    serving.send(&bad).await;

    let answer = serving.answer(id(&bad));
    assert_eq!(answer["error"]["code"], "invalid_reply_to", "{answer}");
    assert_eq!(serving.dead_letters(1)[0].kind, "invalid_reply_to");
    serving.still_serves().await;
    serving.stop().await;
}

#[tokio::test]
async fn a_flood_of_made_up_reply_to_topics_is_dead_lettered_and_a_normal_request_still_answered() {
    let mut serving = Serving::start("reply-to-flood").await;
    const FLOOD: usize = 3_000;
    let catalog = catalog();
    let schema = catalog.schema_of::<AnalysisRequest>().unwrap();
    let flood: Vec<(Option<String>, Vec<u8>)> = (0..FLOOD)
        .map(|i| {
            let mut doc = request("market.volatility", json!({"symbol": "AAPL"}));
            doc["reply_to"] = Value::String(format!("missing.reply.{}.{i}", uuid::Uuid::new_v4().simple()));
            let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema).unwrap()).unwrap();
            (Some(id(&doc).to_string()), bytes)
        })
        .collect();
    produce(&serving.settings, &serving.requests, flood).await;

    serving.still_serves().await;
    let letters = serving.dead_letters(FLOOD);
    assert_eq!(letters.len(), FLOOD);
    assert!(
        letters.iter().all(|l| l.kind == "unknown_output_topic"),
        "{:?}",
        letters.iter().find(|l| l.kind != "unknown_output_topic")
    );
    serving.stop().await;
}

#[tokio::test]
async fn a_block_count_of_500_million_items_is_dead_lettered_not_an_abort() {
    let mut serving = Serving::start("block-count").await;
    // The 28 bytes of the finding: a request header (the fingerprint Frontier wrote before the
    // canonical-form fix, still read), then an array block announcing 500,000,000 items.
    let poison = hex::decode("c3015e3165aa3106ae77027802740275026b00040200008094ebdc03").unwrap();
    produce(&serving.settings, &serving.requests, vec![(Some("poison".into()), poison)]).await;

    let letters = serving.dead_letters(1);
    assert_eq!(letters[0].kind, "too_large", "{:?}", letters[0]);
    serving.still_serves().await;
    serving.stop().await;
}

#[tokio::test]
async fn an_analysis_over_the_cost_limit_is_answered_too_expensive() {
    let mut serving = Serving::start("too-expensive").await;
    // 100 positions x 1,000,000 paths: about 5.6 s of CPU, over the 2 s a request may take.
    let weights: BTreeMap<String, f64> = (0..100).map(|i| (format!("S{i:03}"), 0.01)).collect();
    let costly = request("portfolio.risk", json!({"weights": weights, "paths": 1_000_000}));
    serving.send(&costly).await;

    let answer = serving.answer(id(&costly));
    assert_eq!(answer["error"]["code"], "too_expensive", "{answer}");
    serving.still_serves().await;
    serving.stop().await;
}

#[tokio::test]
async fn heavy_analyses_arriving_together_do_not_hold_up_a_cheap_one() {
    let mut serving = Serving::start("heavy-burst").await;
    // Ten heavy analyses (five positions x 1,000,000 paths), each its own seed so none is cached.
    let weights: BTreeMap<&str, f64> = SYMBOLS.iter().map(|s| (*s, 0.2)).collect();
    let heavy: Vec<Value> = (0..10)
        .map(|seed| request("portfolio.risk", json!({"weights": weights, "paths": 1_000_000, "seed": seed})))
        .collect();
    for doc in &heavy {
        serving.send(doc).await;
    }
    let cheap = request("market.volatility", json!({"symbol": "MSFT", "window_days": 60}));
    serving.send(&cheap).await;

    let cheap_answer = serving.answer(id(&cheap));
    let heavy_answers: Vec<Value> = heavy.iter().map(|doc| serving.answer(id(doc))).collect();
    assert_eq!(cheap_answer["status"], "ok", "{cheap_answer}");
    assert!(heavy_answers.iter().all(|a| a["status"] == "ok"), "heavy analyses are computed, in turn");
    let last_heavy = heavy_answers.iter().map(|a| a["completed_at"].as_i64().unwrap()).max().unwrap();
    assert!(
        cheap_answer["completed_at"].as_i64().unwrap() < last_heavy,
        "the cheap request, sent after ten heavy ones, was answered before the last of them"
    );
    serving.stop().await;
}

#[tokio::test]
async fn a_nan_rate_is_refused_as_invalid_params_not_taken_as_absent() {
    let mut serving = Serving::start("nan-rate").await;
    let params = BTreeMap::from([
        ("weights".to_string(), ParamValue::Numbers(BTreeMap::from([("AAPL".to_string(), 1.0)]))),
        ("risk_free_rate".to_string(), ParamValue::Double(f64::NAN)),
    ]);
    let nan = AnalysisRequest {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: "acme".into(),
        user: "ana".into(),
        kind: "portfolio.risk".into(),
        params,
        priority: Priority::Normal,
        issued_at: now_millis(),
        deadline: None,
        reply_to: None,
        entitlements: Vec::new(),
    };
    serving.send_record(&nan).await;

    let answer = serving.answer(&nan.id);
    assert_eq!(answer["error"]["code"], "invalid_params", "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("risk_free_rate"), "{answer}");
    serving.still_serves().await;
    serving.stop().await;
}

#[tokio::test]
async fn an_option_on_values_that_overflow_is_refused_not_answered_ok_without_a_price() {
    let mut serving = Serving::start("overflow").await;
    let huge = request(
        "option.price",
        json!({"right": "call", "spot": 1e308, "strike": 1e308, "volatility": 1e308, "time_to_expiry": 1e308}),
    );
    serving.send(&huge).await;

    let answer = serving.answer(id(&huge));
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_params", "{answer}");
    serving.still_serves().await;
    serving.stop().await;
}

#[tokio::test]
async fn a_deadline_of_i64_min_is_answered_timeout_with_a_sane_message() {
    let mut serving = Serving::start("ancient-deadline").await;
    let mut ancient = request("market.volatility", json!({"symbol": "AAPL"}));
    ancient["deadline"] = json!(i64::MIN);
    serving.send(&ancient).await;

    let answer = serving.answer(id(&ancient));
    assert_eq!(
        (answer["status"].as_str(), answer["error"]["code"].as_str()),
        (Some("timeout"), Some("deadline_exceeded"))
    );
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(!message.contains('-'), "no wrapped negative number: {message}");
    serving.still_serves().await;
    serving.stop().await;
}
