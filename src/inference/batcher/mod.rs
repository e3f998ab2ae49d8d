//! The dynamic batcher: per-model priority queues, batch formation and adaptive sizing.
//!
//! Semantics are Triton's dynamic batcher: a batch goes out when it reaches `max_batch_size`
//! inputs or a preferred size, or when the oldest queued job has waited `max_queue_delay`. Each
//! priority has a queue policy (size limit: a job arriving at a full queue is answered
//! `rejected`; a default timeout for jobs without a deadline; on timeout `reject` or `delay`).
//! Jobs past their deadline are answered `expired` and never run. Critical jobs overtake lower
//! ones, and aging lifts a waiting job one level per `aging_interval` so none starves. Identical
//! texts within a batch are embedded once. Under a backlog, a batch's lowest priority is filled
//! with jobs of similar text length (`similar_length_window`), since the model pads every text
//! to the batch's longest. With `adaptive`, the latency of a batch against its
//! size is learned online ([`sizing`]) and a batch is cut to the largest size predicted to meet
//! the most urgent deadline. Settings live in a `tokio::sync::watch` per model and may change
//! while running ([`InferenceBatcher::update_settings`]).
//!
//! Layout: [`job`] (requests and outcomes), [`settings`], [`queue`] (pure queue logic),
//! [`sizing`] (the latency fit), `scheduler` (one loop per model), `execute` (one batch).

mod execute;
pub mod job;
pub mod queue;
mod scheduler;
pub mod settings;
pub mod sizing;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use crate::records::{JobStatus, Priority};
pub use job::{JobOutcome, JobOutput, JobRequest, LabelSet, Task};
pub use settings::{BatchingSettings, InvalidBatching, PriorityPolicies, QueuePolicy, TimeoutAction};
pub use sizing::LatencyFit;

use crate::inference::backend::EmbeddingBackend;
use execute::Waiting;
use scheduler::ModelScheduler;

/// Metric names of the batcher and the inference worker (labels stay low-cardinality: model,
/// priority, status).
pub mod metric {
    /// Inputs per model batch (histogram, label model).
    pub const BATCH_SIZE: &str = "frontier_inference_batch_size";
    /// Distinct texts per model batch after de-duplication (histogram, label model).
    pub const BATCH_TEXTS: &str = "frontier_inference_batch_texts";
    /// Seconds the model took on a batch (histogram, label model).
    pub const INFERENCE_SECONDS: &str = "frontier_inference_seconds";
    /// Seconds from a job's issue until its batch started or it was answered (histogram, label priority).
    pub const QUEUE_SECONDS: &str = "frontier_inference_queue_seconds";
    /// Jobs answered, by model and status (ok, error, expired, rejected).
    pub const JOBS: &str = "frontier_inference_jobs_total";
    /// Jobs waiting in a model's queues (gauge, label model).
    pub const QUEUE_DEPTH: &str = "frontier_inference_queue_depth";
    /// The largest batch a model may run now (gauge, label model): the denominator of the
    /// dashboard's batch fill, which follows admin overrides.
    pub const MAX_BATCH_SIZE: &str = "frontier_inference_max_batch_size";
}

/// A model the batcher serves: its name in jobs, the backend that runs it, its batch settings.
pub struct ModelQueue {
    /// The name jobs ask for.
    pub name: String,
    /// Where batches go: the in-process model or a pool of instances.
    pub backend: Arc<dyn EmbeddingBackend>,
    /// Initial batch settings (validated by [`InferenceBatcher::start`]).
    pub settings: BatchingSettings,
}

/// Why the batcher refused to start, change settings or answer.
#[derive(Debug, thiserror::Error)]
pub enum BatcherError {
    /// No model of that name is served.
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    /// The settings do not make sense.
    #[error("invalid batch settings for model `{model}` at {error}")]
    InvalidSettings { model: String, error: InvalidBatching },
    /// The model's scheduler stopped (shutdown) before answering.
    #[error("the batcher of model `{0}` stopped before answering")]
    Stopped(String),
}

/// One model's entry points.
struct ModelHandle {
    submissions: mpsc::UnboundedSender<Waiting>,
    settings: watch::Sender<BatchingSettings>,
    fit: watch::Receiver<Option<LatencyFit>>,
}

/// The batcher: one scheduling task per model, fed by [`InferenceBatcher::submit`].
pub struct InferenceBatcher {
    models: BTreeMap<String, ModelHandle>,
}

impl InferenceBatcher {
    /// Validates every model's settings and starts its scheduler on the current tokio runtime.
    /// The schedulers stop when `token` is cancelled or when the batcher is dropped and their
    /// queues are empty.
    pub fn start(models: Vec<ModelQueue>, token: CancellationToken) -> Result<InferenceBatcher, BatcherError> {
        for model in &models {
            model
                .settings
                .validate()
                .map_err(|error| BatcherError::InvalidSettings { model: model.name.clone(), error })?;
        }
        let mut handles = BTreeMap::new();
        for model in models {
            let (submissions, receiver) = mpsc::unbounded_channel();
            let (settings, settings_receiver) = watch::channel(model.settings);
            let (fit_sender, fit) = watch::channel(None);
            let scheduler = ModelScheduler {
                model: Arc::from(model.name.as_str()),
                backend: model.backend,
                settings: settings_receiver,
                submissions: receiver,
                fit: fit_sender,
                token: token.clone(),
            };
            tokio::spawn(scheduler.run());
            handles.insert(model.name, ModelHandle { submissions, settings, fit });
        }
        Ok(InferenceBatcher { models: handles })
    }

    /// Whether `model` is served.
    pub fn serves(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// The names of the served models.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// Queues a job and waits for its outcome (ok, error, expired, or rejected when its
    /// priority's queue is full).
    pub async fn submit(&self, request: JobRequest) -> Result<JobOutcome, BatcherError> {
        let handle =
            self.models.get(&request.model).ok_or_else(|| BatcherError::UnknownModel(request.model.clone()))?;
        let model = request.model.clone();
        // A job with more inputs than a batch takes is cut into chunks that queue like any job
        // (same priority and deadline), so it cannot hold the model for one giant batch while
        // more urgent jobs wait behind it.
        let chunk = handle.settings.borrow().max_batch_size.max(1);
        let chunks = request.split(chunk);
        let mut answers = Vec::with_capacity(chunks.len());
        for request in chunks {
            let (reply, answer) = oneshot::channel();
            handle.submissions.send(Waiting { request, reply }).map_err(|_| BatcherError::Stopped(model.clone()))?;
            answers.push(answer);
        }
        let mut outcomes = Vec::with_capacity(answers.len());
        for answer in answers {
            outcomes.push(answer.await.map_err(|_| BatcherError::Stopped(model.clone()))?);
        }
        Ok(JobOutcome::merge(outcomes))
    }

    /// The current batch settings of `model`.
    pub fn settings(&self, model: &str) -> Option<BatchingSettings> {
        self.models.get(model).map(|handle| handle.settings.borrow().clone())
    }

    /// A receiver that sees every settings change of `model`.
    pub fn watch_settings(&self, model: &str) -> Option<watch::Receiver<BatchingSettings>> {
        self.models.get(model).map(|handle| handle.settings.subscribe())
    }

    /// Replaces the batch settings of `model` while it runs; the next scheduling decision uses
    /// them. Jobs already queued keep the timeouts they were queued with.
    pub fn update_settings(&self, model: &str, settings: BatchingSettings) -> Result<(), BatcherError> {
        let handle = self.models.get(model).ok_or_else(|| BatcherError::UnknownModel(model.to_owned()))?;
        settings.validate().map_err(|error| BatcherError::InvalidSettings { model: model.to_owned(), error })?;
        handle.settings.send_replace(settings);
        Ok(())
    }

    /// The latency curve learned for `model` so far (`None` before its first batch).
    pub fn latency_fit(&self, model: &str) -> Option<LatencyFit> {
        self.models.get(model).and_then(|handle| *handle.fit.borrow())
    }
}
