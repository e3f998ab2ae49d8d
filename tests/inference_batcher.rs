//! The inference batcher against the real broker and the real model (all-MiniLM-L6-v2 from
//! `ops/models`): jobs published by hand in, results out. (The scheduling rules are specified in
//! detail, with a test backend, by the unit tests in `src/inference/batcher/tests.rs`.)
//!
//! Debug builds run the model about 100x slower than release, so each test keeps its job count
//! small.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::*;
use frontier::bus::json::json_to_avro;
use frontier::bus::{ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog};
use frontier::clock::now_millis;
use frontier::inference::batcher::{BatchingSettings, JobStatus};
use frontier::inference::model::EmbeddingModel;
use frontier::records::InferenceResult;
use frontier::settings::Settings;
use frontier::workers::inference_batcher::{self as worker, InferenceBatcherSettings, InferenceWorker, ModelSettings};
use rdkafka::Message;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const MODEL: &str = "minilm";

/// The model, loaded once for every test of this file.
fn model() -> Arc<EmbeddingModel> {
    static MODEL_ONCE: OnceLock<Arc<EmbeddingModel>> = OnceLock::new();
    MODEL_ONCE
        .get_or_init(|| {
            Arc::new(
                EmbeddingModel::load(&repo().join("models/all-MiniLM-L6-v2"))
                    .expect("model files present (ops/models)"),
            )
        })
        .clone()
}

struct Running {
    token: CancellationToken,
    batcher_token: CancellationToken,
    task: tokio::task::JoinHandle<Result<LoopReport, frontier::bus::BusError>>,
}

/// Fresh topics and a worker config serving `MODEL` in-process with `batching`.
async fn setup(name: &str, batching: BatchingSettings) -> (Settings, InferenceBatcherSettings) {
    let mut settings = settings();
    let (jobs, results, dlq) =
        (unique(&format!("{name}.jobs")), unique(&format!("{name}.results")), unique(&format!("{name}.dlq")));
    settings.bus.dlq_topic = dlq.clone();
    create_topics(&settings, &[&jobs, &results, &dlq], 1).await;
    let config = InferenceBatcherSettings {
        input_topic: jobs,
        results_topic: results,
        admin_listen: None,
        models: [(
            MODEL.to_owned(),
            ModelSettings { instances: vec!["in-process".into()], batching, ..ModelSettings::default() },
        )]
        .into(),
        ..InferenceBatcherSettings::default()
    };
    (settings, config)
}

/// Starts the worker the way `frontier run inference-batcher` does.
async fn start(settings: &Settings, config: &InferenceBatcherSettings) -> Running {
    let catalog = catalog();
    let batcher_token = CancellationToken::new();
    let batcher = worker::start_batcher(config, Some(model()), batcher_token.clone()).expect("batcher starts");
    let worker = Arc::new(InferenceWorker::new(config, &catalog, batcher).expect("worker"));
    let options = LoopOptions::new(&settings.bus, unique("group"), vec![config.input_topic.clone()]);
    let consumer_loop = ConsumerLoop::new(&settings.kafka, options, worker, catalog).expect("loop");
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer_loop.run(token.clone()));
    Running { token, batcher_token, task }
}

async fn stop(running: Running) -> LoopReport {
    running.token.cancel();
    let report = running.task.await.unwrap().expect("the worker stops cleanly");
    running.batcher_token.cancel();
    report
}

/// An `InferenceJob` as JSON.
fn job(id: &str, task: &str, inputs: &[&str], priority: &str, deadline: Option<i64>) -> Value {
    json!({
        "id": id, "model": MODEL, "task": task, "inputs": inputs, "labels": null, "priority": priority,
        "issued_at": now_millis(), "deadline": deadline, "reply_to": null
    })
}

fn encode(catalog: &SchemaCatalog, jobs: &[Value]) -> Vec<(Option<String>, Vec<u8>)> {
    let schema = catalog.by_file("inference_job.avsc").unwrap();
    jobs.iter()
        .map(|doc| {
            let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(doc, &schema.schema).unwrap()).unwrap();
            (doc["id"].as_str().map(String::from), bytes)
        })
        .collect()
}

/// The results on `topic` in the order they were produced, waiting for `count` (or 3 minutes).
async fn results(settings: &Settings, topic: &str, count: usize) -> Vec<InferenceResult> {
    let (settings, topic) = (settings.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let catalog = catalog();
        read_topic(&settings, &topic, count, Duration::from_secs(180))
            .iter()
            .map(|m| {
                apache_avro::from_value(&catalog.decode(m.payload().unwrap()).unwrap().value)
                    .expect("an InferenceResult")
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Publishes `jobs`, runs the worker until `count` results arrived, stops it.
async fn run_jobs(
    name: &str,
    batching: BatchingSettings,
    jobs: &[Value],
    count: usize,
) -> (Settings, Vec<InferenceResult>) {
    let (settings, config) = setup(name, batching).await;
    // Published before the worker starts, so they all wait in Kafka and reach the batcher together.
    produce(&settings, &config.input_topic, encode(&catalog(), jobs)).await;
    let running = start(&settings, &config).await;
    let answered = results(&settings, &config.results_topic, count).await;
    stop(running).await;
    (settings, answered)
}

fn unbatched() -> BatchingSettings {
    BatchingSettings { max_batch_size: 1, preferred_batch_sizes: vec![], ..BatchingSettings::default() }
}

#[tokio::test]
async fn an_embed_job_is_answered_with_one_384_dimensional_unit_vector_per_input() {
    let jobs = [job("embed-1", "embed", &["Central bank holds rates steady", "Oil prices rise"], "normal", None)];
    let (_, answered) = run_jobs("embed", BatchingSettings::default(), &jobs, 1).await;
    assert_eq!(answered.len(), 1, "no result");
    let result = &answered[0];
    assert_eq!((result.job_id.as_str(), result.model.as_str(), result.status), ("embed-1", MODEL, JobStatus::Ok));
    assert_eq!(result.instance, "local");
    let embeddings = result.embeddings.as_ref().expect("embeddings");
    assert_eq!(embeddings.len(), 2);
    for vector in embeddings {
        assert_eq!(vector.len(), 384);
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    assert_eq!(result.batch_size, 2);
    assert!(result.inference_time_ms > 0.0 && result.queue_time_ms >= 0.0);
    assert!(result.completed_at >= now_millis() - 600_000);
    assert!(result.error.is_none() && result.classifications.is_none());
}

#[tokio::test]
async fn classify_labels_a_crash_and_fraud_headline_negative() {
    let headline = "Shares crash after the company reports a massive loss and fraud probe";
    let jobs = [job("classify-1", "classify", &[headline], "high", None)];
    let (_, answered) = run_jobs("classify", BatchingSettings::default(), &jobs, 1).await;
    let result = answered.first().expect("a result");
    assert_eq!(result.status, JobStatus::Ok, "{:?}", result.error);
    let classes = result.classifications.as_ref().expect("classifications");
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0].label, "negative", "{:?}", classes[0].scores);
    let total: f64 = classes[0].scores.values().sum();
    assert!((total - 1.0).abs() < 1e-4);
    assert_eq!(classes[0].scores.len(), 3);
}

#[tokio::test]
async fn jobs_arriving_together_run_in_batches_of_more_than_one() {
    let texts: Vec<String> = (0..12).map(|i| format!("Company {i} reports quarterly earnings")).collect();
    let jobs: Vec<Value> =
        texts.iter().enumerate().map(|(i, t)| job(&format!("load-{i}"), "embed", &[t], "normal", None)).collect();
    let (_, answered) = run_jobs("load", BatchingSettings::default(), &jobs, jobs.len()).await;
    assert_eq!(answered.len(), 12);
    assert!(answered.iter().all(|r| r.status == JobStatus::Ok));
    let largest = answered.iter().map(|r| r.batch_size).max().unwrap_or(0);
    assert!(largest > 1, "every job ran alone: {:?}", answered.iter().map(|r| r.batch_size).collect::<Vec<_>>());
}

#[tokio::test]
async fn critical_jobs_queued_behind_a_backlog_are_answered_before_low_ones() {
    let mut jobs: Vec<Value> =
        (0..6).map(|i| job(&format!("low-{i}"), "embed", &[&format!("backlog item {i}")], "low", None)).collect();
    jobs.extend(
        (0..3).map(|i| job(&format!("critical-{i}"), "embed", &[&format!("urgent item {i}")], "critical", None)),
    );
    // One job per batch, no aging within the test: the order of results is the scheduling order.
    let batching = BatchingSettings { aging_interval: Duration::from_secs(3600), ..unbatched() };
    let (_, answered) = run_jobs("priority", batching, &jobs, jobs.len()).await;
    let order: Vec<&str> = answered.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(order.len(), 9, "{order:?}");
    let last_critical = order.iter().rposition(|id| id.starts_with("critical")).unwrap();
    let lows_before = order[..last_critical].iter().filter(|id| id.starts_with("low")).count();
    // At most the first low job (sent before the critical ones had arrived) runs earlier.
    assert!(lows_before <= 1, "critical jobs waited behind low ones: {order:?}");
}

#[tokio::test]
async fn a_job_whose_deadline_passed_is_answered_expired_without_running() {
    let (settings, config) = setup("deadline", BatchingSettings::default()).await;
    let catalog = catalog();
    let jobs = [
        job("stale", "embed", &["yesterday's news"], "critical", Some(now_millis() + 50)),
        job("fresh", "embed", &["today's news"], "normal", None),
    ];
    produce(&settings, &config.input_topic, encode(&catalog, &jobs)).await;
    // The worker reaches the jobs after the first one's deadline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = start(&settings, &config).await;
    let answered = results(&settings, &config.results_topic, 2).await;
    stop(running).await;
    let stale = answered.iter().find(|r| r.job_id == "stale").expect("the stale job is answered");
    assert_eq!(stale.status, JobStatus::Expired);
    assert_eq!((stale.batch_size, stale.inference_time_ms, stale.instance.as_str()), (0, 0.0, ""));
    assert!(stale.embeddings.is_none() && stale.error.is_some());
    let fresh = answered.iter().find(|r| r.job_id == "fresh").expect("the fresh job is answered");
    assert_eq!((fresh.status, fresh.batch_size), (JobStatus::Ok, 1), "only the fresh job ran");
}

#[tokio::test]
async fn a_job_arriving_at_a_full_queue_is_rejected() {
    let mut batching = unbatched();
    batching.policies.low.max_queue_size = 1;
    let jobs: Vec<Value> =
        (0..5).map(|i| job(&format!("low-{i}"), "embed", &[&format!("item {i}")], "low", None)).collect();
    let (_, answered) = run_jobs("full", batching, &jobs, jobs.len()).await;
    assert_eq!(answered.len(), 5);
    let rejected: Vec<&InferenceResult> = answered.iter().filter(|r| r.status == JobStatus::Rejected).collect();
    // One runs, one waits; the rest arrive while the low queue is full.
    assert!(rejected.len() >= 2, "{answered:?}");
    assert!(rejected.iter().all(|r| r.error.as_deref().is_some_and(|e| e.contains("full")) && r.batch_size == 0));
    assert!(answered.iter().any(|r| r.status == JobStatus::Ok));
}

#[tokio::test]
async fn a_job_may_name_the_shipped_model_by_its_published_name_in_any_case() {
    let (settings, mut config) = setup("alias", BatchingSettings::default()).await;
    // The model table as shipped: all-minilm-l6-v2 with its published names as aliases.
    config.models = InferenceBatcherSettings::default().models;
    let asked = ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "ALL-MINILM-L6-V2"];
    let jobs: Vec<Value> = asked
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut doc = job(&format!("alias-{i}"), "embed", &["Rates unchanged"], "normal", None);
            doc["model"] = json!(name);
            doc
        })
        .collect();
    produce(&settings, &config.input_topic, encode(&catalog(), &jobs)).await;
    let running = start(&settings, &config).await;
    let answered = results(&settings, &config.results_topic, jobs.len()).await;
    stop(running).await;
    assert_eq!(answered.len(), jobs.len());
    for result in answered {
        // Answered, under the name the job asked for (the result copies it).
        let id: usize = result.job_id.trim_start_matches("alias-").parse().unwrap();
        assert_eq!((result.status, result.model.as_str()), (JobStatus::Ok, asked[id]), "{:?}", result.error);
    }
}

#[tokio::test]
async fn an_unknown_model_is_answered_rejected_not_dead_lettered() {
    let mut unknown = job("unknown-1", "embed", &["hello"], "normal", None);
    unknown["model"] = json!("gpt-17");
    let (settings, answered) = run_jobs("unknown", BatchingSettings::default(), &[unknown], 1).await;
    let result = answered.first().expect("a result");
    assert_eq!(result.status, JobStatus::Rejected);
    assert!(result.error.as_deref().unwrap().contains("unknown model `gpt-17`"), "{:?}", result.error);
    let letters =
        tokio::task::spawn_blocking(move || read_topic(&settings, &settings.bus.dlq_topic, 1, Duration::from_secs(2)))
            .await
            .unwrap();
    assert!(letters.is_empty());
}

#[tokio::test]
async fn with_two_model_serve_instances_one_killed_mid_load_every_job_is_answered_by_the_survivor() {
    use common::model_server::{ModelServer, free_port};
    let (mut victim, survivor) =
        tokio::join!(ModelServer::start_named(free_port(), MODEL), ModelServer::start_named(free_port(), MODEL));
    let batching = BatchingSettings { max_batch_size: 4, preferred_batch_sizes: vec![], ..BatchingSettings::default() };
    let (settings, mut config) = setup("failover", batching).await;
    config.models.insert(
        MODEL.to_owned(),
        ModelSettings { instances: vec![victim.url(), survivor.url()], ..config.models[MODEL].clone() },
    );
    let jobs: Vec<Value> = (0..60)
        .map(|i| job(&format!("job-{i}"), "embed", &[&format!("headline number {i} about markets")], "normal", None))
        .collect();
    produce(&settings, &config.input_topic, encode(&catalog(), &jobs)).await;
    let running = start(&settings, &config).await;

    // Some jobs answered by both instances, then the victim dies with batches in flight.
    let early = results(&settings, &config.results_topic, 8).await;
    assert!(early.len() >= 8, "no results before the kill");
    victim.kill();
    let killed_at = now_millis();
    let answered = results(&settings, &config.results_topic, 60).await;
    stop(running).await;

    assert_eq!(answered.len(), 60, "every job answered");
    let failed: Vec<_> = answered.iter().filter(|r| r.status != JobStatus::Ok).collect();
    assert!(failed.is_empty(), "every job answered ok: {failed:#?}");
    // Allow a second for batches the victim had already answered on the wire.
    let late: Vec<_> = answered.iter().filter(|r| r.completed_at > killed_at + 1_000).collect();
    assert!(!late.is_empty(), "some jobs ran after the kill");
    assert!(
        late.iter().all(|r| r.instance == survivor.url()),
        "after the kill only the survivor answers: {:?}",
        late.iter().map(|r| &r.instance).collect::<Vec<_>>()
    );
}
