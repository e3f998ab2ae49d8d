//! Batch settings of one model: sizes, delays and a queue policy per priority. They can change
//! while the batcher runs (a `tokio::sync::watch` of them; see the admin endpoint of
//! [`crate::inference::worker`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::records::Priority;

/// How one model's jobs are batched (Triton's dynamic batcher, plus aging and adaptive sizing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingSettings {
    /// Most inputs (texts, not jobs) in one model batch; 1 turns batching off. A job with more
    /// inputs than this still runs, alone.
    pub max_batch_size: usize,
    /// Batch sizes (in inputs) worth sending without waiting: as soon as the queue holds at
    /// least one of them, the largest such batch goes out. Empty: only `max_batch_size` and the
    /// delay trigger a batch.
    pub preferred_batch_sizes: Vec<usize>,
    /// Longest time the oldest queued job waits for a batch to fill before a smaller one goes
    /// out. Measured on 2 cores in release: a batch of 64 headlines takes ~60 ms, so 10 ms of
    /// waiting costs little latency and lets concurrent jobs join.
    #[serde(with = "humantime_serde")]
    pub max_queue_delay: Duration,
    /// Batches sent to the backend at once; 1 for the in-process model (it already uses every
    /// core), the number of instances for a pool of HTTP instances.
    pub max_concurrent_batches: usize,
    /// Learn latency against batch size online and send the largest batch whose predicted
    /// latency still meets the most urgent deadline in the queue.
    pub adaptive: bool,
    /// Every this long a job waits, its effective priority rises one level (low becomes normal,
    /// then high, then critical), so a stream of urgent jobs cannot starve the rest.
    #[serde(with = "humantime_serde")]
    pub aging_interval: Duration,
    /// When more jobs wait than fit in a batch: how many waiting jobs of the batch's lowest
    /// priority are looked at to fill it with texts of similar length, so less of the model's
    /// time goes on padding. The oldest job always goes and higher priorities always go
    /// first; 0 keeps strict arrival order (Triton's).
    pub similar_length_window: usize,
    /// The queue policy of each priority.
    pub policies: PriorityPolicies,
}

impl Default for BatchingSettings {
    fn default() -> Self {
        BatchingSettings {
            max_batch_size: 64,
            preferred_batch_sizes: vec![32, 64],
            max_queue_delay: Duration::from_millis(10),
            max_concurrent_batches: 1,
            adaptive: true,
            aging_interval: Duration::from_secs(2),
            similar_length_window: 1024,
            policies: PriorityPolicies::default(),
        }
    }
}

/// A queue policy per priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityPolicies {
    /// Critical jobs.
    pub critical: QueuePolicy,
    /// High-priority jobs.
    pub high: QueuePolicy,
    /// Normal jobs.
    pub normal: QueuePolicy,
    /// Low-priority jobs.
    pub low: QueuePolicy,
}

impl Default for PriorityPolicies {
    fn default() -> Self {
        PriorityPolicies {
            critical: QueuePolicy { default_timeout: Some(Duration::from_secs(5)), ..QueuePolicy::default() },
            high: QueuePolicy { default_timeout: Some(Duration::from_secs(15)), ..QueuePolicy::default() },
            normal: QueuePolicy::default(),
            // Low jobs are the first to go when load spikes: demoted rather than answered
            // expired, they still run once the queue drains.
            low: QueuePolicy { timeout_action: TimeoutAction::Delay, ..QueuePolicy::default() },
        }
    }
}

impl PriorityPolicies {
    /// The policy of `priority`.
    pub fn of(&self, priority: Priority) -> &QueuePolicy {
        match priority {
            Priority::Critical => &self.critical,
            Priority::High => &self.high,
            Priority::Normal => &self.normal,
            Priority::Low => &self.low,
        }
    }
}

/// What one priority's queue accepts and how long its jobs may wait (Triton's queue policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuePolicy {
    /// Most jobs waiting at this priority; a job arriving at a full queue is answered
    /// `rejected` (back-pressure the publisher can see, instead of unbounded memory).
    pub max_queue_size: usize,
    /// How long a job without a deadline may wait; unset waits forever.
    #[serde(with = "humantime_serde")]
    pub default_timeout: Option<Duration>,
    /// What happens when that timeout passes.
    pub timeout_action: TimeoutAction,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            max_queue_size: 10_000,
            default_timeout: Some(Duration::from_secs(60)),
            timeout_action: TimeoutAction::Reject,
        }
    }
}

/// What to do with a job whose queue timeout passed (a deadline that passed always expires it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutAction {
    /// Answer it `expired` without running it.
    Reject,
    /// Keep it, one priority lower, with the lower queue's timeout starting over; at low it
    /// stays low and waits behind every job that has not timed out.
    Delay,
}

/// A setting that does not make sense, with the key (relative to the model's `batching`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct InvalidBatching {
    /// The key, e.g. `policies.low.max_queue_size`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl BatchingSettings {
    /// These settings with `patch` applied, validated. `patch` is a JSON merge patch (RFC 7386)
    /// of the fields as written in the config (`{"max_batch_size": 32, "max_queue_delay":
    /// "5ms"}`): objects merge field by field, anything else replaces. The error names the field.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<BatchingSettings, InvalidBatching> {
        if !patch.is_object() {
            return Err(InvalidBatching {
                key: "$".into(),
                message: "must be a JSON object of batching fields".into(),
            });
        }
        let mut merged = serde_json::to_value(self)
            .map_err(|error| InvalidBatching { key: "$".into(), message: error.to_string() })?;
        merge_patch(&mut merged, patch);
        let settings: BatchingSettings = serde_path_to_error::deserialize(merged)
            .map_err(|error| InvalidBatching { key: error.path().to_string(), message: error.inner().to_string() })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), InvalidBatching> {
        let invalid = |key: &str, message: &str| Err(InvalidBatching { key: key.into(), message: message.into() });
        if self.max_batch_size == 0 {
            return invalid("max_batch_size", "must be at least 1");
        }
        if self.preferred_batch_sizes.iter().any(|&size| size == 0 || size > self.max_batch_size) {
            return invalid("preferred_batch_sizes", "every size must be between 1 and max_batch_size");
        }
        if self.max_concurrent_batches == 0 {
            return invalid("max_concurrent_batches", "must be at least 1");
        }
        if self.aging_interval.is_zero() {
            return invalid("aging_interval", "must be greater than zero");
        }
        for priority in Priority::ALL {
            let policy = self.policies.of(priority);
            if policy.max_queue_size == 0 {
                return invalid(&format!("policies.{}.max_queue_size", priority.as_str()), "must be at least 1");
            }
            if policy.default_timeout.is_some_and(|timeout| timeout.is_zero()) {
                return invalid(
                    &format!("policies.{}.default_timeout", priority.as_str()),
                    "must be greater than zero (or unset)",
                );
            }
        }
        Ok(())
    }
}

/// JSON merge patch (RFC 7386): objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge_patch(target.entry(key.clone()).or_insert(serde_json::Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_patch_changes_the_named_fields_and_keeps_the_rest() {
        let base = BatchingSettings::default();
        let patched = base
            .patched(&json!({"max_batch_size": 8, "preferred_batch_sizes": [4, 8], "max_queue_delay": "3ms"}))
            .unwrap();
        assert_eq!((patched.max_batch_size, patched.max_queue_delay), (8, Duration::from_millis(3)));
        assert_eq!(patched.aging_interval, base.aging_interval);
    }

    #[test]
    fn a_patch_of_a_nested_policy_keeps_its_siblings() {
        let base = BatchingSettings::default();
        let patched = base.patched(&json!({"policies": {"low": {"max_queue_size": 7}}})).unwrap();
        assert_eq!(patched.policies.of(Priority::Low).max_queue_size, 7);
        assert_eq!(patched.policies.of(Priority::High), base.policies.of(Priority::High));
    }

    #[test]
    fn a_patch_names_the_field_it_breaks() {
        let base = BatchingSettings::default();
        assert_eq!(base.patched(&json!({"max_batch_size": "many"})).unwrap_err().key, "max_batch_size");
        assert_eq!(base.patched(&json!({"max_batch_size": 0})).unwrap_err().key, "max_batch_size");
        let too_big = base.patched(&json!({"max_batch_size": 4})).unwrap_err();
        assert_eq!(too_big.key, "preferred_batch_sizes", "checked together with the fields it depends on");
        assert_eq!(base.patched(&json!({"batch": 1})).unwrap_err().key, "batch", "an unknown field");
        assert_eq!(base.patched(&json!([1])).unwrap_err().key, "$");
    }
}
