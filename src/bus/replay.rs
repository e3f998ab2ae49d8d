//! Reading a topic's retained history once, up to where it ends at the start of the read: how a
//! worker rebuilds state that lives in a topic (the SLA monitor's alert book).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::kafka;
use super::settings::KafkaSettings;

/// Why a topic could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic `{0}` does not exist (run `frontier topics apply`)")]
    NoSuchTopic(String),
    #[error("replaying {topic} took longer than {patience:?} ({read} of {expected} messages read)")]
    TooSlow { topic: String, patience: Duration, read: u64, expected: u64 },
}

/// Every retained value of `topic` up to its end as of now, in offset order per partition
/// (partitions one after another). Blocking: call it before the worker starts, or on a blocking
/// thread.
pub fn read_to_end(
    kafka_settings: &KafkaSettings,
    topic: &str,
    patience: Duration,
) -> Result<Vec<Vec<u8>>, ReplayError> {
    read(kafka_settings, topic, None, patience)
}

/// [`read_to_end`] from the first value written at or after `since_ms` (ms since the epoch)
/// in each partition: the recent part of a topic (the workers' newest status reports).
pub fn read_since(
    kafka_settings: &KafkaSettings,
    topic: &str,
    since_ms: i64,
    patience: Duration,
) -> Result<Vec<Vec<u8>>, ReplayError> {
    read(kafka_settings, topic, Some(since_ms), patience)
}

fn read(
    kafka_settings: &KafkaSettings,
    topic: &str,
    since_ms: Option<i64>,
    patience: Duration,
) -> Result<Vec<Vec<u8>>, ReplayError> {
    let consumer: BaseConsumer = kafka::base_config(kafka_settings)
        .set("group.id", format!("frontier.replay.{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()?;
    let partitions = kafka::partitions_of(&consumer, topic, kafka_settings.request_timeout)?;
    if partitions.is_empty() {
        return Err(ReplayError::NoSuchTopic(topic.to_string()));
    }
    let mut values = Vec::new();
    let deadline = Instant::now() + patience;
    let (mut read, mut expected) = (0u64, 0u64);
    for partition in partitions {
        let (mut low, high) =
            while_leaderless(deadline, || consumer.fetch_watermarks(topic, partition, kafka_settings.request_timeout))?;
        if let Some(since_ms) = since_ms {
            let mut times = TopicPartitionList::new();
            times.add_partition_offset(topic, partition, Offset::Offset(since_ms))?;
            let found = while_leaderless(deadline, || {
                consumer.offsets_for_times(times.clone(), kafka_settings.request_timeout)
            })?;
            // `End` (or nothing): no value written since then.
            low = match found.find_partition(topic, partition).map(|element| element.offset()) {
                Some(Offset::Offset(offset)) => offset.max(low),
                _ => high,
            };
        }
        if high <= low {
            continue;
        }
        expected += (high - low) as u64;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        consumer.assign(&assignment)?;
        let mut next = low;
        while next < high {
            if Instant::now() > deadline {
                return Err(ReplayError::TooSlow { topic: topic.to_string(), patience, read, expected });
            }
            let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
            let message = message?;
            next = message.offset() + 1;
            read += 1;
            values.push(message.payload().unwrap_or_default().to_vec());
        }
    }
    Ok(values)
}

/// Asks again while the partition has no leader, until `deadline`. A topic created a moment
/// ago has none until its first election, and a broker's failover leaves its partitions without
/// one for a few seconds: a worker starting then must wait, not fail its start (the SLA
/// monitor's restore did, right after its alerts topic was created).
fn while_leaderless<T>(deadline: Instant, mut ask: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    loop {
        match ask() {
            Err(error) if is_leaderless(&error) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            answer => return answer,
        }
    }
}

/// Whether `error` says the partition is between leaders, which asking again shortly cures.
fn is_leaderless(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::NotLeaderForPartition | RDKafkaErrorCode::LeaderNotAvailable)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_leader() -> KafkaError {
        KafkaError::MetadataFetch(RDKafkaErrorCode::NotLeaderForPartition)
    }

    #[test]
    fn a_partition_between_leaders_is_asked_again_until_it_answers() {
        let mut asked = 0;
        let answer = while_leaderless(Instant::now() + Duration::from_secs(10), || {
            asked += 1;
            if asked < 3 { Err(not_leader()) } else { Ok((0_i64, 5_i64)) }
        });
        assert_eq!(answer.unwrap(), (0, 5));
        assert_eq!(asked, 3);
    }

    #[test]
    fn a_partition_still_leaderless_at_the_deadline_fails_with_the_error() {
        let answer: Result<(), KafkaError> = while_leaderless(Instant::now(), || Err(not_leader()));
        assert!(is_leaderless(&answer.unwrap_err()));
    }

    #[test]
    fn other_errors_are_not_asked_again() {
        let mut asked = 0;
        let answer: Result<(), KafkaError> = while_leaderless(Instant::now() + Duration::from_secs(10), || {
            asked += 1;
            Err(KafkaError::MetadataFetch(RDKafkaErrorCode::TopicAuthorizationFailed))
        });
        assert!(answer.is_err());
        assert_eq!(asked, 1);
    }
}
