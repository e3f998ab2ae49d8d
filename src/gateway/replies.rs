//! Answers coming back: each gateway instance has a reply topic of its own, named in every
//! request's `reply_to`, and one reader assigned to all of it. A request waits on a slot keyed
//! by its id; the reader fills the slot when the answer arrives.
//!
//! Why a topic per instance rather than one shared reply topic: with a shared topic every
//! instance would read every answer (20 instances at 5,000 req/s each would each read 100,000
//! answers a second to keep 5,000), and with a shared group an answer would reach whichever
//! instance owns its partition, not the one holding the caller's connection. The cost is a
//! topic per instance, created at start and deleted on a clean stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value as Json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::GatewayError;
use super::metrics::{PENDING, REPLIES_UNDECODABLE, REPLIES_UNMATCHED};
use crate::bus::json::avro_to_json;
use crate::bus::{KafkaSettings, SchemaCatalog, kafka};

/// What a request asked for, which decides how its answer reads over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// An `AnalysisRequest`; the answer is an `AnalysisResponse`.
    Analysis,
    /// An `InferenceJob`; the answer is an `InferenceResult`.
    Inference,
}

/// One request waiting for (or holding) its answer.
#[derive(Debug)]
pub struct Slot {
    /// The tenant that asked: only it may read the answer.
    pub tenant: String,
    /// What was asked.
    pub asked: Asked,
    /// When the request gives up waiting (its deadline).
    pub deadline: Instant,
    /// When the slot is forgotten: the deadline plus the result retention.
    expires: Instant,
    /// The decoded answer, once it arrived.
    answer: watch::Sender<Option<Arc<Json>>>,
}

impl Slot {
    /// A receiver that sees the answer when it arrives (or already holds it).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Json>>> {
        self.answer.subscribe()
    }

    /// The answer, if it arrived.
    pub fn answer(&self) -> Option<Arc<Json>> {
        self.answer.borrow().clone()
    }
}

/// Requests of this instance waiting for or holding their answers, by request id.
#[derive(Debug)]
pub struct PendingAnswers {
    slots: DashMap<String, Arc<Slot>>,
    capacity: usize,
    retention: Duration,
}

impl PendingAnswers {
    /// An empty table holding at most `capacity` slots, each kept `retention` past its
    /// deadline.
    pub fn new(capacity: usize, retention: Duration) -> PendingAnswers {
        PendingAnswers { slots: DashMap::new(), capacity, retention }
    }

    /// Opens a slot for `id`; `None` when the table is full or the id is taken (ids are
    /// gateway-made UUIDs, so a taken one is a bug, not a caller's doing).
    pub fn open(&self, id: &str, tenant: &str, asked: Asked, deadline: Instant) -> Option<Arc<Slot>> {
        if self.slots.len() >= self.capacity {
            return None;
        }
        let (answer, _) = watch::channel(None);
        let slot =
            Arc::new(Slot { tenant: tenant.to_owned(), asked, deadline, expires: deadline + self.retention, answer });
        match self.slots.entry(id.to_owned()) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(slot.clone());
                ::metrics::gauge!(PENDING).set(self.slots.len() as f64);
                Some(slot)
            }
        }
    }

    /// The slot of `id`, if it is still kept.
    pub fn get(&self, id: &str) -> Option<Arc<Slot>> {
        self.slots.get(id).map(|slot| slot.clone())
    }

    /// Forgets `id` (a synchronous caller got its answer or gave up).
    pub fn close(&self, id: &str) {
        self.slots.remove(id);
        ::metrics::gauge!(PENDING).set(self.slots.len() as f64);
    }

    /// Fills the slot of `id` with `answer`; false when no slot waits for it.
    pub fn fill(&self, id: &str, answer: Json) -> bool {
        match self.slots.get(id) {
            Some(slot) => {
                slot.answer.send_replace(Some(Arc::new(answer)));
                true
            }
            None => false,
        }
    }

    /// Whether a slot waits for `id` (checked before decoding a reply, so answers meant for a
    /// caller that gave up cost no decoding).
    pub fn is_waiting(&self, id: &str) -> bool {
        self.slots.contains_key(id)
    }

    /// Forgets every slot past its retention.
    pub fn sweep(&self, now: Instant) {
        self.slots.retain(|_, slot| slot.expires > now);
        ::metrics::gauge!(PENDING).set(self.slots.len() as f64);
    }

    /// How many slots are kept.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Creates the reply topic (one partition, short retention) unless it exists, and waits until
/// the broker's metadata shows it, so workers can answer to it as soon as requests flow.
pub async fn create_reply_topic(kafka: &KafkaSettings, topic: &str, retention: Duration) -> Result<(), GatewayError> {
    let admin = kafka::admin(kafka).map_err(|source| GatewayError::Kafka { context: "admin client".into(), source })?;
    let retention_ms = retention.as_millis().to_string();
    // -1: the broker's default.replication.factor, so one file serves one broker and three.
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
        .set("retention.ms", &retention_ms)
        .set("cleanup.policy", "delete");
    let options = AdminOptions::new().operation_timeout(Some(kafka.request_timeout));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|source| GatewayError::Kafka { context: format!("creating {topic}"), source })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                let reason = format!("creating it failed: {code}");
                return Err(GatewayError::ReplyTopic { topic: topic.into(), waited: Duration::ZERO, reason });
            }
        }
    }
    Ok(())
}

/// Deletes the reply topic (on a clean stop); failures are logged, not returned: the topic's
/// retention keeps a leftover small.
pub async fn delete_reply_topic(kafka: &KafkaSettings, topic: &str) {
    match kafka::delete_topics(kafka, &[topic]).await {
        Ok(_) => tracing::info!(topic, "reply topic deleted"),
        Err(error) => tracing::warn!(topic, %error, "could not delete the reply topic; its retention keeps it small"),
    }
}

/// Starts reading the reply topic from its current end into `pending`, until `shutdown`. The
/// end is fixed before this returns, so no answer to a request published afterwards is missed.
pub async fn start_reader(
    kafka: &KafkaSettings,
    topic: &str,
    catalog: Arc<SchemaCatalog>,
    pending: Arc<PendingAnswers>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let kafka_error = |context: &str| {
        let context = context.to_owned();
        move |source| GatewayError::Kafka { context, source }
    };
    let consumer: StreamConsumer = kafka::base_config(kafka)
        // Required by librdkafka for a consumer, never joined: the reader is assigned, not
        // subscribed, and commits nothing (a restarted gateway has no callers to answer).
        .set("group.id", format!("frontier.gateway.{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Callers wait on this reader: a fetch the broker holds while the topic is idle must
        // not sit on the next answer (librdkafka's default wait is 500 ms).
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(kafka_error("creating the reply reader"))?;
    let patience = Duration::from_secs(30);
    let started = Instant::now();
    let high = loop {
        match consumer.fetch_watermarks(topic, 0, kafka.request_timeout) {
            Ok((_, high)) => break high,
            Err(error) if started.elapsed() < patience => {
                tracing::debug!(topic, %error, "reply topic not readable yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => {
                let reason = error.to_string();
                return Err(GatewayError::ReplyTopic { topic: topic.into(), waited: patience, reason });
            }
        }
    };
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(high))
        .map_err(kafka_error("assigning the reply topic"))?;
    consumer.assign(&assignment).map_err(kafka_error("assigning the reply topic"))?;

    let topic = topic.to_owned();
    tracker.spawn(async move {
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                message = consumer.recv() => message,
            };
            match message {
                Ok(message) => deliver(&catalog, &pending, message.key(), message.payload()),
                Err(error) => {
                    tracing::warn!(topic, %error, "reading the reply topic");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// Hands one reply to the request waiting for it. Replies are keyed by request id (the serving
/// worker) or job id (the inference batcher).
fn deliver(catalog: &SchemaCatalog, pending: &PendingAnswers, key: Option<&[u8]>, payload: Option<&[u8]>) {
    let Some(id) = key.and_then(|key| std::str::from_utf8(key).ok()) else {
        ::metrics::counter!(REPLIES_UNMATCHED).increment(1);
        return;
    };
    if !pending.is_waiting(id) {
        ::metrics::counter!(REPLIES_UNMATCHED).increment(1);
        return;
    }
    match catalog.decode(payload.unwrap_or_default()) {
        Ok(decoded) => {
            pending.fill(id, avro_to_json(&decoded.value));
        }
        Err(error) => {
            ::metrics::counter!(REPLIES_UNDECODABLE).increment(1);
            tracing::warn!(id, %error, "a reply could not be decoded");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn a_filled_slot_is_seen_by_its_waiter() {
        let pending = PendingAnswers::new(10, Duration::from_secs(60));
        let slot = pending.open("r1", "acme", Asked::Analysis, soon()).unwrap();
        let receiver = slot.subscribe();
        assert!(pending.fill("r1", json!({"status": "ok"})));
        assert_eq!(receiver.borrow().as_deref(), Some(&json!({"status": "ok"})));
    }

    #[test]
    fn a_full_table_opens_no_slot() {
        let pending = PendingAnswers::new(1, Duration::from_secs(60));
        assert!(pending.open("r1", "acme", Asked::Analysis, soon()).is_some());
        assert!(pending.open("r2", "acme", Asked::Analysis, soon()).is_none());
    }

    #[test]
    fn a_reply_nobody_waits_for_is_not_kept() {
        let pending = PendingAnswers::new(10, Duration::from_secs(60));
        assert!(!pending.fill("gone", json!({})));
        assert!(pending.is_empty());
    }

    #[test]
    fn slots_are_forgotten_after_their_retention() {
        let pending = PendingAnswers::new(10, Duration::from_secs(60));
        let deadline = Instant::now();
        pending.open("r1", "acme", Asked::Analysis, deadline).unwrap();
        pending.sweep(deadline + Duration::from_secs(59));
        assert_eq!(pending.len(), 1);
        pending.sweep(deadline + Duration::from_secs(61));
        assert!(pending.is_empty());
    }
}
