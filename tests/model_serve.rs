//! `frontier model-serve` as real processes, and the instance pool over them: the OpenAI wire
//! format, agreement with the in-process model, and surviving an instance killed mid-load.
//! Needs the model files (`ops/models`), not the Kafka stack.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::model_server::{MODEL_NAME, ModelServer, free_port, model_dir};
use frontier::inference::backend::{
    BreakerSettings, BreakerState, EmbeddingBackend, InstancePool, OpenAiEmbeddingsClient, PoolOptions,
};
use frontier::inference::model::EmbeddingModel;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn client_of(server: &ModelServer) -> Arc<dyn EmbeddingBackend> {
    Arc::new(
        OpenAiEmbeddingsClient::new(&server.url(), MODEL_NAME, Duration::from_secs(2), Duration::from_secs(120))
            .expect("valid URL"),
    )
}

fn pool_of(servers: &[&ModelServer], breaker: BreakerSettings) -> Arc<InstancePool> {
    let options = PoolOptions {
        breaker,
        max_attempts: 2,
        health_interval: Duration::from_millis(200),
        health_timeout: Duration::from_secs(2),
    };
    let members = servers.iter().map(|server| client_of(server)).collect();
    Arc::new(InstancePool::new("test-pool", members, options).expect("valid pool"))
}

fn texts(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|index| format!("{prefix} {index}: shares of ACME rose after earnings beat estimates")).collect()
}

async fn post_embeddings(server: &ModelServer, body: Value) -> (reqwest::StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/embeddings", server.url()))
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("model-serve answers");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_through_the_pool_match_the_in_process_model() {
    let dir = model_dir();
    let (first, second) = tokio::join!(ModelServer::start(free_port()), ModelServer::start(free_port()));
    let pool = pool_of(&[&first, &second], BreakerSettings::default());
    let inputs = vec![
        "The central bank raised interest rates by 50 basis points.".to_owned(),
        "Quarterly revenue fell short of analyst expectations.".to_owned(),
        "hello".to_owned(),
        String::new(),
    ];

    let embedded = pool.embed(inputs.clone()).await.expect("the pool embeds");
    let local = tokio::task::spawn_blocking(move || EmbeddingModel::load(&dir)?.embed(&inputs))
        .await
        .expect("loading task")
        .expect("in-process model embeds");

    assert!([first.url(), second.url()].contains(&embedded.instance), "answered by {}", embedded.instance);
    assert_eq!(embedded.vectors.len(), local.len());
    for (served, expected) in embedded.vectors.iter().zip(&local) {
        assert_eq!(served.len(), 384);
        let similarity = cosine(served, expected);
        assert!(similarity > 0.9999, "cosine {similarity} between served and in-process vectors");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_input_gets_an_openai_format_response() {
    let server = ModelServer::start(free_port()).await;
    let (status, body) = post_embeddings(
        &server,
        json!({"model": MODEL_NAME, "input": ["first text", "a second, longer text"], "encoding_format": "float"}),
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], MODEL_NAME);
    let data = body["data"].as_array().expect("data is an array");
    assert_eq!(data.len(), 2);
    for (index, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], index);
        let vector = item["embedding"].as_array().expect("embedding is an array");
        assert_eq!(vector.len(), 384);
        assert!(vector.iter().all(Value::is_f64));
    }
    let prompt_tokens = body["usage"]["prompt_tokens"].as_u64().expect("prompt_tokens");
    // [CLS] and [SEP] around each text: at least three tokens each.
    assert!(prompt_tokens >= 6, "{prompt_tokens}");
    assert_eq!(body["usage"]["total_tokens"], prompt_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_openai_error_body() {
    let server = ModelServer::start(free_port()).await;
    let (status, body) = post_embeddings(&server, json!({"model": MODEL_NAME, "input": [1, 2, 3]})).await;

    assert_eq!(status, 400, "{body}");
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "invalid_value");
    assert_eq!(error["param"], "input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_name_gets_a_404() {
    let server = ModelServer::start(free_port()).await;
    let (status, body) = post_embeddings(&server, json!({"model": "text-embedding-3-small", "input": "x"})).await;

    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_endpoint_lists_the_served_model() {
    let server = ModelServer::start(free_port()).await;
    let body: Value = reqwest::get(format!("{}/v1/models", server.url()))
        .await
        .expect("model-serve answers")
        .json()
        .await
        .expect("a JSON body");

    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["id"], MODEL_NAME);
    assert_eq!(body["data"][0]["object"], "model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_load_leaves_every_batch_to_the_survivor() {
    let (survivor, mut victim) = tokio::join!(ModelServer::start(free_port()), ModelServer::start(free_port()));
    let breaker = BreakerSettings {
        consecutive_failures: 3,
        // Long enough that the victim stays out for the rest of the test.
        cool_down: Duration::from_secs(600),
        ..BreakerSettings::default()
    };
    let pool = pool_of(&[&survivor, &victim], breaker);
    let (survivor_url, victim_url) = (survivor.url(), victim.url());

    const BATCHES: usize = 24;
    const CONCURRENT: usize = 6;
    const KILL_AFTER: usize = 4;
    let completed = Arc::new(AtomicUsize::new(0));
    let killed_at: Arc<tokio::sync::OnceCell<Instant>> = Arc::new(tokio::sync::OnceCell::new());
    let load = futures::stream::iter(0..BATCHES)
        .map(|batch| {
            let (pool, completed) = (Arc::clone(&pool), Arc::clone(&completed));
            async move {
                let started = Instant::now();
                let result = pool.embed(texts(&format!("batch {batch}"), 2)).await;
                completed.fetch_add(1, Ordering::SeqCst);
                (started, result)
            }
        })
        .buffer_unordered(CONCURRENT)
        .collect::<Vec<_>>();
    let killer = async {
        // Kill once the load is well under way, with batches in flight on both instances.
        while completed.load(Ordering::SeqCst) < KILL_AFTER {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        victim.kill();
        killed_at.set(Instant::now()).expect("killed once");
    };
    let (results, ()) = tokio::join!(load, killer);

    let killed_at = *killed_at.get().expect("the victim was killed");
    let mut after_kill = 0;
    for (started, result) in &results {
        let embedded = result.as_ref().expect("every batch succeeds");
        assert_eq!(embedded.vectors.len(), 2);
        if *started > killed_at {
            after_kill += 1;
            assert_eq!(embedded.instance, survivor_url, "a batch started after the kill");
        }
    }
    assert!(after_kill > 0, "the kill came after the last batch started: not mid-load");
    assert_eq!(pool.status(&victim_url).expect("member").state, BreakerState::Open);
    assert_eq!(pool.status(&survivor_url).expect("member").state, BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_is_put_back_and_used_again() {
    let (survivor, mut victim) = tokio::join!(ModelServer::start(free_port()), ModelServer::start(free_port()));
    let victim_port = victim.port;
    let breaker = BreakerSettings {
        consecutive_failures: 2,
        // Only the background health probe can put the instance back within the test.
        cool_down: Duration::from_secs(600),
        ..BreakerSettings::default()
    };
    let pool = pool_of(&[&survivor, &victim], breaker);
    let victim_url = victim.url();
    let shutdown = CancellationToken::new();
    let health_watch = pool.spawn_health_watch(shutdown.clone());

    victim.kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool.status(&victim_url).expect("member").state != BreakerState::Open {
        assert!(Instant::now() < deadline, "the killed instance was never taken out: {:?}", pool.statuses());
        pool.embed(texts("while down", 1)).await.expect("the survivor answers");
    }

    let _restarted = ModelServer::start(victim_port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let embedded = pool.embed(texts("after restart", 1)).await.expect("the pool answers");
        if embedded.instance == victim_url {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted instance was never used: {:?}", pool.statuses());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.status(&victim_url).expect("member").state, BreakerState::Closed);

    shutdown.cancel();
    health_watch.await.expect("the health watch stops");
}
