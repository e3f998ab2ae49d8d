//! Following a compacted topic as a map of key to newest value: how settings that live in Kafka
//! (the batching overrides) reach every instance that needs them, at start and while running.
//!
//! [`follow`] reads the topic from its beginning, returns once it has caught up with where the
//! topic ended when it started, and keeps reading in the background: each record replaces its
//! key's value, a tombstone (no value) removes the key, and every change after the catch-up is
//! published as a new [`Snapshot`] on a `watch` channel. A topic that does not exist yet reads
//! as empty, with a warning, and is looked for again every [`RETRY`]: a missing control topic
//! must not stop a worker whose configured settings are enough to run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::kafka;
use super::settings::KafkaSettings;

/// Every key of the topic with its newest value.
pub type Snapshot = Arc<BTreeMap<String, Vec<u8>>>;

/// How often a missing topic is looked for, and how long a quiet reader waits before it checks
/// whether it has caught up.
const RETRY: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_millis(500);

/// Why a topic could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The client could not be created or assigned.
    #[error("following {topic}: {source}")]
    Kafka {
        /// The topic.
        topic: String,
        /// The client's error.
        source: KafkaError,
    },
    /// The topic's history did not arrive in time.
    #[error("reading {topic} to its end took longer than {patience:?} (is Kafka up? `ops/stack up`)")]
    TooSlow {
        /// The topic.
        topic: String,
        /// How long was waited.
        patience: Duration,
    },
}

/// Reads `topic` to its end (waiting at most `patience`) and follows it until `shutdown`; the
/// receiver holds the newest snapshot.
pub async fn follow(
    kafka_settings: &KafkaSettings,
    topic: &str,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    patience: Duration,
) -> Result<watch::Receiver<Snapshot>, FollowError> {
    let failed = |source| FollowError::Kafka { topic: topic.to_owned(), source };
    let consumer: StreamConsumer = kafka::base_config(kafka_settings)
        // Required by librdkafka; never joined: the reader is assigned every partition and
        // commits nothing, since it reads from the beginning each time.
        .set("group.id", format!("frontier.follow.{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(failed)?;
    let (snapshots, receiver) = watch::channel(Snapshot::default());
    let (ready, caught_up) = oneshot::channel();
    let follower = Follower {
        consumer: Arc::new(consumer),
        topic: topic.to_owned(),
        timeout: kafka_settings.request_timeout,
        values: BTreeMap::new(),
        snapshots,
    };
    tracker.spawn(follower.run(ready, shutdown));
    match tokio::time::timeout(patience, caught_up).await {
        Ok(Ok(())) => Ok(receiver),
        // The follower ended before catching up: only a shutdown does that.
        Ok(Err(_)) => Ok(receiver),
        Err(_) => Err(FollowError::TooSlow { topic: topic.to_owned(), patience }),
    }
}

/// The background reader of one topic.
struct Follower {
    consumer: Arc<StreamConsumer>,
    topic: String,
    timeout: Duration,
    values: BTreeMap<String, Vec<u8>>,
    snapshots: watch::Sender<Snapshot>,
}

impl Follower {
    async fn run(mut self, ready: oneshot::Sender<()>, shutdown: CancellationToken) {
        let mut ready = Some(ready);
        // Where each partition ended when it was assigned: reached, the reader has caught up.
        let mut ends = loop {
            match self.assign().await {
                Ok(Some(ends)) => break ends,
                Ok(None) => {
                    tracing::warn!(
                        topic = self.topic,
                        "the topic does not exist: read as empty (`frontier topics apply` creates it)"
                    );
                }
                Err(error) => tracing::warn!(topic = self.topic, %error, "could not assign the topic; trying again"),
            }
            // Nothing to wait for: the caller goes on with what it has (nothing).
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        };
        loop {
            if ready.is_some() {
                ends.retain(|partition, end| self.position(*partition) < *end);
                if ends.is_empty() {
                    self.publish();
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
            }
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = tokio::time::timeout(IDLE, self.consumer.recv()) => received,
            };
            match received {
                Ok(Ok(message)) => {
                    let key = message.key().map(|key| String::from_utf8_lossy(key).into_owned()).unwrap_or_default();
                    match message.payload() {
                        Some(value) => self.values.insert(key, value.to_vec()),
                        None => self.values.remove(&key),
                    };
                    if ready.is_none() {
                        self.publish();
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(topic = self.topic, %error, "reading the topic");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // Quiet for a while: the top of the loop checks whether the reader caught up.
                Err(_) => {}
            }
        }
    }

    /// Assigns every partition from its beginning; their end offsets, or `None` without a topic.
    async fn assign(&self) -> Result<Option<HashMap<i32, i64>>, KafkaError> {
        // librdkafka's metadata calls block (up to the request timeout): on a blocking thread.
        let (consumer, topic, timeout) = (Arc::clone(&self.consumer), self.topic.clone(), self.timeout);
        let assigned = tokio::task::spawn_blocking(move || {
            let partitions = kafka::partitions_of(&*consumer, &topic, timeout)?;
            if partitions.is_empty() {
                return Ok(None);
            }
            let mut ends = HashMap::new();
            let mut assignment = TopicPartitionList::new();
            for partition in partitions {
                let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
                if high > low {
                    ends.insert(partition, high);
                }
                assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
            }
            consumer.assign(&assignment)?;
            Ok(Some(ends))
        })
        .await;
        assigned.unwrap_or_else(|error| Err(KafkaError::Subscription(format!("the assigning thread failed: {error}"))))
    }

    /// The next offset the reader will read of `partition`; 0 while unknown.
    fn position(&self, partition: i32) -> i64 {
        let position = self.consumer.position().ok().and_then(|list| {
            list.find_partition(&self.topic, partition).and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            })
        });
        position.unwrap_or(0)
    }

    fn publish(&self) {
        self.snapshots.send_replace(Arc::new(self.values.clone()));
    }
}
