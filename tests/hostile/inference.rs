//! `frontier run inference-batcher` against crafted jobs.

use std::collections::BTreeMap;

use frontier::bus::SchemaCatalog;
use frontier::bus::json::json_to_avro;
use frontier::clock::now_millis;
use frontier::records::InferenceJob;
use frontier::settings::Settings;
use serde_json::{Value, json};

use super::common::process::{PATIENCE, Worker, topics};
use super::common::*;

/// The model the development config serves in-process.
const MODEL: &str = "all-minilm-l6-v2";

/// An inference batcher with its own topics; batches of at most `max_batch` inputs.
struct Batching {
    settings: Settings,
    jobs: String,
    results: String,
    worker: Worker,
}

impl Batching {
    async fn start(test: &str, max_batch: usize) -> Batching {
        let model_dir = super::common::model_server::model_dir();
        let settings = settings();
        let [jobs, results, dlq] =
            topics(&settings, &format!("hostile.inference.{test}"), ["jobs", "results", "dlq"]).await;
        let worker = Worker::start(
            "inference-batcher",
            &[
                ("FRONTIER_WORKERS__INFERENCE__INPUT_TOPIC", jobs.clone()),
                ("FRONTIER_WORKERS__INFERENCE__RESULTS_TOPIC", results.clone()),
                ("FRONTIER_WORKERS__INFERENCE__GROUP_ID", unique("hostile.inference.group")),
                ("FRONTIER_WORKERS__INFERENCE__MODEL_DIR", path_str(&model_dir)),
                ("FRONTIER_WORKERS__INFERENCE__ADMIN_LISTEN", "127.0.0.1:0".into()),
                (
                    "FRONTIER_WORKERS__INFERENCE__MODELS__ALL-MINILM-L6-V2__BATCHING__MAX_BATCH_SIZE",
                    max_batch.to_string(),
                ),
                ("FRONTIER_WORKERS__INFERENCE__MODELS__ALL-MINILM-L6-V2__BATCHING__PREFERRED_BATCH_SIZES", "[]".into()),
                ("FRONTIER_BUS__DLQ_TOPIC", dlq),
                ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
            ],
        );
        Batching { settings, jobs, results, worker }
    }

    async fn send(&self, doc: &Value) {
        let catalog = catalog();
        let schema = catalog.schema_of::<InferenceJob>().unwrap();
        let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(doc, &schema.schema).unwrap()).unwrap();
        produce(&self.settings, &self.jobs, vec![(doc["id"].as_str().map(String::from), bytes)]).await;
    }

    /// The result of job `id`.
    fn result(&mut self, id: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            self.worker.assert_running();
            let all = decoded_json(
                &catalog(),
                &read_topic(&self.settings, &self.results, usize::MAX, std::time::Duration::from_secs(2)),
            );
            if let Some(found) = all.into_iter().find(|r| r["job_id"] == id) {
                return found;
            }
            assert!(
                started.elapsed() < PATIENCE * 2,
                "no result for {id}; the worker's log:\n{}",
                self.worker.log_text()
            );
        }
    }
}

/// A job due within a minute (the priorities' default timeouts are tuned for release builds).
fn job(task: &str, inputs: Vec<String>, labels: Option<BTreeMap<String, String>>, priority: &str) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(), "model": MODEL, "task": task, "inputs": inputs, "labels": labels,
        "priority": priority, "issued_at": now_millis(), "deadline": now_millis() + 60_000, "reply_to": null
    })
}

#[tokio::test]
async fn a_classify_job_of_100_inputs_by_1000_labels_is_rejected_not_run() {
    let mut batching = Batching::start("labels-by-inputs", 64).await;
    let inputs = (0..100).map(|i| format!("headline {i}")).collect();
    let labels = (0..1000).map(|i| (format!("label{i}"), format!("description of label {i}"))).collect();
    let big = job("classify", inputs, Some(labels), "normal");
    batching.send(&big).await;

    let result = batching.result(big["id"].as_str().unwrap());
    assert_eq!(result["status"], "rejected", "{result}");
    assert!(result["error"].as_str().unwrap().contains("labels"), "{result}");
    let normal = job("embed", vec!["Oil prices rise".into()], None, "normal");
    batching.send(&normal).await;
    assert_eq!(batching.result(normal["id"].as_str().unwrap())["status"], "ok");
}

#[tokio::test]
async fn a_job_larger_than_a_batch_runs_in_chunks_and_a_critical_job_sent_after_it_finishes_first() {
    let mut batching = Batching::start("chunks", 8).await;
    let big = job("embed", (0..64).map(|i| format!("Headline number {i} about the markets")).collect(), None, "low");
    batching.send(&big).await;
    let critical = job("embed", vec!["Fraud charges hit the bank".into()], None, "critical");
    batching.send(&critical).await;

    let critical_result = batching.result(critical["id"].as_str().unwrap());
    let big_result = batching.result(big["id"].as_str().unwrap());
    assert_eq!((critical_result["status"].as_str(), big_result["status"].as_str()), (Some("ok"), Some("ok")));
    assert!(
        big_result["batch_size"].as_i64().unwrap() <= 8,
        "no batch over max_batch_size: {}",
        big_result["batch_size"]
    );
    assert_eq!(big_result["embeddings"].as_array().unwrap().len(), 64, "every input answered, in one result");
    assert!(
        critical_result["completed_at"].as_i64().unwrap() < big_result["completed_at"].as_i64().unwrap(),
        "the critical job did not wait for the whole low-priority job"
    );
}
