//! `[workers.autoscaler]`: how often groups are sampled and decided, and the policy of each
//! group it sizes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::autoscale::PolicySettings;
use crate::config::{InvalidSetting, topic_named};
use crate::workers::WorkerConfig;

/// `[workers.autoscaler]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscalerSettings {
    /// Consumer group id; defaults to `<group_prefix>.autoscaler`.
    pub group_id: Option<String>,
    /// How often every group is sampled and decided. KEDA polls every 30 s; a backlog should
    /// be acted on within seconds.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Samples a group's partition health is judged over (Burrow judges its last 10 commits).
    pub window_samples: usize,
    /// Longest the broker calls of one group's sample may take.
    #[serde(with = "humantime_serde")]
    pub sample_timeout: Duration,
    /// Topic every decision goes to, holds included.
    pub decisions_topic: String,
    /// The groups sized, by worker name (`serve`, `inference-batcher`, ...), each with its
    /// policy (`[workers.autoscaler.groups.serve]`).
    pub groups: BTreeMap<String, PolicySettings>,
}

impl Default for AutoscalerSettings {
    fn default() -> Self {
        let groups = ["serve", "inference-batcher", "query-analyzer"]
            .into_iter()
            .map(|worker| (worker.to_owned(), PolicySettings::default()))
            .collect();
        AutoscalerSettings {
            group_id: None,
            interval: Duration::from_secs(5),
            window_samples: 10,
            sample_timeout: Duration::from_secs(5),
            decisions_topic: "frontier.autoscale.decisions".into(),
            groups,
        }
    }
}

impl WorkerConfig for AutoscalerSettings {
    const SECTION: &'static str = "autoscaler";
    const NAME: &'static str = "autoscaler";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        // It reads the groups' positions from the brokers, not from a topic.
        Vec::new()
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        if self.interval < Duration::from_secs(1) {
            return Err(InvalidSetting::new("interval", "must be at least 1s"));
        }
        if self.window_samples < 2 {
            return Err(InvalidSetting::new("window_samples", "must be at least 2 (rates need two samples)"));
        }
        if self.sample_timeout.is_zero() {
            return Err(InvalidSetting::new("sample_timeout", "must be longer than 0s"));
        }
        topic_named("decisions_topic", &self.decisions_topic)?;
        if self.groups.contains_key(Self::NAME) {
            return Err(InvalidSetting::new("groups.autoscaler", "the autoscaler does not size itself"));
        }
        for (worker, policy) in &self.groups {
            policy.validate().map_err(|error| error.within(&format!("groups.{worker}")))?;
        }
        Ok(())
    }
}
