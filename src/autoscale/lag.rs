//! `LagSampler`: where a consumer group stands on its topics, read from the brokers as an
//! outsider (it never joins the group): committed offsets, log starts and ends, members, and
//! the age of the oldest message each lagging partition has waiting.
//!
//! Blocking (librdkafka's metadata and offset calls): run it on a blocking thread.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::health::OffsetSample;
use crate::bus::{KafkaSettings, groups, kafka};

/// Why a group could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The brokers did not answer, or refused a call.
    #[error("sampling consumer group {group}: {source}")]
    Kafka {
        /// The group.
        group: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A topic of the group does not exist.
    #[error("topic `{0}` does not exist (run `frontier topics apply`)")]
    NoSuchTopic(String),
    /// The thread that samples failed (a bug).
    #[error("the sampling thread failed: {0}")]
    Thread(String),
}

/// One partition of a group's topics at one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSample {
    /// Topic.
    pub topic: String,
    /// Partition id.
    pub partition: i32,
    /// The log start (low watermark): a group that never committed starts here.
    pub start: i64,
    /// Committed offset and log end.
    pub offsets: OffsetSample,
    /// When the oldest waiting message was written (its timestamp), ms since the epoch; `None`
    /// when nothing waits or it could not be read in time.
    pub oldest_waiting_ms: Option<i64>,
}

impl PartitionSample {
    /// Messages waiting.
    pub fn lag(&self) -> i64 {
        self.offsets.lag(self.start)
    }
}

/// A consumer group on its topics at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSample {
    /// The group.
    pub group: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Members of the group now (consumers that joined).
    pub members: usize,
    /// The group's state as the coordinator says it (`Stable`, `Empty`, `Dead`, ...).
    pub state: String,
    /// Every partition of its topics.
    pub partitions: Vec<PartitionSample>,
}

impl GroupSample {
    /// Messages waiting over every partition.
    pub fn backlog(&self) -> u64 {
        self.partitions.iter().map(|p| u64::try_from(p.lag()).unwrap_or_default()).sum()
    }

    /// How long the oldest waiting message has waited, in seconds (lag in time); 0 when
    /// nothing waits, `None` when something waits but no timestamp was read.
    pub fn lag_seconds(&self) -> Option<f64> {
        if self.backlog() == 0 {
            return Some(0.0);
        }
        let oldest = self.partitions.iter().filter_map(|p| p.oldest_waiting_ms).min()?;
        Some(((self.at_ms - oldest) as f64 / 1000.0).max(0.0))
    }

    /// Whether the group exists at all: it has members or has committed somewhere.
    pub fn exists(&self) -> bool {
        self.members > 0 || self.partitions.iter().any(|p| p.offsets.committed.is_some())
    }
}

/// Reads groups' positions without joining them.
pub struct LagSampler {
    kafka: KafkaSettings,
    /// Reads one message at a committed offset, for its timestamp; in no group.
    peeker: BaseConsumer,
    timeout: Duration,
}

impl LagSampler {
    /// A sampler on the brokers of `kafka`, waiting up to `timeout` for each call. It reads
    /// groups on either protocol, classic or KIP-848.
    pub fn new(kafka: &KafkaSettings, timeout: Duration) -> Result<LagSampler, KafkaError> {
        let peeker = kafka::base_config(kafka)
            .set("group.id", format!("frontier.lag-sampler.{}", uuid::Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()?;
        Ok(LagSampler { kafka: kafka.clone(), peeker, timeout })
    }

    /// Where `group` stands on `topics` now.
    pub fn sample(&self, group: &str, topics: &[String]) -> Result<GroupSample, SampleError> {
        let failed = |source| SampleError::Kafka { group: group.to_owned(), source };
        // The group's own id, to fetch its committed offsets; it never subscribes, so it
        // never joins (OffsetFetch needs no membership).
        let reader: BaseConsumer = kafka::base_config(&self.kafka)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(failed)?;
        let mut wanted = TopicPartitionList::new();
        let mut ends = Vec::new();
        for topic in topics {
            let partitions = kafka::partitions_of(&reader, topic, self.timeout).map_err(failed)?;
            if partitions.is_empty() {
                return Err(SampleError::NoSuchTopic(topic.clone()));
            }
            for partition in partitions {
                let (low, high) = reader.fetch_watermarks(topic, partition, self.timeout).map_err(failed)?;
                wanted.add_partition(topic, partition);
                ends.push((topic.clone(), partition, low, high));
            }
        }
        let at_ms = crate::clock::now_millis();
        let committed = reader.committed_offsets(wanted, self.timeout).map_err(failed)?;
        // Not `fetch_group_list`: the classic DescribeGroups reads a KIP-848 group as dead.
        let described = groups::describe_group(self.peeker.client(), group, self.timeout).map_err(failed)?;
        let (members, state) = (described.members, described.state);
        let mut partitions: Vec<PartitionSample> = ends
            .into_iter()
            .map(|(topic, partition, start, end)| {
                let committed =
                    committed.find_partition(&topic, partition).and_then(|element| match element.offset() {
                        Offset::Offset(offset) => Some(offset),
                        _ => None,
                    });
                PartitionSample {
                    topic,
                    partition,
                    start,
                    offsets: OffsetSample { at_ms, committed, end },
                    oldest_waiting_ms: None,
                }
            })
            .collect();
        self.read_oldest_waiting(&mut partitions);
        Ok(GroupSample { group: group.to_owned(), at_ms, members, state, partitions })
    }

    /// Fills in the timestamp of the next message each lagging partition will read, reading
    /// them all at once for at most the sampler's timeout.
    fn read_oldest_waiting(&self, partitions: &mut [PartitionSample]) {
        let mut assignment = TopicPartitionList::new();
        for p in partitions.iter().filter(|p| p.lag() > 0) {
            let next = p.offsets.committed.unwrap_or(p.start).max(p.start);
            if assignment.add_partition_offset(&p.topic, p.partition, Offset::Offset(next)).is_err() {
                return;
            }
        }
        let waiting = assignment.count();
        if waiting == 0 || self.peeker.assign(&assignment).is_err() {
            return;
        }
        let deadline = std::time::Instant::now() + self.timeout;
        let mut found = 0;
        while found < waiting && std::time::Instant::now() < deadline {
            let Some(Ok(message)) = self.peeker.poll(Duration::from_millis(100)) else { continue };
            let Some(timestamp) = message.timestamp().to_millis() else { continue };
            if let Some(p) = partitions.iter_mut().find(|p| {
                p.topic == message.topic() && p.partition == message.partition() && p.oldest_waiting_ms.is_none()
            }) {
                p.oldest_waiting_ms = Some(timestamp);
                found += 1;
            }
        }
        // Nothing is left assigned between samples.
        let _ = self.peeker.unassign();
    }
}
