//! The consumer loop every worker runs on: consume, check, handle, produce, and only once the
//! outputs are acknowledged store the offset, so a crash at any point loses nothing (at least
//! once).
//!
//! Messages are handled concurrently (up to `bus.max_in_flight`), but settled in consumption
//! order: each message's [`Ticket`] waits in a queue, and an offset is stored only when every
//! message before it is settled too. librdkafka commits the stored offsets in the background,
//! before a rebalance takes partitions away, and once more when the loop stops.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::Either;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::codec::SchemaCatalog;
use super::context::LoopContext;
use super::delivery::{DeliveryContext, Ticket};
use super::outputs::{OutputCheck, Refusal, record_size};
use super::settings::{BusSettings, KafkaSettings};
use super::status::{LagReading, StatusReporter};
use super::worker::{HandlerError, Inbound, Outbound, Worker};
use super::{dlq, kafka, metrics};

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
    #[error("producing to {topic} failed: {source}")]
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
    /// The most one produced record may take (`bus.max_message_bytes`).
    pub max_message_bytes: usize,
    /// Where and how often the loop publishes its `WorkerStatus`; `None` publishes nothing.
    pub status: Option<(String, Duration)>,
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
            max_message_bytes: bus.max_message_bytes,
            status: (!bus.status_interval.is_zero()).then(|| (bus.status_topic.clone(), bus.status_interval)),
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

/// Messages taken from the consumer per wake-up before the loop looks at anything else.
const RECEIVE_BATCH: usize = 512;

/// Everything a message's handling needs, shared by the in-flight futures.
struct Shared<W> {
    worker: Arc<W>,
    producer: ThreadedProducer<DeliveryContext>,
    catalog: Arc<SchemaCatalog>,
    options: LoopOptions,
    dlq_topic: Arc<str>,
    outputs: OutputCheck,
}

/// A consumed message waiting for its outputs to be acknowledged, in consumption order.
struct Pending {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    arrived: Instant,
    ticket: Arc<Ticket>,
}

/// Where a message came from, for its dead letter.
struct Source<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
}

impl<'a> Source<'a> {
    /// Where a handed-over message came from.
    fn of(inbound: &'a Inbound) -> Self {
        Source {
            topic: &inbound.topic,
            partition: inbound.partition,
            offset: inbound.offset,
            key: inbound.key.as_deref(),
            payload: &inbound.payload,
        }
    }
}

/// One worker's consumer loop.
pub struct ConsumerLoop<W: Worker> {
    consumer: StreamConsumer<LoopContext>,
    shared: Arc<Shared<W>>,
}

impl<W: Worker> ConsumerLoop<W> {
    /// Creates the consumer (subscribed) and the loop's idempotent producer.
    pub fn new(
        kafka_settings: &KafkaSettings,
        options: LoopOptions,
        worker: Arc<W>,
        catalog: Arc<SchemaCatalog>,
    ) -> Result<Self, BusError> {
        let context = LoopContext { group_id: options.group_id.clone(), lag: LagReading::default() };
        let consumer: StreamConsumer<LoopContext> = kafka::consumer_config(kafka_settings, &options.group_id)
            .create_with_context(context)
            .map_err(|source| BusError::Client { what: "consumer", source })?;
        let producer = kafka::producer_config(kafka_settings)
            .create_with_context(DeliveryContext::new(worker.name()))
            .map_err(|source| BusError::Client { what: "producer", source })?;
        let admin = kafka::admin(kafka_settings).map_err(|source| BusError::Client { what: "admin client", source })?;
        let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|source| BusError::Subscribe { topics: options.topics.clone(), source })?;
        let dlq_topic = Arc::from(options.dlq_topic.as_str());
        Ok(ConsumerLoop {
            consumer,
            shared: Arc::new(Shared {
                worker,
                producer,
                catalog,
                dlq_topic,
                outputs: OutputCheck::new(options.max_message_bytes, admin),
                options,
            }),
        })
    }

    /// The status reporter, if reporting is on and its topic exists. A missing topic is said
    /// once, here, rather than leaving librdkafka to retry records nobody can take (and the
    /// final flush to wait for them).
    fn status_reporter(&self) -> Option<StatusReporter> {
        let shared = &self.shared;
        let (topic, _) = shared.options.status.as_ref()?;
        let metadata = self.consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        let exists =
            metadata.as_ref().is_ok_and(|m| m.topics().iter().any(|t| t.name() == topic && t.error().is_none()));
        if !exists {
            warn!(worker = shared.worker.name(), topic = %topic,
                  "the worker status topic does not exist (run `frontier topics apply`); status reports are off");
            return None;
        }
        let lag = self.consumer.context().lag.clone();
        StatusReporter::new(&shared.catalog, topic, shared.worker.name(), &shared.options.group_id, lag)
    }

    /// Runs until `shutdown` is cancelled (then drains, commits and leaves the group, returning
    /// `Ok`) or an infrastructure failure (then commits what is durable and returns `Err`).
    pub async fn run(self, shutdown: CancellationToken) -> Result<LoopReport, BusError> {
        let shared = &self.shared;
        let name = shared.worker.name();
        info!(worker = name, group = %shared.options.group_id, topics = ?shared.options.topics, "consumer loop started");
        let settled = Arc::new(Notify::new());
        let mut queue = SettleQueue::new(name);
        let mut inputs = InputTopics { worker: name, known: Vec::new() };
        let mut handling = FuturesUnordered::new();
        let mut stream = self.consumer.stream();
        let mut failure = None;
        let mut ticker = shared.worker.tick_interval().map(every);
        let mut status = self.status_reporter();
        let mut status_ticker = status.as_ref().and(shared.options.status.as_ref()).map(|(_, period)| every(*period));

        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(result) = handling.next(), if !handling.is_empty() => {
                    if let Err(error) = result {
                        failure = Some(error);
                        break;
                    }
                }
                () = settled.notified() => {}
                _ = next_tick(&mut ticker) => {
                    let ticket = Ticket::new(settled.clone());
                    queue.watch(ticket.clone());
                    handling.push(Either::Right(tick(shared.clone(), ticket, None)));
                }
                _ = next_tick(&mut status_ticker) => {
                    // Not watched by the settle queue: a status that fails to arrive is logged
                    // and counted by the delivery callback, and the next one replaces it.
                    if let Some(record) = status.as_mut().and_then(StatusReporter::next_record) {
                        handling.push(Either::Right(tick(shared.clone(), Ticket::new(settled.clone()), Some(record))));
                    }
                }
                received = stream.next(), if queue.len() < shared.options.max_in_flight => {
                    // Take whatever else is already fetched, so the loop's overhead is paid per
                    // batch rather than per message.
                    let mut next = received;
                    let mut taken = 0;
                    loop {
                        match next {
                            Some(Ok(message)) => {
                                let ticket = Ticket::new(settled.clone());
                                let topic = inputs.intern(message.topic());
                                queue.push(Pending { topic: topic.clone(), partition: message.partition(), offset: message.offset(), arrived: Instant::now(), ticket: ticket.clone() });
                                handling.push(Either::Left(handle(shared.clone(), topic, &message, ticket, shutdown.clone())));
                            }
                            Some(Err(error)) => {
                                // librdkafka recovers from broker and network errors by itself.
                                ::metrics::counter!(metrics::CLIENT_ERRORS, "client" => "consumer").increment(1);
                                warn!(worker = name, %error, "consume error");
                            }
                            None => break,
                        }
                        taken += 1;
                        // Only take a message this iteration will also hand over.
                        if taken >= RECEIVE_BATCH || queue.len() >= shared.options.max_in_flight {
                            break;
                        }
                        match stream.next().now_or_never() {
                            Some(more) => next = more,
                            None => break,
                        }
                    }
                }
            }
            if let Err(error) = queue.settle(&self.consumer, shared) {
                failure = Some(error);
                break;
            }
        }
        drop(stream);
        if failure.is_none() {
            failure = self.drain(&mut queue, &mut handling, &settled).await.err();
        }
        let committed = self.commit_and_leave();
        let report = queue.report;
        info!(worker = name, ?report, "consumer loop stopped");
        match (failure, committed) {
            (Some(error), _) | (None, Err(error)) => Err(error),
            (None, Ok(())) => Ok(report),
        }
    }

    /// Lets in-flight messages finish (handlers see the cancellation and stop retrying) and
    /// settles them, within the shutdown deadline; whatever is not done by then is simply
    /// consumed again after a restart.
    async fn drain<F>(
        &self,
        queue: &mut SettleQueue,
        handling: &mut FuturesUnordered<F>,
        settled: &Notify,
    ) -> Result<(), BusError>
    where
        F: Future<Output = Result<(), BusError>>,
    {
        let deadline = tokio::time::sleep(self.shared.options.shutdown_timeout);
        tokio::pin!(deadline);
        loop {
            queue.settle(&self.consumer, &self.shared)?;
            if queue.len() == 0 {
                return Ok(());
            }
            tokio::select! {
                () = &mut deadline => {
                    warn!(worker = self.shared.worker.name(), left = queue.len(), "shutdown deadline reached; unfinished messages will be redelivered");
                    return Ok(());
                }
                Some(result) = handling.next(), if !handling.is_empty() => result?,
                () = settled.notified() => {}
            }
        }
    }

    fn commit_and_leave(&self) -> Result<(), BusError> {
        let committed = match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => Ok(()),
            // Nothing stored since the last commit: nothing to do.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(error) if self.consumer.assignment().map(|a| a.count() == 0).unwrap_or(false) => {
                debug!(%error, "no assignment to commit");
                Ok(())
            }
            Err(error) => Err(BusError::Commit(error)),
        };
        self.consumer.unsubscribe();
        // Outputs were waited for message by message; this only covers stragglers of abandoned ones.
        let _ = self.shared.producer.flush(Timeout::After(Duration::from_secs(5)));
        committed
    }
}

/// An interval that, after a stall, ticks once to catch up: a burst would only repeat the work.
fn every(period: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Completes at the worker's next tick, or never for a worker without ticks.
async fn next_tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs the worker's periodic work and hands its outputs to the producer; or, given a status
/// record, produces just that, never failing the loop over it.
async fn tick<W: Worker>(
    shared: Arc<Shared<W>>,
    ticket: Arc<Ticket>,
    status: Option<Outbound>,
) -> Result<(), BusError> {
    let name = shared.worker.name();
    if let Some(record) = status {
        // produce_all logs a refusal; a status is not worth stopping for.
        let _ = produce_all(&shared, vec![record], &ticket).await;
        ticket.release();
        return Ok(());
    }
    let result = match shared.worker.tick(SystemTime::now()).await {
        Ok(outputs) => produce_all(&shared, outputs, &ticket).await,
        Err(error @ HandlerError::Fatal { .. }) => Err(BusError::Worker { worker: name, error }),
        Err(error) => {
            ::metrics::counter!(metrics::TICK_FAILURES, "worker" => name).increment(1);
            warn!(worker = name, %error, "periodic work failed; the next tick tries again");
            Ok(())
        }
    };
    ticket.release();
    result
}

/// Input topic names, shared rather than copied per message, each with its consumed counter.
struct InputTopics {
    worker: &'static str,
    known: Vec<(Arc<str>, ::metrics::Counter)>,
}

impl InputTopics {
    fn intern(&mut self, topic: &str) -> Arc<str> {
        let index = match self.known.iter().position(|(known, _)| &**known == topic) {
            Some(index) => index,
            None => {
                let counter =
                    ::metrics::counter!(metrics::CONSUMED, "worker" => self.worker, "topic" => topic.to_string());
                self.known.push((Arc::from(topic), counter));
                self.known.len() - 1
            }
        };
        let (name, counter) = &self.known[index];
        counter.increment(1);
        name.clone()
    }
}

/// Consumed messages in order, and the offsets stored so far.
struct SettleQueue {
    pending: VecDeque<Pending>,
    /// Tickets of periodic outputs: no offset waits on them, but a failed delivery stops the loop.
    watched: Vec<Arc<Ticket>>,
    report: LoopReport,
    /// Set once a message was abandoned: no later offset may be stored past it.
    abandoned: bool,
    stored: ::metrics::Counter,
    handle_seconds: ::metrics::Histogram,
}

impl SettleQueue {
    fn new(worker: &'static str) -> Self {
        SettleQueue {
            pending: VecDeque::new(),
            watched: Vec::new(),
            report: LoopReport::default(),
            abandoned: false,
            stored: ::metrics::counter!(metrics::STORED, "worker" => worker),
            handle_seconds: ::metrics::histogram!(metrics::HANDLE_SECONDS, "worker" => worker),
        }
    }

    /// Messages and periodic outputs not yet settled.
    fn len(&self) -> usize {
        self.pending.len() + self.watched.len()
    }

    fn watch(&mut self, ticket: Arc<Ticket>) {
        self.watched.push(ticket);
    }

    fn push(&mut self, pending: Pending) {
        self.report.consumed += 1;
        self.pending.push_back(pending);
    }

    /// Stores the offsets of the settled messages at the head of the queue. A message whose
    /// output the broker refused for good is dead-lettered first (and settles again once that
    /// is acknowledged); any other delivery failure stops the loop.
    fn settle<W: Worker>(
        &mut self,
        consumer: &StreamConsumer<LoopContext>,
        shared: &Shared<W>,
    ) -> Result<(), BusError> {
        let mut next: HashMap<(Arc<str>, i32), i64> = HashMap::new();
        let now = Instant::now();
        let mut failure = None;
        for watched in self.watched.iter().filter(|t| t.is_settled()) {
            if let Some((topic, error)) = watched.failure() {
                failure = Some(BusError::Produce { topic: topic.clone(), source: error.clone() });
            }
        }
        self.watched.retain(|t| !t.is_settled());
        while failure.is_none() && self.pending.front().is_some_and(|p| p.ticket.is_settled()) {
            if let Some(head) = self.pending.front()
                && let Some((topic, error)) = head.ticket.failure()
            {
                if is_refused_for_good(&error) && !head.ticket.is_dead_lettered() {
                    // Settles again once the dead letter is acknowledged.
                    failure = late_dead_letter(shared, head, &topic, &error).err();
                } else {
                    failure = Some(BusError::Produce { topic, source: error });
                }
                break;
            }
            let Some(done) = self.pending.pop_front() else { break };
            self.abandoned |= done.ticket.is_abandoned();
            if self.abandoned {
                continue;
            }
            self.report.completed += 1;
            self.report.dead_lettered += u64::from(done.ticket.is_dead_lettered());
            self.handle_seconds.record(now.duration_since(done.arrived).as_secs_f64());
            next.insert((done.topic, done.partition), done.offset + 1);
        }
        if !next.is_empty() {
            let mut list = TopicPartitionList::with_capacity(next.len());
            for ((topic, partition), offset) in &next {
                // Offsets here are never negative, so this cannot fail.
                let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
            }
            match consumer.store_offsets(&list) {
                Ok(()) => self.stored.increment(next.len() as u64),
                // A partition revoked meanwhile: its new owner redoes the message (at least once).
                Err(error) => debug!(%error, "offsets not stored (partition no longer assigned)"),
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Whether a delivery error is the broker (or librdkafka) refusing this one record for good,
/// rather than the cluster being unreachable: retrying the same record cannot help, and the
/// input must be dead-lettered so the group moves on.
fn is_refused_for_good(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as Code;
    matches!(
        error,
        KafkaError::MessageProduction(
            Code::MessageSizeTooLarge
                | Code::MessageBatchTooLarge
                | Code::InvalidMessageSize
                | Code::InvalidMessage
                | Code::InvalidRecord
                | Code::InvalidTopic
                | Code::TopicAuthorizationFailed
                | Code::UnknownTopic
                | Code::UnknownTopicOrPartition
                | Code::UnknownPartition
        )
    )
}

/// Dead-letters the head message whose output the broker refused: its coordinates and why,
/// without its value (the original stays at its source offset; keeping every in-flight value
/// until acknowledgement would cost more than this rare path is worth).
fn late_dead_letter<W: Worker>(
    shared: &Shared<W>,
    head: &Pending,
    topic: &str,
    error: &KafkaError,
) -> Result<(), BusError> {
    let name = shared.worker.name();
    let kind = "output_refused";
    let reason = format!("the broker refused an output to {topic}: {error}");
    ::metrics::counter!(metrics::DEAD_LETTERED, "worker" => name, "reason" => kind).increment(1);
    warn!(worker = name, topic = %head.topic, partition = head.partition, offset = head.offset, kind, %reason,
          "message dead-lettered after delivery");
    let mut headers = dlq::headers(&dlq::Provenance {
        topic: &head.topic,
        partition: head.partition,
        offset: head.offset,
        kind,
        reason: &reason,
        worker: name,
        group: &shared.options.group_id,
        failed_at_ms: crate::clock::now_millis(),
    });
    let omitted = "omitted: an output was refused at delivery; the message is still at its source offset";
    headers.push((dlq::header::PAYLOAD.to_owned(), omitted.as_bytes().to_vec()));
    let headers =
        headers.iter().fold(OwnedHeaders::new(), |all, (key, value)| all.insert(Header { key, value: Some(value) }));
    let ticket = head.ticket.clone();
    ticket.clear_failure();
    ticket.mark_dead_lettered();
    ticket.hold();
    let record = BaseRecord::<[u8], [u8], Arc<Ticket>>::with_opaque_to(&shared.dlq_topic, ticket.clone())
        .payload(&[][..])
        .headers(headers);
    shared.producer.send(record).map_err(|(source, _)| {
        ticket.release();
        BusError::Produce { topic: shared.dlq_topic.to_string(), source }
    })
}

/// Checks the envelope, runs the worker (retrying transient failures) and produces its outputs
/// or a dead letter. Returns `Err` only for failures that must stop the loop.
fn handle<W: Worker>(
    shared: Arc<Shared<W>>,
    topic: Arc<str>,
    message: &BorrowedMessage<'_>,
    ticket: Arc<Ticket>,
    shutdown: CancellationToken,
) -> impl Future<Output = Result<(), BusError>> + use<W> {
    let (partition, offset) = (message.partition(), message.offset());
    let key = message.key().map(<[u8]>::to_vec);
    let payload = message.payload().map(<[u8]>::to_vec).unwrap_or_default();
    let timestamp_ms = message.timestamp().to_millis();
    async move {
        let result = match shared.catalog.identify(&payload) {
            Err(error) => {
                let source = Source { topic: &topic, partition, offset, key: key.as_deref(), payload: &payload };
                dead_letter(&shared, &source, &ticket, error.kind(), &error.to_string()).await
            }
            Ok(schema) => {
                let inbound = Inbound::new(topic, partition, offset, key, timestamp_ms, payload, schema);
                handle_with_retries(&shared, &inbound, &ticket, &shutdown).await
            }
        };
        if result.is_err() {
            // The loop is stopping because of this message: its offset must not be stored.
            ticket.abandon();
        }
        // The handling token: outputs now hold their own.
        ticket.release();
        result
    }
}

async fn handle_with_retries<W: Worker>(
    shared: &Shared<W>,
    inbound: &Inbound,
    ticket: &Arc<Ticket>,
    shutdown: &CancellationToken,
) -> Result<(), BusError> {
    let name = shared.worker.name();
    let mut backoff = shared.options.retry_initial_backoff;
    loop {
        match shared.worker.handle(inbound).await {
            Ok(outputs) => {
                return match shared.outputs.first_refused(&outputs).await {
                    None => produce_all(shared, outputs, ticket).await,
                    Some(refusal) => refuse(shared, inbound, ticket, &refusal).await,
                };
            }
            Err(HandlerError::Rejected { kind, reason, answer }) => {
                return reject(shared, inbound, ticket, kind, &reason, answer).await;
            }
            Err(HandlerError::Transient { kind, reason }) => {
                ::metrics::counter!(metrics::RETRIES, "worker" => name, "kind" => kind).increment(1);
                warn!(worker = name, topic = %inbound.topic, partition = inbound.partition, offset = inbound.offset,
                      kind, reason, ?backoff, "transient failure, retrying");
                tokio::select! {
                    () = shutdown.cancelled() => {
                        ticket.abandon();
                        return Ok(());
                    }
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(shared.options.retry_max_backoff);
            }
            Err(error @ HandlerError::Fatal { .. }) => {
                error!(worker = name, %error, "worker failed");
                return Err(BusError::Worker { worker: name, error });
            }
        }
    }
}

/// Hands every output to the producer, each holding a token of the message's ticket until the
/// broker acknowledges it.
async fn produce_all<W: Worker>(
    shared: &Shared<W>,
    outputs: Vec<Outbound>,
    ticket: &Arc<Ticket>,
) -> Result<(), BusError> {
    for out in &outputs {
        let mut record =
            BaseRecord::<[u8], [u8], Arc<Ticket>>::with_opaque_to(&out.topic, ticket.clone()).payload(&out.payload);
        if let Some(key) = &out.key {
            record = record.key(key);
        }
        if !out.headers.is_empty() {
            let headers = out
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |headers, (key, value)| headers.insert(Header { key, value: Some(value) }));
            record = record.headers(headers);
        }
        ticket.hold();
        loop {
            match shared.producer.send(record) {
                Ok(()) => break,
                // The producer's queue is full: wait for deliveries to make room (backpressure).
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Refused for this record alone: settled like a refused delivery (the input is
                // dead-lettered when its turn comes).
                Err((source, _)) if is_refused_for_good(&source) => {
                    ticket.fail(&out.topic, source);
                    ticket.release();
                    break;
                }
                Err((source, _)) => {
                    ticket.release();
                    error!(worker = shared.worker.name(), topic = %out.topic, error = %source, "produce refused");
                    return Err(BusError::Produce { topic: out.topic.to_string(), source });
                }
            }
        }
    }
    Ok(())
}

/// A message whose outputs the bus will not send: the worker's replacements (an error answer,
/// checked like any output) go out instead, and the message is dead-lettered with the reason.
async fn refuse<W: Worker>(
    shared: &Shared<W>,
    inbound: &Inbound,
    ticket: &Arc<Ticket>,
    refusal: &Refusal,
) -> Result<(), BusError> {
    let answer = shared.worker.refused(inbound, refusal);
    reject(shared, inbound, ticket, refusal.kind(), &refusal.to_string(), answer).await
}

/// Sends `answer` (each output checked; one the bus refuses too is dropped, logged) and
/// dead-letters the message.
async fn reject<W: Worker>(
    shared: &Shared<W>,
    inbound: &Inbound,
    ticket: &Arc<Ticket>,
    kind: &'static str,
    reason: &str,
    answer: Vec<Outbound>,
) -> Result<(), BusError> {
    let mut checked = Vec::with_capacity(answer.len());
    for output in answer {
        match shared.outputs.first_refused(std::slice::from_ref(&output)).await {
            None => checked.push(output),
            Some(refusal) => warn!(worker = shared.worker.name(), %refusal, "an error answer is refused too; dropped"),
        }
    }
    produce_all(shared, checked, ticket).await?;
    dead_letter(shared, &Source::of(inbound), ticket, kind, reason).await
}

/// Sends a message that can never succeed to the dead-letter topic, with headers saying where it
/// came from and why, and counts and logs it (the one place that does). A message too large to
/// be dead-lettered whole keeps its headers and the first part of its value; the header
/// `frontier.payload` says how much was kept, and the original stays at its source offset.
async fn dead_letter<W: Worker>(
    shared: &Shared<W>,
    source: &Source<'_>,
    ticket: &Arc<Ticket>,
    kind: &'static str,
    reason: &str,
) -> Result<(), BusError> {
    let name = shared.worker.name();
    ::metrics::counter!(metrics::DEAD_LETTERED, "worker" => name, "reason" => kind).increment(1);
    warn!(
        worker = name,
        topic = source.topic,
        partition = source.partition,
        offset = source.offset,
        kind,
        reason = %dlq::truncated(reason, dlq::MAX_REASON_BYTES),
        "message dead-lettered"
    );
    let failed_at = crate::clock::now_millis();
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
    let key = source.key.map(|key| key[..key.len().min(dlq::MAX_KEY_BYTES)].to_vec());
    let mut letter = Outbound { topic: shared.dlq_topic.clone(), key, payload: Vec::new(), headers };
    let room = shared.outputs.max_message_bytes().saturating_sub(record_size(&letter) + 64);
    if source.payload.len() > room {
        letter.payload = source.payload[..room].to_vec();
        let kept = format!("truncated: kept the first {room} of {} bytes", source.payload.len());
        letter.headers.push((dlq::header::PAYLOAD.to_owned(), kept.into_bytes()));
    } else {
        letter.payload = source.payload.to_vec();
    }
    ticket.mark_dead_lettered();
    produce_all(shared, vec![letter], ticket).await
}
