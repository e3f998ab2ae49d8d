//! `frontier bench inference`: jobs per second through Kafka with batching off (one input per
//! model call) and on (the default settings), the model's own offline throughput at its best
//! batch size in the same run, and latency per priority under a steady load.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{create_topics, median, preload};
use crate::bus::json::json_to_avro;
use crate::bus::{ConsumerLoop, LoopOptions, SchemaCatalog, kafka};
use crate::clock::now_millis;
use crate::inference::batcher::{BatchingSettings, Priority};
use crate::inference::model::{EmbeddingModel, synthetic_headlines, throughput, throughput_in_arrival_order};
use crate::records::InferenceResult;
use crate::settings::Settings;
use crate::workers::inference_batcher::{self as worker, InferenceBatcherSettings, InferenceWorker, ModelSettings};

const MODEL: &str = "bench-minilm";

/// Batch sizes tried offline for the model's best throughput (texts sorted by length first,
/// as sentence-transformers does).
const OFFLINE_BATCH_SIZES: [usize; 5] = [1, 16, 32, 64, 128];

/// The batch size of the offline reference in arrival order (the default `max_batch_size`).
const ARRIVAL_ORDER_BATCH: usize = 64;

/// The priority of job `i`: 10 % critical, 20 % high, 50 % normal, 20 % low.
fn priority_of(i: usize) -> Priority {
    match i % 10 {
        0 => Priority::Critical,
        1 | 2 => Priority::High,
        3 | 4 => Priority::Low,
        _ => Priority::Normal,
    }
}

/// One embed job per text, encoded; the key is the job id.
fn jobs(catalog: &SchemaCatalog, prefix: &str, texts: &[String]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let schema = catalog.by_file("inference_job.avsc")?;
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let id = format!("{prefix}-{i}");
            let doc = json!({
                "id": id, "model": MODEL, "task": "embed", "inputs": [text], "labels": null,
                "priority": priority_of(i).as_str(), "issued_at": now_millis(), "deadline": null, "reply_to": null
            });
            Ok((id.into_bytes(), SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema)?)?))
        })
        .collect()
}

/// A result as the benchmark sees it: job id, batch size, model milliseconds of its batch, when
/// it was read.
type ResultSeen = (String, i32, f64, Instant);

/// Reads `topic` from the beginning on a blocking thread until `count` results or `stop`:
/// see [`ResultSeen`].
fn read_results(
    settings: &Settings,
    catalog: Arc<SchemaCatalog>,
    topic: &str,
    count: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<tokio::task::JoinHandle<Vec<ResultSeen>>> {
    let consumer: BaseConsumer = kafka::base_config(&settings.kafka)
        .set("group.id", format!("bench.inference.reader.{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in kafka::partitions_of(&consumer, topic, settings.kafka.request_timeout)? {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(tokio::task::spawn_blocking(move || {
        let mut seen = Vec::with_capacity(count);
        while seen.len() < count && !stop.load(Ordering::Relaxed) {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let at = Instant::now();
            let Ok(decoded) = catalog.decode(message.payload().unwrap_or_default()) else {
                continue;
            };
            if let Ok(result) = apache_avro::from_value::<InferenceResult>(&decoded.value) {
                // Only jobs that ran count; anything else would flatter the rate.
                if result.status == crate::inference::batcher::JobStatus::Ok {
                    seen.push((result.job_id, result.batch_size, result.inference_time_ms, at));
                } else {
                    tracing::warn!(job = %result.job_id, status = result.status.as_str(), error = ?result.error, "a benchmark job did not run");
                }
            }
        }
        seen
    }))
}

/// Everything one worker run needs stopped afterwards.
struct RunningWorker {
    token: CancellationToken,
    batcher_token: CancellationToken,
    task: tokio::task::JoinHandle<Result<crate::bus::LoopReport, crate::bus::BusError>>,
}

impl RunningWorker {
    async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        self.task.await.context("worker panicked")??;
        self.batcher_token.cancel();
        Ok(())
    }
}

fn start_worker(
    settings: &Settings,
    catalog: &Arc<SchemaCatalog>,
    config: &InferenceBatcherSettings,
    model: &Arc<EmbeddingModel>,
    group: String,
) -> anyhow::Result<RunningWorker> {
    let batcher_token = CancellationToken::new();
    let batcher = worker::start_batcher(config, Some(model.clone()), batcher_token.clone())?;
    let worker = Arc::new(InferenceWorker::new(config, catalog, batcher)?);
    let options = LoopOptions::new(&settings.bus, group, vec![config.input_topic.clone()]);
    let token = CancellationToken::new();
    let task = tokio::spawn(ConsumerLoop::new(&settings.kafka, options, worker, catalog.clone())?.run(token.clone()));
    Ok(RunningWorker { token, batcher_token, task })
}

/// The worker's settings for one run. Queue timeouts are lifted: a backlog drained at the
/// unbatched rate takes longer than the critical timeout, and a job answered `expired` without
/// running would flatter the rate.
fn worker_config(
    settings: &Settings,
    input: &str,
    results: &str,
    mut batching: BatchingSettings,
) -> InferenceBatcherSettings {
    for priority in Priority::ALL {
        let policy = match priority {
            Priority::Critical => &mut batching.policies.critical,
            Priority::High => &mut batching.policies.high,
            Priority::Normal => &mut batching.policies.normal,
            Priority::Low => &mut batching.policies.low,
        };
        policy.default_timeout = None;
    }
    InferenceBatcherSettings {
        input_topic: input.into(),
        results_topic: results.into(),
        admin_listen: None,
        models: [(
            MODEL.to_owned(),
            ModelSettings { instances: vec!["in-process".into()], batching, ..ModelSettings::default() },
        )]
        .into(),
        ..settings.workers.inference.clone()
    }
}

/// Jobs/s of a worker with `batching` over `count` preloaded jobs, timed by results read from
/// 1 % to 100 %; also the mean batch size and the share of that time the model was busy.
async fn backlog_rate(
    settings: &Settings,
    catalog: &Arc<SchemaCatalog>,
    model: &Arc<EmbeddingModel>,
    run: &str,
    texts: &[String],
    batching: BatchingSettings,
) -> anyhow::Result<(f64, f64, f64)> {
    let (input, results) = (format!("{run}.jobs"), format!("{run}.results"));
    create_topics(settings, &[input.clone(), results.clone()], 6).await?;
    preload(settings, &input, jobs(catalog, run, texts)?).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = read_results(settings, catalog.clone(), &results, texts.len(), stop.clone())?;
    let config = worker_config(settings, &input, &results, batching);
    let running = start_worker(settings, catalog, &config, model, run.to_owned())?;
    let deadline = tokio::time::sleep(Duration::from_secs(900));
    tokio::pin!(deadline);
    let mut reader = reader;
    let seen = tokio::select! {
        seen = &mut reader => seen?,
        () = &mut deadline => {
            stop.store(true, Ordering::Relaxed);
            let seen = reader.await?;
            bail!("only {} of {} jobs answered in 15 minutes", seen.len(), texts.len());
        }
    };
    running.stop().await?;
    let first = seen.len() / 100;
    let (start, end) = (seen[first].3, seen[seen.len() - 1].3);
    let elapsed = end.duration_since(start).as_secs_f64().max(1e-3);
    let rate = (seen.len() - first) as f64 / elapsed;
    let mean_batch = seen.iter().map(|(_, size, _, _)| f64::from(*size)).sum::<f64>() / seen.len() as f64;
    // One-input jobs: a batch's model time divided by its size, summed over its jobs, is the
    // batch's model time once.
    let model_ms: f64 = seen[first..].iter().map(|(_, size, ms, _)| ms / f64::from((*size).max(1))).sum();
    Ok((rate, mean_batch, model_ms / 1000.0 / elapsed))
}

pub(super) async fn bench_inference(
    settings: &Settings,
    jobs_per_run: usize,
    rounds: usize,
    load_fraction: f64,
    latency_seconds: u64,
) -> anyhow::Result<ExitCode> {
    if jobs_per_run < 100 || rounds == 0 || !(0.05..=1.0).contains(&load_fraction) {
        bail!("need at least 100 jobs, 1 round and a load fraction between 0.05 and 1");
    }
    let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
    let model_dir = settings.workers.inference.model_dir.clone();
    let model = Arc::new(
        tokio::task::spawn_blocking(move || EmbeddingModel::load(&model_dir))
            .await?
            .context("loading the model (ops/models)")?,
    );
    let texts = synthetic_headlines(jobs_per_run);
    let run_id = now_millis();
    let unbatched =
        BatchingSettings { max_batch_size: 1, preferred_batch_sizes: vec![], ..BatchingSettings::default() };
    let batching = settings.workers.inference.models.values().next().map(|m| m.batching.clone()).unwrap_or_default();
    eprintln!("[bench] batching on = {batching:?}");

    // Rounds alternate the three contenders, so a neighbour's load on this shared machine
    // hits all of them alike; medians are reported.
    let mut offline: Vec<Vec<f64>> = vec![Vec::new(); OFFLINE_BATCH_SIZES.len()];
    let mut arrival_order = Vec::new();
    let (mut off_rates, mut on_rates, mut on_batches) = (Vec::new(), Vec::new(), Vec::new());
    // Ratios within a round compare contenders measured minutes apart, not across a load swing.
    let (mut gains, mut efficiencies) = (Vec::new(), Vec::new());
    println!(
        "all-MiniLM-L6-v2, {} candle threads, {jobs_per_run} one-headline embed jobs per run",
        crate::inference::model::compute_threads()
    );
    println!(
        "round  offline texts/s at batch {OFFLINE_BATCH_SIZES:?}  |  Kafka jobs/s: batching off   on (mean batch)"
    );
    for round in 0..rounds {
        eprintln!("[bench] round {round}: offline throughput");
        let (measured, in_arrival_order): (Vec<f64>, f64) = {
            let (model, texts) = (model.clone(), texts[..texts.len().min(512)].to_vec());
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let sorted = OFFLINE_BATCH_SIZES
                    .iter()
                    .map(|&size| Ok(throughput(&model, &texts, size)?))
                    .collect::<anyhow::Result<Vec<f64>>>()?;
                Ok((sorted, throughput_in_arrival_order(&model, &texts, ARRIVAL_ORDER_BATCH)?))
            })
            .await??
        };
        arrival_order.push(in_arrival_order);
        for (column, rate) in offline.iter_mut().zip(&measured) {
            column.push(*rate);
        }
        eprintln!("[bench] round {round}: {jobs_per_run} jobs through Kafka, batching off (max batch 1)");
        let (off_rate, _, off_busy) = backlog_rate(
            settings,
            &catalog,
            &model,
            &format!("bench.inference.{run_id}.{round}.off"),
            &texts,
            unbatched.clone(),
        )
        .await?;
        eprintln!("[bench] round {round}: {jobs_per_run} jobs through Kafka, batching on");
        let (on_rate, on_batch, on_busy) = backlog_rate(
            settings,
            &catalog,
            &model,
            &format!("bench.inference.{run_id}.{round}.on"),
            &texts,
            batching.clone(),
        )
        .await?;
        let offline_row: Vec<String> = measured.iter().map(|rate| format!("{rate:.0}")).collect();
        let round_best = measured.iter().copied().fold(0.0, f64::max);
        println!(
            "{round:>5}  {:<40}  |  {off_rate:>8.1}  {on_rate:>8.1} ({on_batch:.1})   model busy {:.0} % / {:.0} %   \
             gain {:.2}x, efficiency {:.2}",
            offline_row.join(" "),
            off_busy * 100.0,
            on_busy * 100.0,
            on_rate / off_rate,
            on_rate / round_best,
        );
        gains.push(on_rate / off_rate);
        efficiencies.push(on_rate / round_best);
        off_rates.push(off_rate);
        on_rates.push(on_rate);
        on_batches.push(on_batch);
    }
    let offline_medians: Vec<f64> = offline.into_iter().map(median).collect();
    let (best_size, best_offline) = OFFLINE_BATCH_SIZES
        .iter()
        .copied()
        .zip(offline_medians.iter().copied())
        .fold((1, 0.0), |best, (size, rate)| if rate > best.1 { (size, rate) } else { best });
    let (off_rate, on_rate) = (median(off_rates), median(on_rates));
    println!("medians:");
    for (size, rate) in OFFLINE_BATCH_SIZES.iter().zip(&offline_medians) {
        println!("  offline batch {size:>3}: {rate:>8.1} texts/s{}", if *size == best_size { "  <- best" } else { "" });
    }
    println!(
        "  offline batch {ARRIVAL_ORDER_BATCH:>3} in arrival order: {:>8.1} texts/s  (not sorted by length across batches)",
        median(arrival_order)
    );
    println!("  through Kafka, batching off (max batch 1): {off_rate:>8.1} jobs/s");
    println!(
        "  through Kafka, batching on:                {on_rate:>8.1} jobs/s (mean batch {:.1})",
        median(on_batches)
    );
    println!(
        "gain batching on/off: median of rounds {:.2}x, of medians {:.2}x (goal >= 2.3)",
        median(gains),
        on_rate / off_rate
    );
    println!(
        "pipeline efficiency (on / offline best): median of rounds {:.2}, of medians {:.2} at batch {best_size} (goal >= 0.9)",
        median(efficiencies),
        on_rate / best_offline
    );

    let rate = on_rate * load_fraction;
    eprintln!(
        "[bench] steady load at {rate:.0} jobs/s ({:.0} % of the batched rate) for {latency_seconds} s",
        load_fraction * 100.0
    );
    let latencies = steady_latencies(settings, &catalog, &model, run_id, rate, latency_seconds, batching).await?;
    println!("latency at a steady {rate:.0} jobs/s, publish to result read (ms):");
    println!("  priority   jobs      p50      p99");
    for priority in Priority::ALL {
        let mut values = latencies.get(&priority).cloned().unwrap_or_default();
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let p = |q: f64| values[((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1];
        println!("  {:<9} {:>5} {:>8.1} {:>8.1}", priority.as_str(), values.len(), p(0.5), p(0.99));
    }
    Ok(ExitCode::SUCCESS)
}

/// Publishes jobs at `rate` per second for `seconds` and returns, per priority, the
/// milliseconds from each job's publication to its result being read.
async fn steady_latencies(
    settings: &Settings,
    catalog: &Arc<SchemaCatalog>,
    model: &Arc<EmbeddingModel>,
    run_id: i64,
    rate: f64,
    seconds: u64,
    batching: BatchingSettings,
) -> anyhow::Result<HashMap<Priority, Vec<f64>>> {
    let run = format!("bench.inference.{run_id}.steady");
    let (input, results) = (format!("{run}.jobs"), format!("{run}.results"));
    create_topics(settings, &[input.clone(), results.clone()], 6).await?;
    let count = ((rate * seconds as f64) as usize).max(10);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = read_results(settings, catalog.clone(), &results, count, stop.clone())?;
    let config = worker_config(settings, &input, &results, batching);
    let running = start_worker(settings, catalog, &config, model, run.clone())?;
    // Let the worker join its group before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let texts = synthetic_headlines(count);
    let producer = kafka::producer(&settings.kafka)?;
    let schema = catalog.by_file("inference_job.avsc")?;
    let mut sent: HashMap<String, (Priority, Instant)> = HashMap::with_capacity(count);
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(count);
    for (i, text) in texts.iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let id = format!("{run}-{i}");
        let doc = json!({
            "id": id, "model": MODEL, "task": "embed", "inputs": [text], "labels": null,
            "priority": priority_of(i).as_str(), "issued_at": now_millis(), "deadline": null, "reply_to": null
        });
        let payload = SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema)?)?;
        sent.insert(id.clone(), (priority_of(i), Instant::now()));
        let producer = producer.clone();
        let topic = input.clone();
        deliveries.push(tokio::spawn(async move {
            producer
                .send(FutureRecord::to(&topic).key(&id).payload(&payload), Timeout::Never)
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }));
    }
    for delivery in deliveries {
        delivery.await?.context("publishing a job")?;
    }
    let patience = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(patience);
    let mut reader = reader;
    let seen = tokio::select! {
        seen = &mut reader => seen?,
        () = &mut patience => {
            stop.store(true, Ordering::Relaxed);
            reader.await?
        }
    };
    running.stop().await?;
    let mut latencies: HashMap<Priority, Vec<f64>> = HashMap::new();
    for (id, _, _, at) in seen {
        if let Some((priority, published)) = sent.get(&id) {
            latencies.entry(*priority).or_default().push(at.duration_since(*published).as_secs_f64() * 1000.0);
        }
    }
    Ok(latencies)
}
