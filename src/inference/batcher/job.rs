//! What the batcher is asked to run and what it answers: jobs, priorities, outcomes.

use std::sync::Arc;
use std::time::SystemTime;

use crate::inference::model::{Classification, LabelDescription};
use crate::records::{JobStatus, Priority};

/// A set of zero-shot labels with their descriptions, in a fixed order. Shared by the jobs
/// that name the same set, and the key of the label-embedding cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelSet {
    labels: Vec<LabelDescription>,
}

impl LabelSet {
    /// A label set; `None` if it is empty or names a label twice.
    pub fn new(labels: Vec<LabelDescription>) -> Option<LabelSet> {
        let mut seen = std::collections::HashSet::new();
        if labels.is_empty() || !labels.iter().all(|label| seen.insert(label.label.clone())) {
            return None;
        }
        Some(LabelSet { labels })
    }

    /// The labels, in order.
    pub fn labels(&self) -> &[LabelDescription] {
        &self.labels
    }

    /// The descriptions, in label order: the texts whose embeddings the labels are compared to.
    pub fn descriptions(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|label| label.description.as_str())
    }
}

/// What to compute for each input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// One unit-norm embedding per input.
    Embed,
    /// Zero-shot classification of each input against these labels.
    Classify(Arc<LabelSet>),
}

impl Task {
    /// `embed` or `classify`, for metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Task::Embed => "embed",
            Task::Classify(_) => "classify",
        }
    }
}

/// One job as the batcher schedules it (already validated by the worker).
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// The job id, for logs.
    pub id: String,
    /// The model queue it goes to.
    pub model: String,
    /// What to compute.
    pub task: Task,
    /// The texts, in order.
    pub inputs: Vec<String>,
    /// How urgent it is.
    pub priority: Priority,
    /// When the publisher issued it: the start of its queue time.
    pub issued_at: SystemTime,
    /// When its result stops being useful; `None` falls back to the priority's default timeout.
    pub deadline: Option<SystemTime>,
}

impl JobRequest {
    /// The job cut into requests of at most `max_inputs` inputs each, in input order (itself
    /// alone when it fits).
    pub fn split(self, max_inputs: usize) -> Vec<JobRequest> {
        if self.inputs.len() <= max_inputs {
            return vec![self];
        }
        self.inputs
            .chunks(max_inputs.max(1))
            .map(|inputs| JobRequest { inputs: inputs.to_vec(), ..self.clone() })
            .collect()
    }
}

/// What a job computed.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutput {
    /// One vector per input.
    Embeddings(Vec<Vec<f32>>),
    /// One classification per input.
    Classifications(Vec<Classification>),
}

/// The batcher's answer to one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// How it ended.
    pub status: JobStatus,
    /// Set when `status` is ok.
    pub output: Option<JobOutput>,
    /// Why, when `status` is not ok.
    pub error: Option<String>,
    /// The instance that ran it; empty if none did.
    pub instance: String,
    /// Inputs of every job in its model batch; 0 if it did not run.
    pub batch_size: usize,
    /// Milliseconds from `issued_at` until its batch started (or it was expired or rejected).
    pub queue_time_ms: f64,
    /// Milliseconds the model took on its batch; 0 if it did not run.
    pub inference_time_ms: f64,
}

impl JobOutcome {
    /// The outcome of a job run in chunks (see [`JobRequest::split`]), from the chunks'
    /// outcomes in input order: ok with every output joined when every chunk ran, else the
    /// first chunk that did not run decides. Queue time is the longest wait, inference time
    /// the sum, batch size the largest batch a chunk ran in.
    pub fn merge(mut outcomes: Vec<JobOutcome>) -> JobOutcome {
        if outcomes.len() == 1 {
            return outcomes.remove(0);
        }
        let queue_time_ms = outcomes.iter().map(|o| o.queue_time_ms).fold(0.0, f64::max);
        let inference_time_ms = outcomes.iter().map(|o| o.inference_time_ms).sum();
        let batch_size = outcomes.iter().map(|o| o.batch_size).max().unwrap_or(0);
        if let Some(failed) = outcomes.iter().position(|o| o.status != JobStatus::Ok) {
            let failed = outcomes.swap_remove(failed);
            return JobOutcome { queue_time_ms, inference_time_ms, batch_size, output: None, ..failed };
        }
        let instance = outcomes.first().map(|o| o.instance.clone()).unwrap_or_default();
        let mut output: Option<JobOutput> = None;
        for outcome in outcomes {
            output = match (output, outcome.output) {
                (None, next) => next,
                (Some(JobOutput::Embeddings(mut all)), Some(JobOutput::Embeddings(more))) => {
                    all.extend(more);
                    Some(JobOutput::Embeddings(all))
                }
                (Some(JobOutput::Classifications(mut all)), Some(JobOutput::Classifications(more))) => {
                    all.extend(more);
                    Some(JobOutput::Classifications(all))
                }
                // Chunks of one job share its task, so their outputs are of one kind.
                (kept, _) => kept,
            };
        }
        JobOutcome {
            status: JobStatus::Ok,
            output,
            error: None,
            instance,
            batch_size,
            queue_time_ms,
            inference_time_ms,
        }
    }

    /// An answer for a job that never ran.
    pub fn not_run(status: JobStatus, reason: impl Into<String>, issued_at: SystemTime) -> JobOutcome {
        JobOutcome {
            status,
            output: None,
            error: Some(reason.into()),
            instance: String::new(),
            batch_size: 0,
            queue_time_ms: millis_since(issued_at, SystemTime::now()),
            inference_time_ms: 0.0,
        }
    }
}

/// Milliseconds from `from` to `to`, 0 if `to` is earlier (clocks of publisher and worker differ).
pub fn millis_since(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}
