//! `worker_status.avsc`: a worker's self-report, on `frontier.workers.status`.

use serde::{Deserialize, Serialize};

/// One worker's self-report (`frontier.sla.WorkerStatus`): its consumer group's lag on the
/// partitions it owns, its memory, CPU and file-descriptor use, and its dead letters.
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
    /// Share of the time since the previous status spent handling messages (0..1).
    #[serde(default)]
    pub busy_share: Option<f64>,
    /// Messages dead-lettered since the previous status.
    #[serde(default)]
    pub dead_lettered: Option<i64>,
}

impl WorkerStatus {
    /// Whether every reported number is one a process can have: counts not negative, limits
    /// above zero, CPU a finite non-negative fraction.
    pub fn is_plausible(&self) -> bool {
        let counts = [self.consumer_lag, self.rss_bytes, self.open_fds, self.dead_lettered];
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
