//! Running one batch: drop what expired meanwhile, embed every distinct text once (label
//! descriptions not yet cached included), fan the vectors back out to the jobs, answer each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use super::job::{JobOutcome, JobOutput, JobRequest, LabelSet, Task, millis_since};
use super::metric;
use crate::inference::backend::{Embedded, EmbeddingBackend};
use crate::inference::model::classify_embeddings;
use crate::records::JobStatus;

/// A queued job and where its answer goes.
#[derive(Debug)]
pub(super) struct Waiting {
    pub request: JobRequest,
    pub reply: oneshot::Sender<JobOutcome>,
}

impl Waiting {
    /// Answers the job; a caller that stopped waiting (its handler was cancelled) is fine.
    pub fn answer(self, outcome: JobOutcome) {
        let _ = self.reply.send(outcome);
    }
}

/// Label sets cached before the cache is emptied: jobs usually share a few sets (the default
/// sentiment labels), and a flood of distinct ones must not grow memory without bound.
const LABEL_CACHE_CAPACITY: usize = 256;

/// The embeddings of one label set's descriptions, in label order.
type LabelVectorsOf = Arc<Vec<Vec<f32>>>;

/// Embeddings of label descriptions, per label set, shared by a model's batches.
#[derive(Debug, Default)]
pub(super) struct LabelCache {
    vectors: Mutex<HashMap<Arc<LabelSet>, LabelVectorsOf>>,
}

impl LabelCache {
    fn get(&self, labels: &LabelSet) -> Option<LabelVectorsOf> {
        // A poisoned lock only means another batch panicked mid-insert; the map is still valid.
        self.vectors.lock().unwrap_or_else(PoisonError::into_inner).get(labels).cloned()
    }

    fn insert(&self, labels: Arc<LabelSet>, vectors: Vec<Vec<f32>>) {
        let mut cache = self.vectors.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= LABEL_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(labels, Arc::new(vectors));
    }
}

/// What a finished batch tells the scheduler (for the latency model).
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchReport {
    /// Distinct texts sent to the model; 0 when nothing ran.
    pub texts: usize,
    /// How long the model took.
    pub latency: Duration,
    /// Whether the model answered.
    pub succeeded: bool,
}

/// Distinct texts of a batch, each with its position in the model call.
#[derive(Default)]
struct DistinctTexts {
    texts: Vec<String>,
    positions: HashMap<String, usize>,
}

impl DistinctTexts {
    fn position(&mut self, text: &str) -> usize {
        if let Some(&position) = self.positions.get(text) {
            return position;
        }
        self.texts.push(text.to_owned());
        self.positions.insert(text.to_owned(), self.texts.len() - 1);
        self.texts.len() - 1
    }
}

/// Label vectors of a classify job: cached, or positions in this batch's model call.
enum LabelVectors {
    Cached(LabelVectorsOf),
    InBatch(Vec<usize>),
}

/// Runs `batch` on `backend` and answers every job in it.
pub(super) async fn run_batch(
    model: Arc<str>,
    backend: Arc<dyn EmbeddingBackend>,
    labels: Arc<LabelCache>,
    batch: Vec<Waiting>,
) -> BatchReport {
    let now = SystemTime::now();
    // A deadline that passed while the batch formed: answer expired, never run it.
    let (runnable, late): (Vec<Waiting>, Vec<Waiting>) =
        batch.into_iter().partition(|job| job.request.deadline.is_none_or(|deadline| deadline > now));
    for job in late {
        let issued_at = job.request.issued_at;
        job.answer(JobOutcome::not_run(JobStatus::Expired, "the deadline passed before the job ran", issued_at));
    }
    if runnable.is_empty() {
        return BatchReport { texts: 0, latency: Duration::ZERO, succeeded: true };
    }

    let mut distinct = DistinctTexts::default();
    let mut plans = Vec::with_capacity(runnable.len());
    for job in &runnable {
        let inputs: Vec<usize> = job.request.inputs.iter().map(|text| distinct.position(text)).collect();
        let label_vectors = match &job.request.task {
            Task::Embed => None,
            Task::Classify(set) => Some(match labels.get(set) {
                Some(cached) => LabelVectors::Cached(cached),
                None => LabelVectors::InBatch(set.descriptions().map(|d| distinct.position(d)).collect()),
            }),
        };
        plans.push((inputs, label_vectors));
    }
    let batch_size: usize = runnable.iter().map(|job| job.request.inputs.len()).sum();
    let texts = distinct.texts.len();
    ::metrics::histogram!(metric::BATCH_SIZE, "model" => model.to_string()).record(batch_size as f64);
    ::metrics::histogram!(metric::BATCH_TEXTS, "model" => model.to_string()).record(texts as f64);

    let started_at = SystemTime::now();
    let started = Instant::now();
    let result = backend.embed(distinct.texts).await;
    let latency = started.elapsed();
    let inference_time_ms = latency.as_secs_f64() * 1000.0;
    ::metrics::histogram!(metric::INFERENCE_SECONDS, "model" => model.to_string()).record(latency.as_secs_f64());
    let mut instance = match &result {
        Ok(embedded) => embedded.instance.clone(),
        Err(error) => error.instance().to_owned(),
    };
    if instance.is_empty() {
        instance = backend.id().to_owned();
    }
    let outcome = |job: &Waiting, status, output, error| JobOutcome {
        status,
        output,
        error,
        instance: instance.clone(),
        batch_size,
        queue_time_ms: millis_since(job.request.issued_at, started_at),
        inference_time_ms,
    };

    let vectors = match result {
        Ok(embedded) if embedded.vectors.len() == texts => embedded.vectors,
        Ok(Embedded { vectors, .. }) => {
            let reason = format!("the model returned {} vectors for {texts} texts", vectors.len());
            for job in runnable {
                let answer = outcome(&job, JobStatus::Error, None, Some(reason.clone()));
                job.answer(answer);
            }
            return BatchReport { texts, latency, succeeded: false };
        }
        Err(error) => {
            let reason = error.to_string();
            for job in runnable {
                let answer = outcome(&job, JobStatus::Error, None, Some(reason.clone()));
                job.answer(answer);
            }
            return BatchReport { texts, latency, succeeded: false };
        }
    };

    for (job, (inputs, label_vectors)) in runnable.into_iter().zip(plans) {
        let text_vectors: Vec<Vec<f32>> = inputs.iter().map(|&position| vectors[position].clone()).collect();
        let output = match (&job.request.task, label_vectors) {
            (Task::Classify(set), Some(label_vectors)) => {
                let label_vectors = match label_vectors {
                    LabelVectors::Cached(cached) => cached,
                    LabelVectors::InBatch(positions) => {
                        let computed: Vec<Vec<f32>> = positions.iter().map(|&p| vectors[p].clone()).collect();
                        labels.insert(set.clone(), computed.clone());
                        Arc::new(computed)
                    }
                };
                JobOutput::Classifications(classify_embeddings(&text_vectors, &label_vectors, set.labels()))
            }
            _ => JobOutput::Embeddings(text_vectors),
        };
        let answer = outcome(&job, JobStatus::Ok, Some(output), None);
        job.answer(answer);
    }
    BatchReport { texts, latency, succeeded: true }
}
