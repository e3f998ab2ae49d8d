//! The consumer loop every worker runs on: consume, decode, handle, produce, and only then store
//! the offset, so a crash at any point loses nothing (at least once).
//!
//! Messages are handled concurrently (up to `bus.max_in_flight`), but their completions are
//! settled in consumption order ([`FuturesOrdered`]), so a stored offset never runs ahead of an
//! unfinished message. librdkafka commits the stored offsets in the background, before a
//! rebalance takes partitions away, and once more when the loop stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::codec::SchemaCatalog;
use super::context::LoopContext;
use super::worker::{HandlerError, Inbound, Outbound, Worker};
use super::{dlq, kafka, metrics};
use crate::config::{BusSettings, KafkaSettings};

/// An infrastructure failure that stops the loop. Failures of single messages never get here:
/// they go to the dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot create the Kafka {what}: {source}")]
    Client {
        what: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        #[source]
        source: KafkaError,
    },
    #[error("producing to {topic} failed after the delivery timeout: {source}")]
    Produce {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("worker {worker} stopped: {error}")]
    Worker { worker: &'static str, error: HandlerError },
    #[error("final offset commit failed: {0}")]
    Commit(#[source] KafkaError),
}

/// What one loop is and how it behaves; built from [`BusSettings`] plus the worker's topics.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    pub group_id: String,
    pub topics: Vec<String>,
    pub dlq_topic: String,
    pub max_in_flight: usize,
    pub retry_initial_backoff: Duration,
    pub retry_max_backoff: Duration,
    pub shutdown_timeout: Duration,
}

impl LoopOptions {
    /// Options for a worker consuming `topics` in group `group_id`.
    pub fn new(bus: &BusSettings, group_id: impl Into<String>, topics: Vec<String>) -> Self {
        LoopOptions {
            group_id: group_id.into(),
            topics,
            dlq_topic: bus.dlq_topic.clone(),
            max_in_flight: bus.max_in_flight,
            retry_initial_backoff: bus.retry_initial_backoff,
            retry_max_backoff: bus.retry_max_backoff,
            shutdown_timeout: bus.shutdown_timeout,
        }
    }
}

/// Counts of what a loop did, returned when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopReport {
    pub consumed: u64,
    pub completed: u64,
    pub dead_lettered: u64,
}

/// Everything a message's processing needs, shared by the in-flight futures.
struct Shared<W> {
    worker: Arc<W>,
    producer: FutureProducer,
    catalog: Arc<SchemaCatalog>,
    options: LoopOptions,
    metrics: LoopMetrics,
}

/// Metric handles registered once per loop: the hot path only bumps atomics.
struct LoopMetrics {
    produced: ::metrics::Counter,
    stored: ::metrics::Counter,
    handle_seconds: ::metrics::Histogram,
}

impl LoopMetrics {
    fn new(worker: &'static str) -> Self {
        LoopMetrics {
            produced: ::metrics::counter!(metrics::PRODUCED, "worker" => worker),
            stored: ::metrics::counter!(metrics::STORED, "worker" => worker),
            handle_seconds: ::metrics::histogram!(metrics::HANDLE_SECONDS, "worker" => worker),
        }
    }
}

/// Input topic names, shared rather than copied per message, each with its consumed counter.
struct InputTopics {
    worker: &'static str,
    known: Vec<(Arc<str>, ::metrics::Counter)>,
}

impl InputTopics {
    fn intern(&mut self, topic: &str) -> (Arc<str>, &::metrics::Counter) {
        let index = match self.known.iter().position(|(known, _)| &**known == topic) {
            Some(index) => index,
            None => {
                let counter = ::metrics::counter!(metrics::CONSUMED, "worker" => self.worker, "topic" => topic.to_string());
                self.known.push((Arc::from(topic), counter));
                self.known.len() - 1
            }
        };
        let (name, counter) = &self.known[index];
        (name.clone(), counter)
    }
}

/// A consumed message, copied out of librdkafka's buffer so it can outlive the poll.
struct Received {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    timestamp_ms: Option<i64>,
    arrived: Instant,
}

impl Received {
    fn from_message(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        Received {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            timestamp_ms: message.timestamp().to_millis(),
            arrived: Instant::now(),
        }
    }
}

/// How one message ended.
enum Outcome {
    /// Outputs (or its dead letter) are acknowledged: its offset may be stored.
    Done { topic: Arc<str>, partition: i32, offset: i64, dead_lettered: bool },
    /// Shutdown interrupted it before its outputs were durable: it will be consumed again.
    Abandoned,
    /// The loop must stop.
    Failed(BusError),
}

/// One worker's consumer loop.
pub struct ConsumerLoop<W: Worker> {
    consumer: StreamConsumer<LoopContext>,
    shared: Arc<Shared<W>>,
}

impl<W: Worker> ConsumerLoop<W> {
    /// Creates the consumer and subscribes. `producer` is shared with whatever else the process
    /// produces, so one idempotent producer carries every output.
    pub fn new(
        kafka_settings: &KafkaSettings,
        options: LoopOptions,
        worker: Arc<W>,
        catalog: Arc<SchemaCatalog>,
        producer: FutureProducer,
    ) -> Result<Self, BusError> {
        let context = LoopContext { group_id: options.group_id.clone() };
        let consumer: StreamConsumer<LoopContext> = kafka::consumer_config(kafka_settings, &options.group_id)
            .create_with_context(context)
            .map_err(|source| BusError::Client { what: "consumer", source })?;
        let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| BusError::Subscribe { topics: options.topics.clone(), source })?;
        let metrics = LoopMetrics::new(worker.name());
        Ok(ConsumerLoop { consumer, shared: Arc::new(Shared { worker, producer, catalog, options, metrics }) })
    }

    /// Runs until `shutdown` is cancelled (then drains, commits and leaves the group, returning
    /// `Ok`) or an infrastructure failure (then commits what is durable and returns `Err`).
    pub async fn run(self, shutdown: CancellationToken) -> Result<LoopReport, BusError> {
        let shared = &self.shared;
        let name = shared.worker.name();
        info!(worker = name, group = %shared.options.group_id, topics = ?shared.options.topics, "consumer loop started");
        let mut state = Settlement::default();
        let mut in_flight = FuturesOrdered::new();
        let mut stream = self.consumer.stream();
        let mut failure = None;
        let mut inputs = InputTopics { worker: name, known: Vec::new() };

        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(outcome) = in_flight.next(), if !in_flight.is_empty() => {
                    // Settle everything already finished in one go, then store offsets once.
                    let mut ready = vec![outcome];
                    while let Some(Some(more)) = in_flight.next().now_or_never() {
                        ready.push(more);
                    }
                    if let Err(error) = state.settle_all(&self.consumer, &shared.metrics, ready) {
                        failure = Some(error);
                        break;
                    }
                }
                received = stream.next(), if in_flight.len() < shared.options.max_in_flight => match received {
                    Some(Ok(message)) => {
                        state.report.consumed += 1;
                        let (topic, consumed) = inputs.intern(message.topic());
                        consumed.increment(1);
                        let received = Received::from_message(&message, topic);
                        in_flight.push_back(process(shared.clone(), received, shutdown.clone()));
                    }
                    Some(Err(error)) => {
                        // librdkafka recovers from broker and network errors by itself; the loop
                        // keeps polling so it can.
                        ::metrics::counter!(metrics::CLIENT_ERRORS, "client" => "consumer").increment(1);
                        warn!(worker = name, %error, "consume error");
                    }
                    None => break,
                },
            }
        }
        drop(stream);

        // Finish what is in flight (handlers see the cancellation and stop retrying), within the
        // deadline; whatever is not done by then is simply consumed again after a restart.
        let deadline = shared.options.shutdown_timeout;
        let drained = tokio::time::timeout(deadline, async {
            while let Some(outcome) = in_flight.next().await {
                if let Err(error) = state.settle_all(&self.consumer, &shared.metrics, vec![outcome]) {
                    return Err(error);
                }
            }
            Ok(())
        })
        .await;
        match drained {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failure = failure.or(Some(error)),
            Err(_) => warn!(worker = name, ?deadline, left = in_flight.len(), "shutdown deadline reached; unfinished messages will be redelivered"),
        }
        drop(in_flight);

        let committed = self.commit_and_leave();
        let report = state.report;
        info!(worker = name, ?report, "consumer loop stopped");
        match (failure, committed) {
            (Some(error), _) => Err(error),
            (None, Err(error)) => Err(error),
            (None, Ok(())) => Ok(report),
        }
    }

    fn commit_and_leave(&self) -> Result<(), BusError> {
        let committed = match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => Ok(()),
            // Nothing stored since the last commit, or no partitions assigned: nothing to do.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(error) if self.consumer.assignment().map(|a| a.count() == 0).unwrap_or(false) => {
                debug!(%error, "no assignment to commit");
                Ok(())
            }
            Err(error) => Err(BusError::Commit(error)),
        };
        self.consumer.unsubscribe();
        // Outputs were awaited individually; this only waits for anything else still queued.
        let _ = self.shared.producer.flush(Timeout::After(Duration::from_secs(5)));
        committed
    }
}

/// The loop's bookkeeping of settled messages.
#[derive(Default)]
struct Settlement {
    report: LoopReport,
    /// Set once a message was abandoned: no later offset may be stored past it.
    abandoned: bool,
}

impl Settlement {
    fn settle_all(&mut self, consumer: &StreamConsumer<LoopContext>, metrics: &LoopMetrics, outcomes: Vec<Outcome>) -> Result<(), BusError> {
        // Highest finished offset per partition; outcomes arrive in consumption order.
        let mut next: HashMap<(Arc<str>, i32), i64> = HashMap::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Done { topic, partition, offset, dead_lettered } => {
                    self.report.completed += 1;
                    self.report.dead_lettered += u64::from(dead_lettered);
                    if !self.abandoned {
                        next.insert((topic, partition), offset + 1);
                    }
                }
                Outcome::Abandoned => self.abandoned = true,
                Outcome::Failed(error) => {
                    store(consumer, metrics, &next);
                    return Err(error);
                }
            }
        }
        store(consumer, metrics, &next);
        Ok(())
    }
}

fn store(consumer: &StreamConsumer<LoopContext>, metrics: &LoopMetrics, next: &HashMap<(Arc<str>, i32), i64>) {
    if next.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::with_capacity(next.len());
    for ((topic, partition), offset) in next {
        // Offsets are non-negative here, so this cannot fail.
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    match consumer.store_offsets(&list) {
        Ok(()) => metrics.stored.increment(next.len() as u64),
        // A partition revoked meanwhile: its new owner redoes the message (at least once).
        Err(error) => debug!(%error, "offsets not stored (partition no longer assigned)"),
    }
}

/// Decodes, handles with retries, and produces one message's outputs (or its dead letter).
async fn process<W: Worker>(shared: Arc<Shared<W>>, received: Received, shutdown: CancellationToken) -> Outcome {
    let arrived = received.arrived;
    let outcome = match shared.catalog.decode(&received.payload) {
        Err(error) => dead_letter(&shared, &Source::of(&received), error.kind(), &error.to_string()).await,
        Ok(decoded) => {
            let inbound = Inbound {
                topic: received.topic,
                partition: received.partition,
                offset: received.offset,
                key: received.key,
                timestamp_ms: received.timestamp_ms,
                payload: received.payload,
                value: decoded.value,
                schema: decoded.schema,
            };
            handle_with_retries(&shared, &inbound, &shutdown).await
        }
    };
    shared.metrics.handle_seconds.record(arrived.elapsed().as_secs_f64());
    outcome
}

/// The parts of a consumed message a dead letter carries.
struct Source<'a> {
    topic: &'a Arc<str>,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
}

impl<'a> Source<'a> {
    fn of(received: &'a Received) -> Self {
        Source { topic: &received.topic, partition: received.partition, offset: received.offset, key: received.key.as_deref(), payload: &received.payload }
    }

    fn of_inbound(inbound: &'a Inbound) -> Self {
        Source { topic: &inbound.topic, partition: inbound.partition, offset: inbound.offset, key: inbound.key.as_deref(), payload: &inbound.payload }
    }

    fn done(&self, dead_lettered: bool) -> Outcome {
        Outcome::Done { topic: self.topic.clone(), partition: self.partition, offset: self.offset, dead_lettered }
    }
}

async fn handle_with_retries<W: Worker>(shared: &Shared<W>, inbound: &Inbound, shutdown: &CancellationToken) -> Outcome {
    let name = shared.worker.name();
    let source = Source::of_inbound(inbound);
    let mut backoff = shared.options.retry_initial_backoff;
    loop {
        match shared.worker.handle(inbound).await {
            Ok(outputs) => {
                return match produce_all(shared, outputs).await {
                    Ok(()) => source.done(false),
                    Err(error) => Outcome::Failed(error),
                };
            }
            Err(HandlerError::Rejected { kind, reason }) => return dead_letter(shared, &source, kind, &reason).await,
            Err(HandlerError::Transient { kind, reason }) => {
                ::metrics::counter!(metrics::RETRIES, "worker" => name, "kind" => kind).increment(1);
                warn!(worker = name, topic = %inbound.topic, partition = inbound.partition, offset = inbound.offset,
                      kind, reason, ?backoff, "transient failure, retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Outcome::Abandoned,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(shared.options.retry_max_backoff);
            }
            Err(error @ HandlerError::Fatal { .. }) => {
                error!(worker = name, %error, "worker failed");
                return Outcome::Failed(BusError::Worker { worker: name, error });
            }
        }
    }
}

/// Produces every output and waits until Kafka acknowledges all of them.
async fn produce_all<W: Worker>(shared: &Shared<W>, outputs: Vec<Outbound>) -> Result<(), BusError> {
    let name = shared.worker.name();
    let sends = outputs.iter().map(|out| async move {
        let mut record = FutureRecord::<[u8], [u8]>::to(&out.topic).payload(&out.payload);
        if let Some(key) = &out.key {
            record = record.key(key);
        }
        if !out.headers.is_empty() {
            let headers = out.headers.iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header { key, value: Some(value) })
            });
            record = record.headers(headers);
        }
        match shared.producer.send(record, Timeout::Never).await {
            Ok(_) => {
                shared.metrics.produced.increment(1);
                Ok(())
            }
            Err((source, _)) => {
                ::metrics::counter!(metrics::CLIENT_ERRORS, "client" => "producer").increment(1);
                error!(worker = name, topic = %out.topic, error = %source, "produce failed");
                Err(BusError::Produce { topic: out.topic.to_string(), source })
            }
        }
    });
    futures::future::try_join_all(sends).await.map(|_| ())
}

/// Sends a message that can never succeed to the dead-letter topic, with headers saying where it
/// came from and why, and counts and logs it (the one place that does).
async fn dead_letter<W: Worker>(shared: &Shared<W>, source: &Source<'_>, kind: &'static str, reason: &str) -> Outcome {
    let name = shared.worker.name();
    ::metrics::counter!(metrics::DEAD_LETTERED, "worker" => name, "reason" => kind).increment(1);
    warn!(worker = name, topic = %source.topic, partition = source.partition, offset = source.offset,
          kind, reason, "message dead-lettered");
    let failed_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
    let headers = dlq::headers(&dlq::Provenance {
        topic: source.topic,
        partition: source.partition,
        offset: source.offset,
        kind,
        reason,
        worker: name,
        group: &shared.options.group_id,
        failed_at_ms: failed_at,
    });
    let letter = Outbound {
        topic: Arc::from(shared.options.dlq_topic.as_str()),
        key: source.key.map(<[u8]>::to_vec),
        payload: source.payload.to_vec(),
        headers,
    };
    match produce_all(shared, vec![letter]).await {
        Ok(()) => source.done(true),
        Err(error) => Outcome::Failed(error),
    }
}
