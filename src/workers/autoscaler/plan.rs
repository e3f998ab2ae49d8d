//! `frontier autoscale plan`: what the policy would do for every sized group now, changing
//! nothing. Two samples `interval` apart give the rates; the instances are the members the
//! group has now.

use std::time::Duration;

use rdkafka::error::KafkaError;

use super::settings::AutoscalerSettings;
use crate::autoscale::{
    GroupSample, InstanceUse, LagSampler, Observation, PolicyMemory, SampleError, Verdict, decide, observe,
};
use crate::bus::KafkaSettings;
use crate::workers::WorkerGroup;

/// What the policy would do for one group.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The group.
    pub group: WorkerGroup,
    /// The newer of its two samples.
    pub sample: GroupSample,
    /// What the policy read.
    pub observation: Observation,
    /// What it decided.
    pub verdict: Verdict,
}

/// One group's plan, or why it could not be sampled.
pub type GroupPlan = (WorkerGroup, Result<Planned, SampleError>);

/// Samples every group of `groups` sized in `settings` twice, `interval` apart, and decides
/// each. Blocking. A group that cannot be sampled (a missing topic) is its own error; the
/// others are still planned.
pub fn plan(
    kafka: &KafkaSettings,
    settings: &AutoscalerSettings,
    groups: &[WorkerGroup],
    interval: Duration,
) -> Result<Vec<GroupPlan>, KafkaError> {
    let sampler = LagSampler::new(kafka, settings.sample_timeout)?;
    let sized: Vec<&WorkerGroup> = groups.iter().filter(|group| settings.groups.contains_key(group.worker)).collect();
    let first: Vec<Result<GroupSample, SampleError>> =
        sized.iter().map(|group| sampler.sample(&group.group_id, &group.topics)).collect();
    std::thread::sleep(interval);
    Ok(sized
        .into_iter()
        .zip(first)
        .map(|(group, first)| {
            let planned = first.and_then(|first| {
                let second = sampler.sample(&group.group_id, &group.topics)?;
                let instances = u32::try_from(second.members).unwrap_or(u32::MAX);
                let window = [first, second];
                // Two samples always make an observation.
                let observation = observe(&window, instances, InstanceUse::default())
                    .ok_or_else(|| SampleError::NoSuchTopic(group.topics.join(",")))?;
                let [_, sample] = window;
                // `sized` holds only the groups with a policy, so the index cannot miss.
                let policy = &settings.groups[group.worker];
                let verdict = decide(policy, &observation, &mut PolicyMemory::default());
                Ok(Planned { group: group.clone(), sample, observation, verdict })
            });
            (group.clone(), planned)
        })
        .collect())
}
