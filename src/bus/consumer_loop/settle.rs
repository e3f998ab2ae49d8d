//! The settle queue: consumed messages in consumption order, each waiting for its outputs to be
//! acknowledged; an offset is stored only once every message before it in its partition is
//! settled too. A record the broker refuses for good dead-letters its input here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use super::{BusError, LoopReport, Pending, Shared};
use crate::bus::context::LoopContext;
use crate::bus::delivery::Ticket;
use crate::bus::stages::StageHistograms;
use crate::bus::worker::Worker;
use crate::bus::{dlq, metrics};

/// Consumed messages in order, and the offsets stored so far.
pub(super) struct SettleQueue {
    pending: VecDeque<Pending>,
    /// Tickets of periodic outputs: no offset waits on them, but a failed delivery stops the loop.
    watched: Vec<Arc<Ticket>>,
    pub(super) report: LoopReport,
    /// Set once a message was abandoned: no later offset may be stored past it.
    abandoned: bool,
    stored: ::metrics::Counter,
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
            stored: ::metrics::counter!(metrics::STORED, "worker" => worker),
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

    /// Queues a consumed message behind those consumed before it.
    pub(super) fn push(&mut self, pending: Pending) {
        self.report.consumed += 1;
        self.pending.push_back(pending);
    }

    /// Stores the offsets of the settled messages at the head of the queue. A message whose
    /// output the broker refused for good is dead-lettered first (and settles again once that
    /// is acknowledged); any other delivery failure stops the loop.
    pub(super) fn settle<W: Worker>(
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
