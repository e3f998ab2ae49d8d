//! The signal inputs, field for field their schemas.

use serde::{Deserialize, Serialize};

/// One worker's self-report (`frontier.sla.WorkerStatus`, `schemas/worker_status.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Worker name, e.g. `serve`.
    pub service: String,
    /// Host and process id.
    pub instance: String,
    /// Consumer group it consumes in.
    pub consumer_group: Option<String>,
    /// Messages behind on the partitions it owns.
    pub consumer_lag: Option<i64>,
    /// Resident memory, bytes.
    pub rss_bytes: Option<i64>,
    /// Memory it may use, bytes.
    pub memory_limit_bytes: Option<i64>,
    /// CPU used since the previous status, fraction of the available cores.
    pub cpu_utilization: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<i64>,
    /// Soft limit on file descriptors.
    pub max_fds: Option<i64>,
    /// When it was sampled, ms since the epoch.
    pub occurred_at: i64,
}

impl WorkerStatus {
    /// Whether every reported number is one a process can have: counts not negative, limits
    /// above zero, CPU a finite non-negative fraction.
    pub fn is_plausible(&self) -> bool {
        let counts = [self.consumer_lag, self.rss_bytes, self.open_fds];
        let limits = [self.memory_limit_bytes, self.max_fds];
        counts.iter().flatten().all(|count| *count >= 0)
            && limits.iter().flatten().all(|limit| *limit > 0)
            && self.cpu_utilization.is_none_or(|cpu| cpu.is_finite() && cpu >= 0.0)
    }

    /// Resident memory over the limit.
    pub fn memory_utilization(&self) -> Option<f64> {
        ratio(self.rss_bytes?, self.memory_limit_bytes?)
    }

    /// Open descriptors over the limit.
    pub fn fd_utilization(&self) -> Option<f64> {
        ratio(self.open_fds?, self.max_fds?)
    }
}

fn ratio(used: i64, limit: i64) -> Option<f64> {
    (limit > 0).then(|| used as f64 / limit as f64)
}

/// What the autoscaler decided for a group (`frontier.autoscale.ScaleDecision`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoscaleDecision {
    /// Decision id.
    pub id: String,
    /// The group scaled.
    pub consumer_group: String,
    /// The topic whose lag drove it.
    pub topic: String,
    /// Messages behind, over the topic.
    pub total_lag: i64,
    /// How fast the lag grows (positive) or shrinks, messages per second.
    pub lag_rate_per_s: f64,
    /// Instances when decided.
    pub current_instances: i32,
    /// Instances wanted, within the bounds.
    pub desired_instances: i32,
    /// Lower bound.
    pub min_instances: i32,
    /// Upper bound.
    pub max_instances: i32,
    /// Up, down or hold.
    pub action: ScaleAction,
    /// Why, in words.
    pub reason: String,
    /// When, ms since the epoch.
    pub decided_at: i64,
}

impl AutoscaleDecision {
    /// The group cannot scale further and still falls behind: more instances would help, the
    /// bound forbids them.
    pub fn is_saturated(&self) -> bool {
        self.current_instances >= self.max_instances && self.desired_instances >= self.max_instances
            && self.lag_rate_per_s > 0.0
    }
}

/// What the autoscaler does with a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleAction {
    /// Add instances.
    ScaleUp,
    /// Remove instances.
    ScaleDown,
    /// Keep the count.
    Hold,
}
