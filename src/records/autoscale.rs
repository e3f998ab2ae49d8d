//! `autoscale_decision.avsc`: what the autoscaler decided, on `frontier.autoscale.decisions`.

use serde::{Deserialize, Serialize};

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
    /// The group's worst partition status when decided (OK in decisions written before the
    /// field existed).
    #[serde(default)]
    pub health: PartitionHealth,
}

impl AutoscaleDecision {
    /// The group cannot scale further and still falls behind: more instances would help, the
    /// bound forbids them.
    pub fn is_saturated(&self) -> bool {
        self.current_instances >= self.max_instances
            && self.desired_instances >= self.max_instances
            && self.lag_rate_per_s > 0.0
    }

    /// The group is stuck (STALL or STOP): an operator must look; more instances would not help.
    pub fn is_stuck(&self) -> bool {
        self.health.is_stuck()
    }
}

/// A partition's (or, at its worst partition, a group's) status in Burrow's terms, from least to
/// most severe (`frontier.autoscale.GroupHealth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PartitionHealth {
    /// Caught up, or catching up.
    #[default]
    Ok,
    /// The lag grew at every sample of the window: the group is falling behind.
    Warn,
    /// The committed offset went backwards (a reset or a replay).
    Rewind,
    /// Members are consuming, but no committed offset of the group moved over the whole window
    /// while messages wait: a message or a consumer is stuck.
    Stall,
    /// Messages wait and the group has no member: nothing consumes.
    Stop,
}

impl PartitionHealth {
    /// Its name, as Burrow prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionHealth::Ok => "OK",
            PartitionHealth::Warn => "WARN",
            PartitionHealth::Rewind => "REWIND",
            PartitionHealth::Stall => "STALL",
            PartitionHealth::Stop => "STOP",
        }
    }

    /// Whether the group is stuck: adding instances would not help, an operator should look.
    pub fn is_stuck(self) -> bool {
        matches!(self, PartitionHealth::Stall | PartitionHealth::Stop)
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

impl ScaleAction {
    /// Its name on the wire (`scale_up`, `scale_down`, `hold`), for logs, metric labels and
    /// the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleAction::ScaleUp => "scale_up",
            ScaleAction::ScaleDown => "scale_down",
            ScaleAction::Hold => "hold",
        }
    }
}
