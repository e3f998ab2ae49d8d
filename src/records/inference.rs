//! `inference_job.avsc` and `inference_result.avsc`: inference jobs on
//! `frontier.inference.jobs` and their results.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::Priority;

/// What to compute (the `Task` enum of the job schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One embedding per input.
    Embed,
    /// One classification per input.
    Classify,
}

/// One inference job (`frontier.inference.InferenceJob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceJob {
    /// Unique job id, echoed as `job_id`.
    pub id: String,
    /// Name of the model to run.
    pub model: String,
    /// What to compute.
    pub task: Task,
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

/// One input's classification in a result (`frontier.inference.Classification`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The label with the highest score.
    pub label: String,
    /// Every label's probability.
    pub scores: BTreeMap<String, f64>,
}

/// The result of one job (`frontier.inference.InferenceResult`).
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
    pub classifications: Option<Vec<Classification>>,
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

/// How a job ended (the `InferenceStatus` enum of `inference_result.avsc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Ran; the output is set.
    Ok,
    /// The model failed while running it.
    Error,
    /// Its deadline or queue timeout passed before it ran; it was not run.
    Expired,
    /// Not accepted: invalid, unknown model, or its priority's queue was full.
    Rejected,
}

impl JobStatus {
    /// The symbol, also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::Error => "error",
            JobStatus::Expired => "expired",
            JobStatus::Rejected => "rejected",
        }
    }
}
