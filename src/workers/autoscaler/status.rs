//! `frontier autoscale status`: per listed group, the instances the controller runs, where the
//! group stands now, and the controller's latest decision with its reason. Read-only: the
//! instance records are read, not adopted, and the decisions topic is read from its tail.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::local::{InstanceRecord, recorded_instances};
use super::settings::AutoscalerSettings;
use crate::autoscale::{GroupSample, LagSampler, SampleError};
use crate::bus::{KafkaSettings, SchemaCatalog, kafka};
use crate::records::AutoscaleDecision;
use crate::workers::WorkerGroup;

/// Decisions read back per partition of the decisions topic: at one per group every 5 s,
/// the last minutes of every group.
const TAIL: i64 = 500;

/// One group's status.
#[derive(Debug)]
pub struct GroupStatus {
    /// The group.
    pub group: WorkerGroup,
    /// The instances recorded in the controller's state folder that still run.
    pub instances: Vec<InstanceRecord>,
    /// Where it stands now, or why it could not be sampled.
    pub sample: Result<GroupSample, SampleError>,
    /// The controller's latest decision about it, if one is on the topic.
    pub last_decision: Option<AutoscaleDecision>,
}

/// The status of every group listed in `settings`. Blocking.
pub fn status(
    kafka_settings: &KafkaSettings,
    settings: &AutoscalerSettings,
    groups: &[WorkerGroup],
    catalog: &SchemaCatalog,
) -> Result<Vec<GroupStatus>, KafkaError> {
    let sampler = LagSampler::new(kafka_settings, settings.sample_timeout)?;
    let mut latest = latest_decisions(kafka_settings, &settings.decisions_topic, catalog, settings.sample_timeout)?;
    let instances = recorded_instances(&settings.local.state_dir);
    Ok(groups
        .iter()
        .filter(|group| settings.groups.contains_key(group.worker))
        .map(|group| GroupStatus {
            group: group.clone(),
            instances: instances.iter().filter(|i| i.worker == group.worker).cloned().collect(),
            sample: sampler.sample(&group.group_id, &group.topics),
            last_decision: latest.remove(&group.group_id),
        })
        .collect())
}

/// The newest decision per consumer group among the last [`TAIL`] of each partition.
fn latest_decisions(
    kafka_settings: &KafkaSettings,
    topic: &str,
    catalog: &SchemaCatalog,
    timeout: Duration,
) -> Result<HashMap<String, AutoscaleDecision>, KafkaError> {
    let consumer: BaseConsumer = kafka::base_config(kafka_settings)
        .set("group.id", format!("frontier.autoscale-status.{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for partition in kafka::partitions_of(&consumer, topic, timeout)? {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        if high > low {
            let from = (high - TAIL).max(low);
            assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
            remaining += high - from;
        }
    }
    let mut latest: HashMap<String, AutoscaleDecision> = HashMap::new();
    if remaining == 0 {
        return Ok(latest);
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    while remaining > 0 && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message?;
        remaining -= 1;
        let Some(payload) = message.payload() else { continue };
        // Anything that is not a decision (or not ours to read) is skipped: this is a view.
        let decision = catalog
            .identify(payload)
            .ok()
            .and_then(|identified| identified.deserialize::<AutoscaleDecision>(payload).ok());
        let Some(decision) = decision else { continue };
        let newer = latest.get(&decision.consumer_group).is_none_or(|known| known.decided_at <= decision.decided_at);
        if newer {
            latest.insert(decision.consumer_group.clone(), decision);
        }
    }
    Ok(latest)
}
