//! The consumer's librdkafka callbacks: rebalances, commits, statistics and client errors.

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use tracing::{debug, info, warn};

use super::metrics;

/// Callbacks of one worker's consumer.
pub struct LoopContext {
    pub group_id: String,
    /// This instance's total lag, for its status reports.
    pub lag: super::status::LagReading,
    /// Counts partition assignments and revocations: what the loop knew of a partition before
    /// a change (a rewind's offset) may no longer hold after it.
    pub assignment_changes: std::sync::atomic::AtomicU64,
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: Statistics) {
        let mut total = 0;
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // -1 is librdkafka's internal UA partition and partitions not assigned to us.
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                ::metrics::gauge!(metrics::CONSUMER_LAG,
                    "group" => self.group_id.clone(), "topic" => topic.clone(), "partition" => partition.to_string())
                .set(p.consumer_lag as f64);
                total += p.consumer_lag;
            }
        }
        self.lag.set(total);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        ::metrics::counter!(metrics::CLIENT_ERRORS, "client" => "consumer").increment(1);
        warn!(group = %self.group_id, %error, reason, "kafka consumer error");
    }
}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Revoke(_) | Rebalance::Assign(_)) {
            self.assignment_changes.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        match rebalance {
            Rebalance::Revoke(partitions) => {
                ::metrics::counter!(metrics::REBALANCES, "group" => self.group_id.clone(), "kind" => "revoke")
                    .increment(1);
                info!(group = %self.group_id, partitions = %describe(partitions), "partitions revoked");
                // Commit what is done before another member takes over, so it does not redo
                // it. Stored offsets are only ever those whose outputs are durable. Async:
                // this callback runs inside the stream's poll, on an async thread, and a sync
                // commit held that thread for a round trip to the group coordinator. Ordering
                // still holds: librdkafka sends this commit before it gives the partitions up,
                // and itself commits the revoked partitions' stored offsets and waits for that
                // answer before it rejoins (rdkafka_assignment.c, "unassigned partitions").
                // Committing the whole state, not only the revoked partitions, also saves the
                // partitions kept from being redone should this member crash next.
                if let Err(error) = consumer.commit_consumer_state(CommitMode::Async) {
                    // NoOffset just means nothing new was stored since the last commit.
                    if !matches!(error, KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) {
                        warn!(group = %self.group_id, %error, "commit before revoke failed");
                    }
                }
            }
            Rebalance::Assign(partitions) => {
                ::metrics::counter!(metrics::REBALANCES, "group" => self.group_id.clone(), "kind" => "assign")
                    .increment(1);
                info!(group = %self.group_id, partitions = %describe(partitions), "partitions assigned");
            }
            Rebalance::Error(error) => {
                ::metrics::counter!(metrics::REBALANCES, "group" => self.group_id.clone(), "kind" => "error")
                    .increment(1);
                warn!(group = %self.group_id, %error, "rebalance error");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                ::metrics::counter!(metrics::COMMITS, "group" => self.group_id.clone(), "result" => "ok").increment(1);
                debug!(group = %self.group_id, offsets = %describe(offsets), "offsets committed");
            }
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                ::metrics::counter!(metrics::COMMITS, "group" => self.group_id.clone(), "result" => "error")
                    .increment(1);
                warn!(group = %self.group_id, %error, "offset commit failed");
            }
        }
    }
}

/// `topic[partition]@offset, ...` for logs.
fn describe(list: &TopicPartitionList) -> String {
    list.elements()
        .iter()
        .map(|e| match e.offset().to_raw() {
            Some(offset) if offset >= 0 => format!("{}[{}]@{offset}", e.topic(), e.partition()),
            _ => format!("{}[{}]", e.topic(), e.partition()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
