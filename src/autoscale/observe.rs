//! From a group's recent samples to what the policy reads: rates over the window, backlog,
//! and the worst partition health.

use super::health::{OffsetSample, PartitionHealth, partition_health};
use super::lag::GroupSample;
use super::policy::Observation;

/// Per-instance figures from the workers' status reports, when they sent any.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InstanceUse {
    /// Mean share of their time the instances spent handling messages.
    pub busy_share: Option<f64>,
    /// Highest CPU use of an instance, as a share of its cores.
    pub cpu: Option<f64>,
    /// Highest memory use of an instance, as a share of its limit.
    pub memory: Option<f64>,
}

/// Samples the rates are measured over (the newest ones): at the controller's 5 s, 15 s, so
/// a ramp shows within one decision or two, while health looks at the whole window.
pub const RATE_SAMPLES: usize = 4;

/// The observation of a group from its samples `window` (oldest first, at least one) with
/// `instances` running.
pub fn observe(window: &[GroupSample], instances: u32, usage: InstanceUse) -> Option<Observation> {
    let last = window.last()?;
    let first = &window[window.len().saturating_sub(RATE_SAMPLES)];
    let seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
    let rate =
        |of: &dyn Fn(&GroupSample) -> i64| (seconds > 0.0).then(|| (of(last) - of(first)).max(0) as f64 / seconds);
    let ends = |sample: &GroupSample| sample.partitions.iter().map(|p| p.offsets.end).sum::<i64>();
    let positions =
        |sample: &GroupSample| sample.partitions.iter().map(|p| p.offsets.committed.unwrap_or(p.start)).sum::<i64>();
    // A partition whose offset stood still while the group moved elsewhere is waiting its
    // turn (one instance works through its partitions one batch at a time), not stuck: more
    // instances would take it. Only a group that moved nowhere is STALL.
    let group_moved = window.first().is_some_and(|oldest| positions(last) > positions(oldest));
    let health = last
        .partitions
        .iter()
        .map(|partition| {
            let history: Vec<OffsetSample> = window
                .iter()
                .filter_map(|sample| {
                    sample
                        .partitions
                        .iter()
                        .find(|p| p.topic == partition.topic && p.partition == partition.partition)
                        .map(|p| p.offsets)
                })
                .collect();
            match partition_health(&history, partition.start, last.members) {
                PartitionHealth::Stall if group_moved => PartitionHealth::Warn,
                health => health,
            }
        })
        .max()
        .unwrap_or(PartitionHealth::Ok);
    Some(Observation {
        at_ms: last.at_ms,
        instances,
        partitions: u32::try_from(last.partitions.len()).unwrap_or(u32::MAX),
        backlog: last.backlog(),
        arrival_rate: rate(&ends),
        commit_rate: rate(&positions),
        busy_share: usage.busy_share,
        cpu: usage.cpu,
        memory: usage.memory,
        health,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::lag::PartitionSample;

    fn sample(at_s: i64, members: usize, partitions: &[(Option<i64>, i64)]) -> GroupSample {
        GroupSample {
            group: "g".into(),
            at_ms: at_s * 1000,
            members,
            state: "Stable".into(),
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, &(committed, end))| PartitionSample {
                    topic: "t".into(),
                    partition: i as i32,
                    start: 0,
                    offsets: OffsetSample { at_ms: at_s * 1000, committed, end },
                    oldest_waiting_ms: None,
                })
                .collect(),
        }
    }

    #[test]
    fn rates_are_the_log_ends_and_positions_moved_over_the_window() {
        let window = [sample(0, 2, &[(Some(0), 100), (None, 50)]), sample(10, 2, &[(Some(80), 400), (Some(40), 150)])];
        let seen = observe(&window, 2, InstanceUse::default()).unwrap();
        // Ends moved 300 + 100 in 10 s; positions 80 + 40 (a partition never committed counts
        // from its start).
        assert_eq!((seen.arrival_rate, seen.commit_rate), (Some(40.0), Some(12.0)));
        assert_eq!((seen.backlog, seen.partitions, seen.health), (430, 2, PartitionHealth::Ok));
    }

    #[test]
    fn rates_come_from_the_newest_samples_only() {
        let mut window = vec![sample(0, 1, &[(Some(0), 0)])];
        window.extend((1..=RATE_SAMPLES as i64).map(|i| sample(100 + i, 1, &[(Some(1000 + i), 1000 + 2 * i)])));
        let seen = observe(&window, 1, InstanceUse::default()).unwrap();
        // The first sample, 100 s before the others, would halve both rates.
        assert_eq!((seen.arrival_rate, seen.commit_rate), (Some(2.0), Some(1.0)));
    }

    #[test]
    fn one_sample_has_no_rates_yet() {
        let seen = observe(&[sample(0, 1, &[(Some(0), 10)])], 1, InstanceUse::default()).unwrap();
        assert_eq!((seen.arrival_rate, seen.commit_rate), (None, None));
    }

    #[test]
    fn a_group_that_moved_nowhere_is_stall() {
        let window: Vec<GroupSample> = (0..7).map(|i| sample(i * 5, 1, &[(Some(5), 10), (Some(7), 20)])).collect();
        let seen = observe(&window, 1, InstanceUse::default()).unwrap();
        assert_eq!(seen.health, PartitionHealth::Stall);
    }

    #[test]
    fn a_partition_waiting_its_turn_while_the_group_moves_is_behind_not_stalled() {
        // One instance works through the first partition; the second waits.
        let window: Vec<GroupSample> =
            (0..7).map(|i| sample(i * 5, 1, &[(Some(10 * i), 100), (Some(7), 20)])).collect();
        let seen = observe(&window, 1, InstanceUse::default()).unwrap();
        assert_eq!(seen.health, PartitionHealth::Warn);
    }
}
