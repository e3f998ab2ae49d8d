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
}

impl AutoscaleDecision {
    /// The group cannot scale further and still falls behind: more instances would help, the
    /// bound forbids them.
    pub fn is_saturated(&self) -> bool {
        self.current_instances >= self.max_instances
            && self.desired_instances >= self.max_instances
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
