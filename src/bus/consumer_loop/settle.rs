//! The settle queue: consumed messages in consumption order, each waiting for its outputs to be
//! acknowledged; an offset is stored only once every message before it in its partition is
//! settled too. A record the broker refuses for good dead-letters its input here.
//!
//! A record the cluster could not take in time (a network partition or a broker outage longer
//! than `kafka.delivery_timeout`) is no reason to stop: the message's partition is rewound to
//! it and consumed again once the cluster answers (at least once; outputs that did get through
//! are produced twice). A periodic output, which has no input to consume again, is sent again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use super::{BusError, LoopReport, Pending, Shared};
use crate::bus::context::LoopContext;
use crate::bus::delivery::Ticket;
use crate::bus::stages::StageHistograms;
use crate::bus::worker::{Outbound, Worker};
use crate::bus::{dlq, metrics};

/// Consumed messages in order, and the offsets stored so far.
pub(super) struct SettleQueue {
    pending: VecDeque<Pending>,
    /// Tickets of periodic outputs: no offset waits on them, but a failed delivery stops the loop.
    watched: Vec<Arc<Ticket>>,
    pub(super) report: LoopReport,
    /// Set once a message was abandoned: no later offset may be stored past it.
    abandoned: bool,
    /// Partitions rewound: to which offset, and the consumer's assignment-change count then.
    /// Until a message at or before the offset arrives, what arrives from the partition was
    /// fetched before the seek and is skipped; once the assignment changes, the partition
    /// restarts from its committed offset (another member may have gone past the rewind),
    /// and the entry no longer holds.
    rewound: HashMap<(Arc<str>, i32), (i64, u64)>,
    /// Periodic outputs not delivered, to be sent again by the loop.
    resend: Vec<Vec<Outbound>>,
    stored: ::metrics::Counter,
    rewinds: ::metrics::Counter,
    resent: ::metrics::Counter,
    handle_seconds: ::metrics::Histogram,
    stages: StageHistograms,
}

impl SettleQueue {
    /// An empty queue counting into `worker`'s metrics.
    pub(super) fn new(worker: &'static str) -> Self {
        SettleQueue {
            pending: VecDeque::new(),
            watched: Vec::new(),
            report: LoopReport::default(),
            abandoned: false,
            rewound: HashMap::new(),
            resend: Vec::new(),
            stored: ::metrics::counter!(metrics::STORED, "worker" => worker),
            rewinds: ::metrics::counter!(metrics::REWINDS, "worker" => worker),
            resent: ::metrics::counter!(metrics::RESENT, "worker" => worker),
            handle_seconds: ::metrics::histogram!(metrics::HANDLE_SECONDS, "worker" => worker),
            stages: StageHistograms::new(worker),
        }
    }

    /// Messages and periodic outputs not yet settled.
    pub(super) fn len(&self) -> usize {
        self.pending.len() + self.watched.len()
    }

    /// Follows the delivery of a periodic output, which no offset waits for.
    pub(super) fn watch(&mut self, ticket: Arc<Ticket>) {
        self.watched.push(ticket);
    }

    /// Whether a message just received is to be handled: not if its partition was rewound to
    /// an earlier offset that has not come back yet (it was fetched before the seek).
    pub(super) fn accepts(
        &mut self,
        consumer: &StreamConsumer<LoopContext>,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
    ) -> bool {
        // The common case, on every message: nothing rewound, no key to build.
        if self.rewound.is_empty() {
            return true;
        }
        let changes = assignment_changes(consumer);
        self.rewound.retain(|_, (_, at)| *at == changes);
        let key = (topic.clone(), partition);
        match self.rewound.get(&key) {
            Some(&(to, _)) if offset > to => {
                debug!(topic = %topic, partition, offset, rewound_to = to, "skipped: fetched before the rewind");
                false
            }
            Some(_) => {
                self.rewound.remove(&key);
                true
            }
            None => true,
        }
    }

    /// Periodic outputs to send again, each group under a new watched ticket.
    pub(super) fn take_resends(&mut self) -> Vec<Vec<Outbound>> {
        std::mem::take(&mut self.resend)
    }

    /// Queues a consumed message behind those consumed before it.
    pub(super) fn push(&mut self, pending: Pending) {
        self.report.consumed += 1;
        self.pending.push_back(pending);
    }

    /// Stores the offsets of the settled messages at the head of the queue. A message whose
    /// output the broker refused for good is dead-lettered first (and settles again once that
    /// is acknowledged); one whose output the cluster could not take in time has its partition
    /// rewound to it; any other delivery failure stops the loop.
    pub(super) fn settle<W: Worker>(
        &mut self,
        consumer: &StreamConsumer<LoopContext>,
        shared: &Shared<W>,
    ) -> Result<(), BusError> {
        let mut next: HashMap<(Arc<str>, i32), i64> = HashMap::new();
        let now = Instant::now();
        let mut failure = None;
        for watched in self.watched.iter().filter(|t| t.is_settled()) {
            let Some((topic, error)) = watched.failure() else { continue };
            let undelivered = watched.take_undelivered();
            if is_unreachable(&error) && !undelivered.is_empty() {
                warn!(worker = shared.worker.name(), topic = %topic, %error, records = undelivered.len(),
                      "periodic outputs not delivered in time; sending them again");
                self.resent.increment(undelivered.len() as u64);
                self.resend.push(undelivered);
            } else {
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
                    break;
                }
                if !is_unreachable(&error) {
                    failure = Some(BusError::Produce { topic, source: error });
                    break;
                }
                let at = (head.topic.clone(), head.partition, head.offset);
                // What this partition stored in `next` came before the message: still good.
                failure = self.rewind(consumer, shared.worker.name(), at, (&topic, &error)).err();
                continue;
            }
            let Some(done) = self.pending.pop_front() else { break };
            self.abandoned |= done.ticket.is_abandoned();
            if self.abandoned {
                continue;
            }
            self.report.completed += 1;
            self.report.dead_lettered += u64::from(done.ticket.is_dead_lettered());
            self.handle_seconds.record(now.duration_since(done.arrived).as_secs_f64());
            self.stages.record(done.arrived, done.in_kafka_ms, &done.ticket, now);
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

    /// Consumes a partition again from a message whose output the cluster could not take in
    /// time: the partition's queued messages are dropped (outputs of theirs that still get
    /// through are duplicates, as after a crash) and the consumer seeks back to the message.
    /// `at` is the message's topic, partition and offset; `failed` its output's topic and error.
    fn rewind(
        &mut self,
        consumer: &StreamConsumer<LoopContext>,
        worker: &'static str,
        (topic, partition, offset): (Arc<str>, i32, i64),
        (output, error): (&str, &KafkaError),
    ) -> Result<(), BusError> {
        self.pending.retain(|p| !(*p.topic == *topic && p.partition == partition));
        self.rewinds.increment(1);
        warn!(worker, topic = %topic, partition, offset, output, %error,
              "an output was not delivered in time; consuming the partition again from its message");
        self.rewound.insert((topic.clone(), partition), (offset, assignment_changes(consumer)));
        // A seek only queues an operation for the partition's fetcher; the wait is for its
        // reply, not for the brokers, so blocking the loop's thread for it is brief.
        match consumer.seek(&topic, partition, Offset::Offset(offset), Timeout::After(SEEK_TIMEOUT)) {
            Ok(()) => Ok(()),
            Err(error) if !is_assigned(consumer, &topic, partition) => {
                debug!(topic = %topic, partition, %error, "not rewound: no longer assigned (its new owner redoes it)");
                Ok(())
            }
            Err(source) => Err(BusError::Seek { topic: topic.to_string(), partition, offset, source }),
        }
    }
}

/// How long a rewind waits for the fetcher to take the seek.
const SEEK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn assignment_changes(consumer: &StreamConsumer<LoopContext>) -> u64 {
    consumer.context().assignment_changes.load(std::sync::atomic::Ordering::Acquire)
}

fn is_assigned(consumer: &StreamConsumer<LoopContext>, topic: &str, partition: i32) -> bool {
    consumer.assignment().is_ok_and(|list| list.find_partition(topic, partition).is_some())
}

/// Whether a delivery error means the cluster could not take the record in time (a partition,
/// brokers down, too few in-sync replicas for longer than `kafka.delivery_timeout`), rather than
/// a refusal of this record or a broken producer: the same record can succeed later.
fn is_unreachable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as Code;
    matches!(
        error,
        KafkaError::MessageProduction(
            Code::MessageTimedOut
                | Code::RequestTimedOut
                | Code::NotEnoughReplicas
                | Code::NotEnoughReplicasAfterAppend
                | Code::LeaderNotAvailable
                | Code::NotLeaderForPartition
                | Code::BrokerNotAvailable
                | Code::NetworkException
                | Code::AllBrokersDown
                | Code::BrokerTransportFailure
        )
    )
}

/// Whether a delivery error is the broker (or librdkafka) refusing this one record for good,
/// rather than the cluster being unreachable: retrying the same record cannot help, and the
/// input must be dead-lettered so the group moves on.
pub(super) fn is_refused_for_good(error: &KafkaError) -> bool {
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
    shared.dead_letters.add();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use rdkafka::ClientConfig;

    use super::*;

    /// A consumer that never connects (`accepts` reads only its context); rdkafka's stream
    /// consumer wants a runtime, hence the tokio tests.
    fn consumer() -> StreamConsumer<LoopContext> {
        let context = LoopContext {
            group_id: "settle-test".into(),
            lag: Default::default(),
            assignment_changes: Default::default(),
        };
        ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "settle-test")
            .create_with_context(context)
            .expect("a consumer is created without a broker")
    }

    /// A queue whose partition `orders/0` was rewound to offset 10.
    fn rewound_to_ten(consumer: &StreamConsumer<LoopContext>) -> (SettleQueue, Arc<str>) {
        let mut queue = SettleQueue::new("settle-test");
        let topic: Arc<str> = Arc::from("orders");
        queue.rewound.insert((topic.clone(), 0), (10, assignment_changes(consumer)));
        (queue, topic)
    }

    #[tokio::test]
    async fn messages_fetched_before_a_rewinds_seek_are_skipped() {
        let consumer = consumer();
        let (mut queue, topic) = rewound_to_ten(&consumer);
        assert!(!queue.accepts(&consumer, &topic, 0, 11));
        assert!(!queue.accepts(&consumer, &topic, 0, 12));
    }

    #[tokio::test]
    async fn the_rewound_message_coming_back_ends_the_skipping() {
        let consumer = consumer();
        let (mut queue, topic) = rewound_to_ten(&consumer);
        assert!(queue.accepts(&consumer, &topic, 0, 10));
        assert!(queue.accepts(&consumer, &topic, 0, 11));
    }

    #[tokio::test]
    async fn other_partitions_are_not_skipped_by_a_rewind() {
        let consumer = consumer();
        let (mut queue, topic) = rewound_to_ten(&consumer);
        assert!(queue.accepts(&consumer, &topic, 1, 50));
        assert!(queue.accepts(&consumer, &Arc::from("trades"), 0, 50));
    }

    /// A partition revoked and handed back resumes from its committed offset, which another
    /// member may have moved past the rewind: skipping until the rewound offset would then
    /// skip messages for good (seen under cooperative-sticky: 56 requests lost).
    #[tokio::test]
    async fn a_partition_handed_back_after_a_rewind_is_consumed_not_skipped() {
        let consumer = consumer();
        let (mut queue, topic) = rewound_to_ten(&consumer);
        consumer.context().assignment_changes.fetch_add(1, Ordering::AcqRel);
        assert!(queue.accepts(&consumer, &topic, 0, 40));
        assert!(queue.accepts(&consumer, &topic, 0, 41));
    }
}
