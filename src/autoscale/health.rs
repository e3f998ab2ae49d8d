//! Burrow's partition statuses, from the lag sampler's recent samples: whether a group is
//! keeping up, falling behind, or stuck. A stuck group is a fault to alert on; more instances
//! would not move it, so the policy holds it (see `policy.rs`).

/// One look at a partition: where the group has committed and where the log ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetSample {
    /// When it was taken, ms since the epoch.
    pub at_ms: i64,
    /// The group's committed offset (the next message it will read); `None` before its first
    /// commit on the partition.
    pub committed: Option<i64>,
    /// The log end (high watermark).
    pub end: i64,
}

impl OffsetSample {
    /// Messages not yet consumed: from the committed offset (or, before any commit, the log
    /// start `start`) to the log end.
    pub fn lag(&self, start: i64) -> i64 {
        (self.end - self.committed.unwrap_or(start)).max(0)
    }
}

pub use crate::records::PartitionHealth;

/// Samples a window needs before a partition can be judged anything but OK or STOP (Burrow
/// judges over its last 10 commits; at the sampler's 5 s, that is 50 s).
pub const MIN_SAMPLES: usize = 3;

/// The shortest window that can call a partition STALL: a consumer that just joined, or one
/// working through a large batch, may commit nothing for some seconds without being stuck.
pub const STALL_AFTER_MS: i64 = 30_000;

/// The status of a partition over `window` (oldest first) whose log starts at `start`, for a
/// group that has `members` consumers now.
pub fn partition_health(window: &[OffsetSample], start: i64, members: usize) -> PartitionHealth {
    let Some(last) = window.last() else { return PartitionHealth::Ok };
    let waiting = last.lag(start) > 0;
    if waiting && members == 0 {
        return PartitionHealth::Stop;
    }
    let rewound = window.windows(2).any(|pair| match (pair[0].committed, pair[1].committed) {
        (Some(before), Some(after)) => after < before,
        _ => false,
    });
    if rewound {
        return PartitionHealth::Rewind;
    }
    if window.len() < MIN_SAMPLES {
        return PartitionHealth::Ok;
    }
    let unmoved = window.iter().all(|sample| sample.committed == window[0].committed);
    let always_waiting = window.iter().all(|sample| sample.lag(start) > 0);
    let long_enough = last.at_ms - window[0].at_ms >= STALL_AFTER_MS;
    if unmoved && always_waiting && long_enough {
        return PartitionHealth::Stall;
    }
    let growing = window.windows(2).all(|pair| pair[1].lag(start) > pair[0].lag(start));
    if growing && waiting { PartitionHealth::Warn } else { PartitionHealth::Ok }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[(Option<i64>, i64)]) -> Vec<OffsetSample> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(committed, end))| OffsetSample { at_ms: i as i64 * 5_000, committed, end })
            .collect()
    }

    #[test]
    fn a_group_keeping_up_is_ok() {
        let window = samples(&[(Some(10), 12), (Some(20), 21), (Some(30), 30)]);
        assert_eq!(partition_health(&window, 0, 2), PartitionHealth::Ok);
    }

    #[test]
    fn a_lag_that_grows_at_every_sample_is_warn() {
        let window = samples(&[(Some(10), 20), (Some(15), 30), (Some(20), 45)]);
        assert_eq!(partition_health(&window, 0, 2), PartitionHealth::Warn);
    }

    #[test]
    fn an_offset_that_does_not_move_for_30_s_while_messages_wait_is_stall() {
        let window = samples(&[(Some(10), 20); 7]);
        assert_eq!(partition_health(&window, 0, 2), PartitionHealth::Stall);
    }

    #[test]
    fn an_offset_unmoved_for_less_than_30_s_is_not_yet_stall() {
        // A consumer that just joined may take a few seconds to commit its first batch.
        let window = samples(&[(Some(10), 20); 6]);
        assert_eq!(partition_health(&window, 0, 2), PartitionHealth::Ok);
    }

    #[test]
    fn an_idle_partition_with_nothing_waiting_is_ok_not_stall() {
        let window = samples(&[(Some(10), 10), (Some(10), 10), (Some(10), 10)]);
        assert_eq!(partition_health(&window, 0, 2), PartitionHealth::Ok);
    }

    #[test]
    fn waiting_messages_and_no_member_is_stop() {
        let window = samples(&[(Some(10), 20)]);
        assert_eq!(partition_health(&window, 0, 0), PartitionHealth::Stop);
    }

    #[test]
    fn an_offset_going_backwards_is_rewind() {
        let window = samples(&[(Some(30), 40), (Some(5), 40), (Some(10), 40)]);
        assert_eq!(partition_health(&window, 0, 1), PartitionHealth::Rewind);
    }

    #[test]
    fn before_its_first_commit_a_group_lags_from_the_log_start() {
        let window = samples(&[(None, 120)]);
        assert_eq!(window[0].lag(100), 20);
        assert_eq!(partition_health(&window, 100, 0), PartitionHealth::Stop);
    }

    #[test]
    fn too_few_samples_judge_nothing_but_stop_and_rewind() {
        let window = samples(&[(Some(10), 20), (Some(10), 30)]);
        assert_eq!(partition_health(&window, 0, 1), PartitionHealth::Ok);
    }
}
