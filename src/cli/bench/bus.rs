//! `frontier bench bus`: the passthrough worker on the bus against a bare librdkafka
//! consume-and-produce loop, on the same broker in the same run.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{create_topics, median, preload};
use crate::bus::json::json_to_avro;
use crate::bus::{ConsumerLoop, LoopOptions, SchemaCatalog, kafka};
use crate::settings::Settings;
use crate::workers::passthrough::Passthrough;

pub(super) async fn bench_bus(
    settings: &Settings,
    messages: u64,
    rounds: usize,
    partitions: i32,
) -> anyhow::Result<ExitCode> {
    if messages < 100 || rounds == 0 {
        bail!("need at least 100 messages and 1 round");
    }
    let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
    let run_id = crate::clock::now_millis();
    let input = format!("bench.bus.{run_id}.in");
    let outputs: Vec<(String, String)> =
        (0..rounds).map(|r| (format!("bench.bus.{run_id}.raw.{r}"), format!("bench.bus.{run_id}.bus.{r}"))).collect();
    let mut names = vec![input.clone()];
    for (raw, bus) in &outputs {
        names.push(raw.clone());
        names.push(bus.clone());
    }
    create_topics(settings, &names, partitions).await?;

    eprintln!("[bench] loading {messages} AnalysisRequest records into {input}");
    preload(settings, &input, analysis_requests(&catalog, messages)?).await?;

    let mut raw_rates = Vec::new();
    let mut bus_rates = Vec::new();
    let codec = kafka::producer_config(&settings.kafka).get("compression.type").unwrap_or("none").to_string();
    println!("{messages} messages, {partitions} partitions, both producers compress with {codec}");
    println!("round  raw librdkafka msg/s  passthrough (bus) msg/s  ratio");
    for (round, (raw_out, bus_out)) in outputs.iter().enumerate() {
        let raw = measure(settings, raw_out.clone(), messages, {
            let (settings, input, raw_out) = (settings.clone(), input.clone(), raw_out.clone());
            let group = format!("bench.raw.{run_id}.{round}");
            move |stop| raw_loop(&settings, &input, &raw_out, &group, messages, stop)
        })
        .await?;
        let bus =
            measure_bus(settings, &catalog, &input, bus_out, &format!("bench.bus.{run_id}.{round}"), messages).await?;
        println!("{round:>5}  {raw:>20.0}  {bus:>23.0}  {:>5.2}", bus / raw);
        raw_rates.push(raw);
        bus_rates.push(bus);
    }
    let ratios: Vec<f64> = raw_rates.iter().zip(&bus_rates).map(|(r, b)| b / r).collect();
    println!(
        "median: raw {:.0} msg/s, passthrough {:.0} msg/s, ratio {:.2} (goal >= 0.90)",
        median(raw_rates),
        median(bus_rates),
        median(ratios)
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `contender` on a blocking thread and times it by watching `output` grow from 1 % to
/// 100 % of `messages`, so group-join time is left out for both contenders alike.
async fn measure<F>(settings: &Settings, output: String, messages: u64, contender: F) -> anyhow::Result<f64>
where
    F: FnOnce(Arc<AtomicBool>) -> anyhow::Result<()> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || contender(stop)
    });
    let rate = watch_output(settings, &output, messages).await;
    stop.store(true, Ordering::Relaxed);
    task.await.context("benchmark thread panicked")??;
    rate
}

async fn measure_bus(
    settings: &Settings,
    catalog: &Arc<SchemaCatalog>,
    input: &str,
    output: &str,
    group: &str,
    messages: u64,
) -> anyhow::Result<f64> {
    let options = LoopOptions::new(&settings.bus, group, vec![input.to_string()]);
    let worker = Arc::new(Passthrough::new(output));
    let consumer_loop = ConsumerLoop::new(&settings.kafka, options, worker, catalog.clone())?;
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer_loop.run(token.clone()));
    let rate = watch_output(settings, output, messages).await;
    token.cancel();
    task.await.context("consumer loop panicked")??;
    rate
}

/// Polls the output topic's high watermarks; returns messages per second between 1 % and 100 %.
async fn watch_output(settings: &Settings, topic: &str, messages: u64) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = kafka::base_config(&settings.kafka).set("group.id", "bench.watch").create()?;
    let partitions = kafka::partitions_of(&consumer, topic, settings.kafka.request_timeout)?;
    let threshold = messages / 100;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let mut total = 0u64;
        for partition in &partitions {
            let (_, high) = consumer.fetch_watermarks(topic, *partition, Duration::from_secs(5))?;
            total += high.max(0) as u64;
        }
        let now = Instant::now();
        if first.is_none() && total >= threshold {
            first = Some((now, total));
        }
        if total >= messages {
            let (start, at_start) = first.unwrap_or((now, 0));
            let elapsed = now.duration_since(start).as_secs_f64().max(1e-3);
            return Ok((total - at_start) as f64 / elapsed);
        }
        if now > deadline {
            bail!("{topic} reached only {total} of {messages} messages in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The baseline: a bare librdkafka consume-and-produce loop with the same producer settings,
/// no decoding, and librdkafka's own automatic offset storing.
fn raw_loop(
    settings: &Settings,
    input: &str,
    output: &str,
    group: &str,
    messages: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer =
        kafka::base_config(&settings.kafka).set("group.id", group).set("auto.offset.reset", "earliest").create()?;
    consumer.subscribe(&[input])?;
    let producer: BaseProducer = kafka::producer_config(&settings.kafka).create()?;
    let mut consumed = 0u64;
    while consumed < messages && !stop.load(Ordering::Relaxed) {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message?;
        let mut record = BaseRecord::<[u8], [u8]>::to(output).payload(message.payload().unwrap_or_default());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    producer.poll(Duration::from_millis(5));
                    record = back;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        producer.poll(Duration::ZERO);
        consumed += 1;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// Realistic requests, keyed by id.
pub(super) fn analysis_requests(catalog: &SchemaCatalog, messages: u64) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let schema = catalog.by_file("request.avsc")?;
    let symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "JPM", "XOM"];
    (0..messages)
        .map(|i| {
            let id = format!("bench-{i}");
            let doc = json!({
                "id": id, "tenant": "acme", "user": "u1", "kind": "market.volatility",
                "params": {"symbol": symbols[i as usize % symbols.len()], "window_days": 30},
                "priority": "normal", "issued_at": 1_700_000_000_000i64 + i as i64,
            });
            let payload = SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema)?)?;
            Ok((id.into_bytes(), payload))
        })
        .collect()
}
