//! `frontier bench sla`: the SLA monitor's throughput through Kafka beside the same decoding and
//! counting done in memory, and the time from a first breaching event to its alert.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{create_topics, median, preload};
use crate::bus::json::{avro_to_json, json_to_avro};
use crate::bus::{ConsumerLoop, LoopOptions, SchemaCatalog, kafka};
use crate::clock::now_millis;
use crate::records::RequestCompleted;
use crate::settings::Settings;
use crate::sla::{SlaConfig, SlaMonitor};
use crate::workers::sla_monitor::{SlaMonitorSettings, SlaMonitorWorker};

/// `count` request-completed events, event `i` of series `series_of(i)` (service, kind) taking
/// `latency_of(i)` ms, spread over the minute before `at_ms`.
fn request_events(
    catalog: &SchemaCatalog,
    count: u64,
    series_of: impl Fn(u64) -> (String, String),
    latency_of: impl Fn(u64) -> f64,
    at_ms: i64,
) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let schema = catalog.by_file("request_completed.avsc")?;
    (0..count)
        .map(|i| {
            let (service, kind) = series_of(i);
            let doc = json!({
                "id": format!("ev-{i}"), "service": service, "kind": kind, "tenant": "acme",
                "latency_ms": latency_of(i), "status": if i % 97 == 0 { "error" } else { "ok" },
                "cache_layer": if i % 5 == 0 { "none" } else { "memory" },
                "occurred_at": at_ms - 60_000 + (i * 60_000 / count.max(1)) as i64, "instance": null
            });
            let payload = SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema)?)?;
            // Keyed by series, so one instance sees all of a series (see README).
            Ok((format!("{service}/{kind}").into_bytes(), payload))
        })
        .collect()
}

pub(super) async fn bench_sla(settings: &Settings, events: u64, trials: usize) -> anyhow::Result<ExitCode> {
    if events < 1000 || trials == 0 {
        bail!("need at least 1000 events and 1 trial");
    }
    let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
    let run_id = now_millis();
    let (metrics_topic, alerts_topic) = (format!("bench.sla.{run_id}.metrics"), format!("bench.sla.{run_id}.alerts"));
    create_topics(settings, &[metrics_topic.clone(), alerts_topic.clone()], 6).await?;

    let now = now_millis();
    let records = request_events(
        &catalog,
        events,
        |i| (format!("svc-{}", i % 10), format!("kind-{}", (i / 10) % 10)),
        |i| 5.0 + ((i * 7919) % 150) as f64,
        now,
    )?;
    eprintln!("[bench] loading {events} RequestCompleted events (100 series) into {metrics_topic}");
    preload(settings, &metrics_topic, records.clone()).await?;
    let config = SlaMonitorSettings {
        input_topic: metrics_topic.clone(),
        alerts_topic: alerts_topic.clone(),
        // Checkpoints would go to the shared topic, not the benchmark's own.
        slo_counters_topic: None,
        ..settings.workers.sla.clone()
    };

    // Baseline: the same decoding and counting, from memory, on one thread.
    let in_memory = {
        let mut monitor = SlaMonitor::new(config.monitor.clone())?;
        let started = Instant::now();
        for (_, bytes) in &records {
            // Decoded as the worker decodes (straight from the bytes), so only Kafka differs.
            let event: RequestCompleted =
                catalog.identify(bytes)?.deserialize(bytes).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            monitor.observe(&event, now);
        }
        events as f64 / started.elapsed().as_secs_f64()
    };

    // Through Kafka: the worker on the bus, timed by its accepted count from 1 % to 100 %.
    let worker = Arc::new(SlaMonitorWorker::new(&config, &catalog, Default::default())?);
    let options = LoopOptions::new(&settings.bus, format!("bench.sla.{run_id}"), vec![metrics_topic.clone()]);
    let token = CancellationToken::new();
    let task =
        tokio::spawn(ConsumerLoop::new(&settings.kafka, options, worker.clone(), catalog.clone())?.run(token.clone()));
    let mut first: Option<(Instant, u64)> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let through_kafka = loop {
        let accepted = worker.snapshot().await?.accepted;
        let at = Instant::now();
        if first.is_none() && accepted >= events / 100 {
            first = Some((at, accepted));
        }
        if accepted >= events {
            let (start, at_start) = first.unwrap_or((at, 0));
            break (accepted - at_start) as f64 / at.duration_since(start).as_secs_f64().max(1e-3);
        }
        if at > deadline {
            bail!("the monitor counted only {accepted} of {events} events in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    token.cancel();
    task.await.context("monitor loop panicked")??;

    println!("throughput (events/s)        value      note");
    println!("  in memory (decode+count)   {in_memory:>9.0}  baseline: the same work without Kafka");
    println!(
        "  through Kafka (sla-monitor) {through_kafka:>8.0}  goal >= 200000; {:.2} of the baseline",
        through_kafka / in_memory
    );

    let latencies = detection_latencies(settings, &catalog, run_id, trials).await?;
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[((sorted.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)];
    println!(
        "breach to alert on the alerts topic, {} trials: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (goal p99 <= 2000 ms; evaluation every {:?})",
        latencies.len(),
        median(latencies),
        p99,
        sorted[sorted.len() - 1],
        settings.workers.sla.evaluation_interval,
    );
    Ok(ExitCode::SUCCESS)
}

/// Publishes a burst of slow requests for a fresh series per trial and times until the alert
/// for that series is read back from the alerts topic.
async fn detection_latencies(
    settings: &Settings,
    catalog: &Arc<SchemaCatalog>,
    run_id: i64,
    trials: usize,
) -> anyhow::Result<Vec<f64>> {
    let (metrics_topic, alerts_topic) =
        (format!("bench.sla.{run_id}.breach"), format!("bench.sla.{run_id}.breach-alerts"));
    create_topics(settings, &[metrics_topic.clone(), alerts_topic.clone()], 1).await?;
    let monitor: SlaConfig = toml::from_str(
        "slos = []\n[[rules]]\nname = \"LatencyP95High\"\nsli = \"latency_p95\"\ncomparison = \"above\"\nthreshold = 200.0\nwindow = \"1m\"\nfor = \"0s\"\nmin_events = 20\n",
    )?;
    let config = SlaMonitorSettings {
        input_topic: metrics_topic.clone(),
        alerts_topic: alerts_topic.clone(),
        monitor,
        // Checkpoints would go to the shared topic, not the benchmark's own.
        slo_counters_topic: None,
        ..settings.workers.sla.clone()
    };
    let worker = Arc::new(SlaMonitorWorker::new(&config, catalog, Default::default())?);
    let options = LoopOptions::new(&settings.bus, format!("bench.sla.{run_id}.breach"), vec![metrics_topic.clone()]);
    let token = CancellationToken::new();
    let task = tokio::spawn(ConsumerLoop::new(&settings.kafka, options, worker, catalog.clone())?.run(token.clone()));

    let mut arrivals = alert_arrivals(settings, &alerts_topic, catalog, token.clone())?;

    let mut latencies = Vec::with_capacity(trials);
    for trial in 0..trials {
        let service = format!("breach-{trial}");
        let burst = request_events(catalog, 30, |_| (service.clone(), "breach".to_string()), |_| 500.0, now_millis())?;
        let started = Instant::now();
        preload(settings, &metrics_topic, burst).await?;
        let arrived = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some((alert, at)) = arrivals.recv().await {
                if alert["labels"]["service"] == service.as_str() {
                    return Some(at);
                }
            }
            None
        })
        .await;
        match arrived {
            Ok(Some(at)) => latencies.push(at.duration_since(started).as_secs_f64() * 1000.0),
            _ => bail!("no alert for {service} within 30 s"),
        }
    }
    token.cancel();
    task.await.context("monitor loop panicked")??;
    Ok(latencies)
}

/// Every alert on `topic` from its beginning, as plain JSON with the moment it was read, until
/// `token` is cancelled.
pub(super) fn alert_arrivals(
    settings: &Settings,
    topic: &str,
    catalog: &Arc<SchemaCatalog>,
    token: CancellationToken,
) -> anyhow::Result<mpsc::UnboundedReceiver<(serde_json::Value, Instant)>> {
    let reader: StreamConsumer = kafka::base_config(&settings.kafka)
        .set("group.id", format!("{topic}.reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in kafka::partitions_of(&reader, topic, settings.kafka.request_timeout)? {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    reader.assign(&assignment)?;
    let (seen, arrivals) = mpsc::unbounded_channel();
    let catalog = catalog.clone();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = token.cancelled() => return,
                message = reader.recv() => message,
            };
            let Ok(message) = message else { continue };
            if let Ok(decoded) = catalog.decode(message.payload().unwrap_or_default()) {
                let _ = seen.send((avro_to_json(&decoded.value), Instant::now()));
            }
        }
    });
    Ok(arrivals)
}
