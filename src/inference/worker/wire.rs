//! The records on the wire: `InferenceJob` (`inference_job.avsc`) and `InferenceResult`
//! (`inference_result.avsc`), as serde types the Avro codec maps field by field.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::inference::batcher::{JobOutcome, JobOutput, JobStatus, Priority};

/// What to compute (the `Task` enum of the job schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireTask {
    /// One embedding per input.
    Embed,
    /// One classification per input.
    Classify,
}

/// An `InferenceJob` as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceJob {
    /// Unique job id, echoed as `job_id`.
    pub id: String,
    /// Name of the model to run.
    pub model: String,
    /// What to compute.
    pub task: WireTask,
    /// The texts, in order.
    pub inputs: Vec<String>,
    /// For classify: label -> description; `None` means the default sentiment labels.
    pub labels: Option<HashMap<String, String>>,
    /// How urgent it is.
    pub priority: Priority,
    /// When it was issued, ms since the epoch.
    pub issued_at: i64,
    /// When the result stops being useful, ms since the epoch.
    pub deadline: Option<i64>,
    /// Topic for the result; `None` means the worker's results topic.
    pub reply_to: Option<String>,
}

/// One input's classification in a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireClassification {
    /// The label with the highest score.
    pub label: String,
    /// Every label's probability.
    pub scores: BTreeMap<String, f64>,
}

/// An `InferenceResult` as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceResult {
    /// The id of the job it answers.
    pub job_id: String,
    /// The model the job asked for.
    pub model: String,
    /// The instance that ran it; empty if none did.
    pub instance: String,
    /// How it ended.
    pub status: JobStatus,
    /// For embed jobs that ran: one vector per input.
    pub embeddings: Option<Vec<Vec<f32>>>,
    /// For classify jobs that ran: one classification per input.
    pub classifications: Option<Vec<WireClassification>>,
    /// Why, when not ok.
    pub error: Option<String>,
    /// Inputs in the model batch it ran in; 0 if it did not run.
    pub batch_size: i32,
    /// Milliseconds from issue until its batch started (or it was answered without running).
    pub queue_time_ms: f64,
    /// Milliseconds the model took on its batch.
    pub inference_time_ms: f64,
    /// When the result was ready, ms since the epoch.
    pub completed_at: i64,
}

impl InferenceResult {
    /// The result of `job_id` for `model` from the batcher's outcome.
    pub fn from_outcome(job_id: String, model: String, outcome: JobOutcome, completed_at: i64) -> InferenceResult {
        let (embeddings, classifications) = match outcome.output {
            Some(JobOutput::Embeddings(vectors)) => (Some(vectors), None),
            Some(JobOutput::Classifications(classifications)) => (
                None,
                Some(
                    classifications
                        .into_iter()
                        .map(|c| WireClassification {
                            label: c.label,
                            scores: c.scores.into_iter().map(|s| (s.label, f64::from(s.score))).collect(),
                        })
                        .collect(),
                ),
            ),
            None => (None, None),
        };
        InferenceResult {
            job_id,
            model,
            instance: outcome.instance,
            status: outcome.status,
            embeddings,
            classifications,
            error: outcome.error,
            batch_size: i32::try_from(outcome.batch_size).unwrap_or(i32::MAX),
            queue_time_ms: outcome.queue_time_ms,
            inference_time_ms: outcome.inference_time_ms,
            completed_at,
        }
    }
}
