//! The steady load and its ledger: every request and job this process publishes, and every
//! answer the output topics carry for it, by id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::{KafkaSettings, SchemaCatalog, kafka};
use crate::records::{
    Alert, AlertStatus, AnalysisRequest, AnalysisResponse, InferenceJob, InferenceResult, ParamValue, Priority,
    RequestStatus, Task,
};

/// Which flow a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stream {
    /// Analysis requests to the serving group.
    Serve,
    /// Embedding jobs to the inference batcher.
    Inference,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Serve => "serve",
            Stream::Inference => "inference",
        }
    }
}

/// What became of one published request.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub stream: Stream,
    pub sent: Instant,
    /// Kafka refused it (no acknowledgement within the producer's delivery timeout): the
    /// client knows it was not sent, so it is not lost.
    pub refused: bool,
    pub answers: u32,
    pub first_answer: Option<Instant>,
    /// The first answer's status was ok.
    pub ok: bool,
}

/// Every request of a scenario by id.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    pub entries: DashMap<String, Entry>,
    /// Garbage published to the requests topic (not in `entries`: it has no id to answer).
    pub poison_sent: AtomicU64,
}

impl Ledger {
    /// Requests published and not refused that have no answer yet.
    pub fn unanswered(&self) -> usize {
        self.entries.iter().filter(|e| !e.refused && e.answers == 0).count()
    }

    /// Per stream (serve, inference), the requests sent between `from` and `to`, and how many
    /// of them were not answered within that stream's `within`: a stream keeps up when it had
    /// some and none is slow.
    pub fn slow(&self, from: Instant, to: Instant, within: [Duration; 2]) -> [(usize, usize); 2] {
        let mut counts = [(0, 0); 2];
        for entry in self.entries.iter().filter(|e| e.sent >= from && e.sent < to && !e.refused) {
            let index = entry.stream as usize;
            let in_time =
                entry.first_answer.is_some_and(|answered| answered.duration_since(entry.sent) <= within[index]);
            counts[index].0 += 1;
            counts[index].1 += usize::from(!in_time);
        }
        counts
    }

    fn answer(&self, id: &str, ok: bool) {
        let now = Instant::now();
        if let Some(mut entry) = self.entries.get_mut(id) {
            entry.answers += 1;
            if entry.first_answer.is_none() {
                entry.first_answer = Some(now);
                entry.ok = ok;
            }
        }
    }
}

/// Alerts seen on the scenario's alerts topic, in arrival order.
pub(super) type AlertLog = Arc<std::sync::Mutex<Vec<(Instant, Alert)>>>;

/// The publishers of one scenario.
pub(super) struct Load {
    pub ledger: Arc<Ledger>,
    /// While set, one request in ten is replaced by poison.
    pub poison: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    stop: CancellationToken,
}

/// Where the load goes.
pub(super) struct LoadPlan {
    pub requests_topic: String,
    pub jobs_topic: String,
    pub serve_rate: f64,
    pub inference_rate: f64,
    /// Symbols seeded in the price store (`SYN0001` ..).
    pub symbols: usize,
    /// Prefix of every id, unique per scenario.
    pub id_prefix: String,
}

impl Load {
    pub fn start(kafka: &KafkaSettings, catalog: Arc<SchemaCatalog>, plan: LoadPlan) -> anyhow::Result<Load> {
        let producer: FutureProducer<Quiet> = kafka::producer_config(kafka).create_with_context(Quiet)?;
        let ledger = Arc::new(Ledger::default());
        let poison = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let plan = Arc::new(plan);
        let mut tasks = Vec::new();
        for stream in [Stream::Serve, Stream::Inference] {
            let publisher = Publisher {
                producer: producer.clone(),
                catalog: catalog.clone(),
                ledger: ledger.clone(),
                poison: poison.clone(),
                plan: plan.clone(),
                stream,
            };
            tasks.push(tokio::spawn(publisher.run(stop.clone())));
        }
        Ok(Load { ledger, poison, tasks, stop })
    }

    /// Stops publishing and waits for every delivery report.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

struct Publisher {
    producer: FutureProducer<Quiet>,
    catalog: Arc<SchemaCatalog>,
    ledger: Arc<Ledger>,
    poison: Arc<AtomicBool>,
    plan: Arc<LoadPlan>,
    stream: Stream,
}

impl Publisher {
    async fn run(self, stop: CancellationToken) {
        let (rate, seed, topic) = match self.stream {
            Stream::Serve => (self.plan.serve_rate, 7, &self.plan.requests_topic),
            Stream::Inference => (self.plan.inference_rate, 8, &self.plan.jobs_topic),
        };
        if rate <= 0.0 {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        // Behind schedule (a stalled runtime) means fewer requests, not a burst to catch up.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deliveries = tokio::task::JoinSet::new();
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            n += 1;
            if self.stream == Stream::Serve && self.poison.load(Ordering::Relaxed) && n.is_multiple_of(10) {
                self.publish_poison(&mut rng, n, &mut deliveries);
                continue;
            }
            let id = format!("{}-{}-{n}", self.plan.id_prefix, self.stream.name());
            let encoded = match self.stream {
                Stream::Serve => self.catalog.encode_record(&analysis_request(&id, &mut rng, self.plan.symbols)),
                Stream::Inference => self.catalog.encode_record(&inference_job(&id, n)),
            };
            let Ok(payload) = encoded else { continue };
            let topic = topic.clone();
            self.ledger.entries.insert(
                id.clone(),
                Entry {
                    stream: self.stream,
                    sent: Instant::now(),
                    refused: false,
                    answers: 0,
                    first_answer: None,
                    ok: false,
                },
            );
            let producer = self.producer.clone();
            let ledger = self.ledger.clone();
            deliveries.spawn(async move {
                let record = FutureRecord::to(&topic).key(&id).payload(&payload);
                if producer.send(record, Timeout::Never).await.is_err()
                    && let Some(mut entry) = ledger.entries.get_mut(&id)
                {
                    entry.refused = true;
                }
            });
            while deliveries.try_join_next().is_some() {}
        }
        while deliveries.join_next().await.is_some() {}
    }

    /// One hostile message: random bytes, a valid header over a corrupt or truncated body, a
    /// length that claims gigabytes, or another schema's record on the requests topic.
    fn publish_poison(&self, rng: &mut ChaCha8Rng, n: u64, deliveries: &mut tokio::task::JoinSet<()>) {
        let valid = self.catalog.encode_record(&analysis_request("poison", rng, self.plan.symbols)).unwrap_or_default();
        let payload: Vec<u8> = match n / 10 % 5 {
            0 => (0..rng.random_range(1..512)).map(|_| rng.random()).collect(),
            // Header of the request schema, then a truncated body.
            1 => valid[..valid.len().min(10 + 7)].to_vec(),
            // Header, then a string length of about 2^62.
            2 => {
                let mut bytes = valid[..valid.len().min(10)].to_vec();
                bytes.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
                bytes
            }
            // A valid record of another schema.
            3 => self.catalog.encode_record(&inference_job("poison", n)).unwrap_or_default(),
            // Valid bytes with trailing garbage.
            _ => {
                let mut bytes = valid.clone();
                bytes.extend_from_slice(b"\x00trailing");
                bytes
            }
        };
        self.ledger.poison_sent.fetch_add(1, Ordering::Relaxed);
        let producer = self.producer.clone();
        let topic = self.plan.requests_topic.clone();
        deliveries.spawn(async move {
            let key = format!("poison-{n}");
            let _ = producer.send(FutureRecord::to(&topic).key(&key).payload(&payload), Timeout::Never).await;
        });
    }
}

/// A volatility request: nine in ten from a hot set of 20 symbols x 6 windows (cache hits
/// once warm), one in ten for a random symbol and window (a computation reading PostgreSQL).
fn analysis_request(id: &str, rng: &mut ChaCha8Rng, symbols: usize) -> AnalysisRequest {
    let (symbol, window) = if rng.random_bool(0.9) {
        (rng.random_range(1..=20), [20, 30, 60, 90, 120, 250][rng.random_range(0..6)])
    } else {
        (rng.random_range(1..=symbols.max(1)), rng.random_range(10..=250))
    };
    AnalysisRequest {
        id: id.into(),
        tenant: "chaos".into(),
        user: "chaos".into(),
        kind: "market.volatility".into(),
        params: BTreeMap::from([
            ("symbol".to_string(), ParamValue::String(format!("SYN{symbol:04}"))),
            ("window_days".to_string(), ParamValue::Long(window)),
        ]),
        priority: Priority::Normal,
        issued_at: crate::clock::now_millis(),
        deadline: None,
        reply_to: None,
        entitlements: Vec::new(),
    }
}

/// An embedding job of one headline.
fn inference_job(id: &str, n: u64) -> InferenceJob {
    InferenceJob {
        id: id.into(),
        model: crate::workers::inference_batcher::DEFAULT_MODEL.into(),
        task: Task::Embed,
        inputs: vec![format!("Quarterly results beat estimates for the {n}th time")],
        labels: None,
        priority: Priority::Normal,
        issued_at: crate::clock::now_millis(),
        deadline: None,
        reply_to: None,
    }
}

/// The context of the chaos process's own Kafka clients: they lose brokers on purpose, and
/// their connection errors (the fault itself, not news) would bury the report.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, _level: RDKafkaLogLevel, _facility: &str, _message: &str) {}
    fn error(&self, _error: KafkaError, _reason: &str) {}
}

impl ConsumerContext for Quiet {}

/// A consumer of every partition of `topic` from its beginning, outside any group.
fn reader(kafka: &KafkaSettings, topic: &str, partitions: i32) -> anyhow::Result<StreamConsumer<Quiet>> {
    let consumer: StreamConsumer<Quiet> = kafka::base_config(kafka)
        .set("group.id", format!("chaos.reader.{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "20")
        .create_with_context(Quiet)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Hands every message payload of `topic` to `each` until `stop`.
fn read_until(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: i32,
    stop: CancellationToken,
    mut each: impl FnMut(&[u8]) + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let consumer = reader(kafka, topic, partitions)?;
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = consumer.recv() => message,
            };
            if let Ok(message) = message {
                each(message.payload().unwrap_or_default());
            }
        }
    }))
}

/// Reads answers (responses or inference results) into the ledger until `stop`.
pub(super) fn collect_answers(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: i32,
    stream: Stream,
    catalog: Arc<SchemaCatalog>,
    ledger: Arc<Ledger>,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    read_until(kafka, topic, partitions, stop, move |payload| {
        let Ok(identified) = catalog.identify(payload) else { return };
        match stream {
            Stream::Serve => {
                if let Ok(response) = identified.deserialize::<AnalysisResponse>(payload) {
                    ledger.answer(&response.request_id, response.status == RequestStatus::Ok);
                }
            }
            Stream::Inference => {
                if let Ok(result) = identified.deserialize::<InferenceResult>(payload) {
                    ledger.answer(&result.job_id, result.error.is_none());
                }
            }
        }
    })
}

/// Reads the alerts topic into `log` until `stop`.
pub(super) fn collect_alerts(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: i32,
    catalog: Arc<SchemaCatalog>,
    log: AlertLog,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    read_until(kafka, topic, partitions, stop, move |payload| {
        let Ok(identified) = catalog.identify(payload) else { return };
        if let Ok(alert) = identified.deserialize::<Alert>(payload)
            && let Ok(mut log) = log.lock()
        {
            log.push((Instant::now(), alert));
        }
    })
}

/// Counts the messages on `topic` (the dead letters) until `stop`.
pub(super) fn count_messages(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: i32,
    count: Arc<AtomicU64>,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    read_until(kafka, topic, partitions, stop, move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    })
}

/// Whether an alert is firing at the end of `log` (its last message is not a resolution).
pub(super) fn firing(log: &[(Instant, Alert)]) -> Vec<String> {
    let mut last: BTreeMap<&str, &Alert> = BTreeMap::new();
    for (_, alert) in log {
        last.insert(&alert.fingerprint, alert);
    }
    last.values().filter(|a| a.status == AlertStatus::Firing).map(|a| a.name.clone()).collect()
}
