//! The result record of a batcher outcome.

use crate::inference::batcher::{JobOutcome, JobOutput};
use crate::records::{Classification, InferenceResult};

/// The result of `job_id` for `model` from the batcher's outcome.
pub fn result_of(job_id: String, model: String, outcome: JobOutcome, completed_at: i64) -> InferenceResult {
    let (embeddings, classifications) = match outcome.output {
        Some(JobOutput::Embeddings(vectors)) => (Some(vectors), None),
        Some(JobOutput::Classifications(classifications)) => (
            None,
            Some(
                classifications
                    .into_iter()
                    .map(|c| Classification {
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
