//! The consumer loop every worker runs on: consume, check, handle, produce, and only once the
//! outputs are acknowledged store the offset, so a crash at any point loses nothing (at least
//! once).
//!
//! Messages are handled concurrently (up to `bus.max_in_flight`), but settled in consumption
//! order: each message's [`Ticket`] waits in a queue, and an offset is stored only when every
//! message before it is settled too. librdkafka commits the stored offsets in the background,
//! before a rebalance takes partitions away, and once more when the loop stops.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::Either;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::codec::SchemaCatalog;
use super::context::LoopContext;
use super::delivery::{DeliveryContext, Ticket};
use super::kafka::Rebalancing;
use super::outputs::OutputCheck;
use super::settings::{BusSettings, KafkaSettings};
use super::status::{BusyClock, DeadLetterCount, LagReading, StatusReporter};
use super::worker::{HandlerError, Outbound, Worker};
use super::{kafka, metrics};
use handling::{handle, produce_all};
use orphans::{AuditError, Finding, OrphanAudit};
use settle::SettleQueue;

mod handling;
mod orphans;
mod settle;

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
    #[error("cannot rewind {topic}/{partition} to offset {offset} after an undelivered output: {source}")]
    Seek {
        topic: String,
        partition: i32,
        offset: i64,
        #[source]
        source: KafkaError,
    },
    #[error("worker {worker} stopped: {error}")]
    Worker { worker: &'static str, error: HandlerError },
    #[error("final offset commit failed: {0}")]
    Commit(#[source] KafkaError),
    #[error("leaving the consumer group did not finish: {0}")]
    Leave(String),
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
    /// How the group hands partitions over (classic groups); cooperative unless the worker
    /// says otherwise.
    pub rebalancing: Rebalancing,
    /// The loop producer's linger when the worker's outputs want another than `[kafka]
    /// linger`: a worker that answers requests waits for it with every answer.
    pub linger: Option<Duration>,
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
            rebalancing: Rebalancing::default(),
            linger: None,
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
    /// Time spent in the worker's `handle`, for the status reports' busy share.
    busy: Arc<BusyClock>,
    /// Dead letters sent, for the status reports.
    dead_letters: Arc<DeadLetterCount>,
}

/// A consumed message waiting for its outputs to be acknowledged, in consumption order.
struct Pending {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    arrived: Instant,
    /// Milliseconds from the record's timestamp to its arrival, when it has one.
    in_kafka_ms: Option<i64>,
    ticket: Arc<Ticket>,
}

/// Where a message came from, for its dead letter.
pub struct ConsumerLoop<W: Worker> {
    consumer: StreamConsumer<LoopContext>,
    shared: Arc<Shared<W>>,
    /// Looks for partitions the group leaves without an owner; `None` for KIP-848 groups,
    /// which the broker assigns from its own metadata.
    audit: Option<OrphanAudit>,
}

impl<W: Worker> ConsumerLoop<W> {
    /// Creates the consumer (subscribed) and the loop's producer (`kafka::producer_config`).
    pub fn new(
        kafka_settings: &KafkaSettings,
        options: LoopOptions,
        worker: Arc<W>,
        catalog: Arc<SchemaCatalog>,
    ) -> Result<Self, BusError> {
        let context = LoopContext {
            group_id: options.group_id.clone(),
            lag: LagReading::default(),
            assignment_changes: Default::default(),
        };
        let consumer: StreamConsumer<LoopContext> =
            kafka::consumer_config(kafka_settings, &options.group_id, options.rebalancing)
                .create_with_context(context)
                .map_err(|source| BusError::Client { what: "consumer", source })?;
        let lingering = options.linger.map(|linger| KafkaSettings { linger, ..kafka_settings.clone() });
        let producer = kafka::producer_config(lingering.as_ref().unwrap_or(kafka_settings))
            .create_with_context(DeliveryContext::new(worker.name()))
            .map_err(|source| BusError::Client { what: "producer", source })?;
        let admin =
            Arc::new(kafka::admin(kafka_settings).map_err(|source| BusError::Client { what: "admin client", source })?);
        let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|source| BusError::Subscribe { topics: options.topics.clone(), source })?;
        let dlq_topic = Arc::from(options.dlq_topic.as_str());
        let audit = (!kafka_settings.uses_kip_848_groups())
            .then(|| OrphanAudit::new(admin.clone(), options.group_id.clone(), options.topics.clone()));
        Ok(ConsumerLoop {
            consumer,
            audit,
            shared: Arc::new(Shared {
                worker,
                producer,
                catalog,
                dlq_topic,
                outputs: OutputCheck::new(options.max_message_bytes, admin),
                busy: Arc::default(),
                dead_letters: Arc::default(),
                options,
            }),
        })
    }

    /// The status reporter, if reporting is on and its topic exists. A missing topic is said
    /// once, here, rather than leaving librdkafka to retry records nobody can take (and the
    /// final flush to wait for them). Read from the listing just primed: asking again waited
    /// out the listings' 1 s spacing, and the group's first partitions, assigned meanwhile
    /// but taken only when the loop polls, waited with it.
    fn status_reporter(&self) -> Option<StatusReporter> {
        let shared = &self.shared;
        let (topic, _) = shared.options.status.as_ref()?;
        if !shared.outputs.listed(topic) {
            warn!(worker = shared.worker.name(), topic = %topic,
                  "the worker status topic does not exist (run `frontier topics apply`); status reports are off");
            return None;
        }
        let lag = self.consumer.context().lag.clone();
        let (busy, dead_letters) = (shared.busy.clone(), shared.dead_letters.clone());
        let (name, group) = (shared.worker.name(), &shared.options.group_id);
        StatusReporter::new(&shared.catalog, topic, name, group, lag, busy, dead_letters)
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
        // Otherwise the first message's output check lists the cluster's topics while every
        // message behind it waits.
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = shared.outputs.prime() => {}
        }
        let mut status = self.status_reporter();
        let mut status_ticker = status.as_ref().and(shared.options.status.as_ref()).map(|(_, period)| every(*period));
        let mut audit_ticker = self.audit.as_ref().map(|_| {
            let mut ticker = every(orphans::AUDIT_INTERVAL);
            ticker.reset(); // The first audit one interval in: the group is still joining now.
            ticker
        });
        let mut audit = None;

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
                _ = next_tick(&mut audit_ticker), if audit.is_none() => {
                    audit = self.audit.clone().map(|audit| Box::pin(audit.run()));
                }
                outcome = finished(&mut audit) => {
                    if let Err(error) = self.rejoin_if_orphaned(outcome) {
                        failure = Some(error);
                        break;
                    }
                }
                _ = next_tick(&mut ticker) => {
                    let ticket = Ticket::periodic(settled.clone());
                    queue.watch(ticket.clone());
                    handling.push(Either::Right(periodic(shared.clone(), ticket, Periodic::Tick)));
                }
                _ = next_tick(&mut status_ticker) => {
                    // Not watched by the settle queue: a status that fails to arrive is logged
                    // and counted by the delivery callback, and the next one replaces it.
                    if let Some(record) = status.as_mut().and_then(StatusReporter::next_record) {
                        handling.push(Either::Right(periodic(shared.clone(), Ticket::new(settled.clone()), Periodic::Status(record))));
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
                                let topic = inputs.intern(message.topic());
                                // (Not accepted: fetched before a rewind of its partition.)
                                if queue.accepts(&self.consumer, &topic, message.partition(), message.offset()) {
                                    let ticket = Ticket::new(settled.clone());
                                    let in_kafka_ms = message.timestamp().to_millis().map(|at| (crate::clock::now_millis() - at).max(0));
                                    queue.push(Pending { topic: topic.clone(), partition: message.partition(), offset: message.offset(), arrived: Instant::now(), in_kafka_ms, ticket: ticket.clone() });
                                    handling.push(Either::Left(handle(shared.clone(), topic, &message, ticket, shutdown.clone())));
                                }
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
            for records in queue.take_resends() {
                let ticket = Ticket::periodic(settled.clone());
                queue.watch(ticket.clone());
                handling.push(Either::Right(periodic(shared.clone(), ticket, Periodic::Resend(records))));
            }
        }
        drop(stream);
        if failure.is_none() {
            failure = self.drain(&mut queue, &mut handling, &settled).await.err();
        }
        let report = queue.report;
        // Committing, leaving the group and dropping the clients block until the coordinator
        // and the brokers answer (the consumer's drop waits for its close): on a blocking
        // thread, so that the other loops sharing this runtime keep serving meanwhile.
        let committed = tokio::task::spawn_blocking(move || self.commit_and_leave())
            .await
            .unwrap_or_else(|error| Err(BusError::Leave(error.to_string())));
        info!(worker = name, ?report, "consumer loop stopped");
        match (failure, committed) {
            (Some(error), _) | (None, Err(error)) => Err(error),
            (None, Ok(())) => Ok(report),
        }
    }

    /// Rejoins the group when an audit found partitions nobody owns and named this member to
    /// repair it (see `orphans`): leaving and joining again makes the leader assign afresh, on
    /// metadata asked anew. An audit that could not ask is logged and counted; the next one
    /// asks again.
    fn rejoin_if_orphaned(&self, outcome: Result<Finding, AuditError>) -> Result<(), BusError> {
        let group = &self.shared.options.group_id;
        let (orphaned, repairer) = match outcome {
            Ok(Finding::Owned) => return Ok(()),
            Ok(Finding::Orphaned { orphaned, repairer }) => (orphaned, repairer),
            Err(error) => {
                ::metrics::counter!(metrics::CLIENT_ERRORS, "client" => "group audit").increment(1);
                warn!(%group, %error, "cannot audit the group's partition ownership; trying again later");
                return Ok(());
            }
        };
        if repairer.is_none() || repairer != super::groups::member_id(self.consumer.client()) {
            debug!(%group, ?orphaned, ?repairer, "partitions without an owner; another member rejoins");
            return Ok(());
        }
        warn!(%group, ?orphaned, "the group's assignment left partitions without an owner (made on stale metadata); rejoining");
        ::metrics::counter!(metrics::REBALANCES, "group" => group.clone(), "kind" => "orphan_rejoin").increment(1);
        let topics: Vec<&str> = self.shared.options.topics.iter().map(String::as_str).collect();
        self.consumer.unsubscribe();
        self.consumer
            .subscribe(&topics)
            .map_err(|source| BusError::Subscribe { topics: self.shared.options.topics.clone(), source })
    }

    /// Lets in-flight messages finish (handlers see the cancellation and stop retrying) and
    /// settles them, within the shutdown deadline; whatever is not done by then is simply
    /// consumed again after a restart. Periodic outputs still undelivered are not sent again
    /// here: the next process's ticks recompute them (the SLA monitor judges its alerts afresh
    /// against the book it rebuilds from the alerts topic).
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

    /// Commits what is durable, leaves the group and closes the clients. Blocking.
    fn commit_and_leave(self) -> Result<(), BusError> {
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
        // The consumer's drop waits until the group has been left.
        drop(self.consumer);
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

/// Completes with the running audit's outcome (then no audit runs), or never while none runs.
/// Cancel-safe: the audit is only polled here, and taken once it finished.
async fn finished<F: Future + Unpin>(audit: &mut Option<F>) -> F::Output {
    let outcome = match audit {
        Some(running) => running.await,
        None => std::future::pending().await,
    };
    *audit = None;
    outcome
}

/// What a periodic future does besides handling messages.
enum Periodic {
    /// The worker's tick: its outputs are produced under a watched ticket.
    Tick,
    /// A status report: produced, never failing the loop over it.
    Status(Outbound),
    /// Periodic outputs the cluster could not take in time, sent again.
    Resend(Vec<Outbound>),
}

/// Runs the worker's periodic work and hands its outputs to the producer, or produces a status
/// record or records to send again.
async fn periodic<W: Worker>(shared: Arc<Shared<W>>, ticket: Arc<Ticket>, what: Periodic) -> Result<(), BusError> {
    let name = shared.worker.name();
    let result = match what {
        Periodic::Status(record) => {
            // produce_all logs a refusal; a status is not worth stopping for.
            let _ = produce_all(&shared, vec![record], &ticket).await;
            Ok(())
        }
        Periodic::Resend(records) => produce_all(&shared, records, &ticket).await,
        Periodic::Tick => match shared.worker.tick(SystemTime::now()).await {
            Ok(outputs) => produce_all(&shared, outputs, &ticket).await,
            Err(error @ HandlerError::Fatal { .. }) => Err(BusError::Worker { worker: name, error }),
            Err(error) => {
                ::metrics::counter!(metrics::TICK_FAILURES, "worker" => name).increment(1);
                warn!(worker = name, %error, "periodic work failed; the next tick tries again");
                Ok(())
            }
        },
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
