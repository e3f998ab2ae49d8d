//! `frontier run inference-batcher`: the [`InferenceBatcher`] as a consumer-group worker.
//!
//! Each `InferenceJob` on `frontier.inference.jobs` is validated (an unknown model or a
//! malformed job is answered `rejected` with the reason, not dead-lettered: the publisher is
//! waiting for an answer), submitted to the batcher and awaited; the result goes to the job's
//! `reply_to` or the results topic, keyed by job id. The bus handles up to `bus.max_in_flight`
//! jobs at once, so many wait in the batcher together, and stores a job's offset only once its
//! result is acknowledged: the topic is the durable queue, and jobs queued in memory when the
//! process dies are redelivered.
//!
//! Batch settings change while running through the admin endpoint ([`admin`]).

pub mod admin;
pub mod overrides;
mod settings;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

pub use settings::{DEFAULT_MODEL, InferenceBatcherSettings, ModelSettings};

use super::{Shared, WorkerConfig};
use crate::bus::compacted;
use crate::bus::outputs::is_valid_topic_name;
use crate::bus::{
    BusError, ConsumerLoop, HandlerError, Inbound, KnownSchema, LoopOptions, LoopReport, Outbound, Refusal,
    RefusalCause, SchemaCatalog, Worker,
};
use crate::inference::backend::{ConnectError, ConnectOptions, EmbeddingBackend, PoolOptions, connect, connect_pool};
use crate::inference::batcher::{
    BatcherError, InferenceBatcher, JobOutcome, JobRequest, LabelSet, ModelQueue, Task, metric,
};
use crate::inference::model::{EmbeddingModel, LabelDescription, ModelError, default_sentiment_labels};
use crate::records::{InferenceJob, InferenceResult, JobStatus, Task as JobTask};

/// Why the worker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InferenceWorkerError {
    /// A setting under `workers.inference` is invalid.
    #[error("invalid configuration at `workers.inference.{key}`: {message}")]
    Config { key: String, message: String },
    /// The consumer loop could not start or failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The model loading task did not finish.
    #[error("loading the model did not finish: {0}")]
    Join(String),
    /// The job or result schema is missing from the catalog.
    #[error("the inference schemas are missing: {0}")]
    Schema(#[from] crate::bus::CodecError),
    /// The in-process model could not be loaded.
    #[error("cannot load the model for in-process instances")]
    Model(#[from] ModelError),
    /// An instance could not be turned into a backend.
    #[error("cannot connect the instances of model `{model}`")]
    Connect {
        model: String,
        #[source]
        source: ConnectError,
    },
    /// The batcher refused the settings.
    #[error(transparent)]
    Batcher(#[from] BatcherError),
    /// The batch settings changed while running could not be read.
    #[error(transparent)]
    Overrides(#[from] crate::bus::compacted::FollowError),
}

/// How long a starting batcher waits to read the batch settings changed while running.
const OVERRIDES_PATIENCE: Duration = Duration::from_secs(30);

/// Loads the model for `in-process` instances, if any model has one.
pub fn load_local_model(
    settings: &InferenceBatcherSettings,
) -> Result<Option<Arc<EmbeddingModel>>, InferenceWorkerError> {
    if !settings.needs_local_model() {
        return Ok(None);
    }
    Ok(Some(Arc::new(EmbeddingModel::load(&settings.model_dir)?)))
}

/// Builds every model's backend (one instance, or a pool of several) and starts the batcher.
/// `local_model` serves the `in-process` instances.
pub fn start_batcher(
    settings: &InferenceBatcherSettings,
    local_model: Option<Arc<EmbeddingModel>>,
    token: CancellationToken,
) -> Result<Arc<InferenceBatcher>, InferenceWorkerError> {
    settings.validate().map_err(|e| InferenceWorkerError::Config { key: e.key, message: e.message })?;
    let mut queues = Vec::with_capacity(settings.models.len());
    for (name, model) in &settings.models {
        let mut options = ConnectOptions::new(name.clone());
        options.request_timeout = settings.request_timeout;
        options.local_model = local_model.clone();
        let connect_error = |source| InferenceWorkerError::Connect { model: name.clone(), source };
        let backend: Arc<dyn EmbeddingBackend> = match model.instances.as_slice() {
            [one] => connect(one, &options).map_err(connect_error)?,
            several => {
                let pool =
                    connect_pool(name.clone(), several, &options, PoolOptions::default()).map_err(connect_error)?;
                // Probes /health in the background, so an instance whose breaker opened is put
                // back as soon as it answers again; it stops with the batcher's token.
                pool.spawn_health_watch(token.clone());
                pool
            }
        };
        info!(model = %name, instances = ?model.instances, "serving model");
        queues.push(ModelQueue { name: name.clone(), backend, settings: model.batching.clone() });
    }
    Ok(Arc::new(InferenceBatcher::start(queues, token)?))
}

/// The inference batcher worker.
pub struct InferenceWorker {
    batcher: Arc<InferenceBatcher>,
    results_topic: Arc<str>,
    result_schema: Arc<KnownSchema>,
    max_inputs_per_job: usize,
    max_text_bytes: usize,
    default_labels: Arc<LabelSet>,
    /// Lowercased names and aliases to the model's configured name.
    model_names: HashMap<String, String>,
}

impl InferenceWorker {
    /// A worker feeding `batcher` (see [`start_batcher`]).
    pub fn new(
        settings: &InferenceBatcherSettings,
        catalog: &SchemaCatalog,
        batcher: Arc<InferenceBatcher>,
    ) -> Result<InferenceWorker, InferenceWorkerError> {
        settings.validate().map_err(|e| InferenceWorkerError::Config { key: e.key, message: e.message })?;
        let default_labels = LabelSet::new(default_sentiment_labels()).ok_or_else(|| InferenceWorkerError::Config {
            key: "models".into(),
            message: "the default sentiment labels are empty or repeat a label".into(),
        })?;
        Ok(InferenceWorker {
            batcher,
            results_topic: Arc::from(settings.results_topic.as_str()),
            result_schema: catalog.schema_of::<InferenceResult>()?,
            max_inputs_per_job: settings.max_inputs_per_job,
            max_text_bytes: settings.max_text_bytes,
            default_labels: Arc::new(default_labels),
            model_names: settings.model_names(),
        })
    }

    /// The batcher, for its settings and learned latency curve.
    pub fn batcher(&self) -> &Arc<InferenceBatcher> {
        &self.batcher
    }

    /// The batcher's request for `job`, or why the job is rejected.
    fn validate(&self, job: &InferenceJob) -> Result<JobRequest, String> {
        let model = match self.model_names.get(&job.model.to_lowercase()) {
            Some(model) if self.batcher.serves(model) => model.clone(),
            _ => {
                let known: Vec<&str> = self.batcher.models().collect();
                return Err(format!("unknown model `{}` (this worker serves {})", job.model, known.join(", ")));
            }
        };
        if job.id.trim().is_empty() {
            return Err("the job has no id".into());
        }
        if job.inputs.is_empty() {
            return Err("the job has no inputs".into());
        }
        // Label descriptions are embedded too: they count as inputs.
        let labels = job.labels.as_ref().map_or(0, |labels| labels.len());
        if job.inputs.len() + labels > self.max_inputs_per_job {
            return Err(format!(
                "{} inputs and {labels} labels is more than the {} texts a job may carry",
                job.inputs.len(),
                self.max_inputs_per_job
            ));
        }
        let texts =
            job.inputs.iter().chain(job.labels.iter().flat_map(|labels| labels.iter().flat_map(|(l, d)| [l, d])));
        if let Some(long) = texts.map(String::len).find(|len| *len > self.max_text_bytes) {
            return Err(format!("a text of {long} bytes is longer than the {} a text may take", self.max_text_bytes));
        }
        let task = match job.task {
            JobTask::Embed => Task::Embed,
            JobTask::Classify => Task::Classify(match &job.labels {
                None => self.default_labels.clone(),
                Some(labels) => {
                    // Sorted by label so the same map always makes the same set (and cache key).
                    let sorted: BTreeMap<&String, &String> = labels.iter().collect();
                    let descriptions =
                        sorted.into_iter().map(|(label, text)| LabelDescription::new(label, text)).collect();
                    Arc::new(LabelSet::new(descriptions).ok_or("classify needs at least one label")?)
                }
            }),
        };
        Ok(JobRequest {
            id: job.id.clone(),
            model,
            task,
            inputs: job.inputs.clone(),
            priority: job.priority,
            issued_at: from_epoch_millis(job.issued_at),
            deadline: job.deadline.map(from_epoch_millis),
        })
    }
}

/// `millis` since the epoch as a time; before the epoch reads as the epoch.
fn from_epoch_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

impl Worker for InferenceWorker {
    fn name(&self) -> &'static str {
        InferenceBatcherSettings::NAME
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let job: InferenceJob = message.record()?;
        if let Some(reply_to) = job.reply_to.as_deref().filter(|topic| !is_valid_topic_name(topic)) {
            // Nothing can be sent there: say so on the results topic, dead-letter the job.
            let reason = format!("reply_to `{}` is not a valid Kafka topic name", reply_to.escape_debug());
            let answer =
                self.rejection(InferenceJob { reply_to: None, ..job }, reason.clone(), self.results_topic.clone());
            return Err(HandlerError::rejected_with_answer("invalid_reply_to", reason, answer.into_iter().collect()));
        }
        let outcome = match self.validate(&job) {
            Err(reason) => JobOutcome::not_run(JobStatus::Rejected, reason, from_epoch_millis(job.issued_at)),
            Ok(request) => match self.batcher.submit(request).await {
                Ok(outcome) => outcome,
                // Shutting down: fail transiently so nothing is committed and the job is
                // redelivered to whoever runs next.
                Err(BatcherError::Stopped(model)) => {
                    return Err(HandlerError::transient("batcher_stopped", format!("the batcher of {model} stopped")));
                }
                Err(error) => {
                    JobOutcome::not_run(JobStatus::Rejected, error.to_string(), from_epoch_millis(job.issued_at))
                }
            },
        };
        // Unknown model names come from publishers: never a label value.
        let model_label = if self.batcher.serves(&job.model) { job.model.clone() } else { "unknown".to_owned() };
        ::metrics::counter!(metric::JOBS, "model" => model_label, "status" => outcome.status.as_str()).increment(1);
        ::metrics::histogram!(metric::QUEUE_SECONDS, "priority" => job.priority.as_str())
            .record(outcome.queue_time_ms / 1000.0);

        let topic = self.reply_topic(&job);
        let key = job.id.clone().into_bytes();
        let result = wire::result_of(job.id, job.model, outcome, crate::clock::now_millis());
        let payload = SchemaCatalog::encode(&self.result_schema, &result)
            .map_err(|e| HandlerError::fatal("result_encoding", e.to_string()))?;
        Ok(vec![Outbound::new(topic, Some(key), payload)])
    }

    /// A `rejected` result in place of one the bus will not send: too large for a message (to
    /// the same topic), or to a `reply_to` that does not exist (to the results topic).
    fn refused(&self, message: &Inbound, refusal: &Refusal) -> Vec<Outbound> {
        let Ok(job) = message.record::<InferenceJob>() else { return Vec::new() };
        let topic = match refusal.cause {
            RefusalCause::TooLarge { .. } => refusal.topic.clone(),
            RefusalCause::InvalidTopic | RefusalCause::UnknownTopic => self.results_topic.clone(),
        };
        self.rejection(job, refusal.to_string(), topic).into_iter().collect()
    }
}

impl InferenceWorker {
    /// Where a job's result goes: its `reply_to`, else the results topic.
    fn reply_topic(&self, job: &InferenceJob) -> Arc<str> {
        match job.reply_to.as_deref().map(str::trim) {
            Some(reply_to) if !reply_to.is_empty() => Arc::from(reply_to),
            _ => self.results_topic.clone(),
        }
    }

    /// A `rejected` result of `job` with `reason`, to `topic`.
    fn rejection(&self, job: InferenceJob, reason: String, topic: Arc<str>) -> Option<Outbound> {
        let outcome = JobOutcome::not_run(JobStatus::Rejected, reason, from_epoch_millis(job.issued_at));
        let key = job.id.clone().into_bytes();
        let result = wire::result_of(job.id, job.model, outcome, crate::clock::now_millis());
        let payload = SchemaCatalog::encode(&self.result_schema, &result).ok()?;
        Some(Outbound::new(topic, Some(key), payload))
    }
}

/// `frontier run inference-batcher`: loads the model (for in-process instances), starts the
/// batcher and its admin endpoint, and feeds it jobs until `shutdown`. The batcher outlives the
/// consumer loop's shutdown: jobs in flight when it comes still get their results (within
/// `bus.shutdown_timeout`) before it stops.
pub async fn run(
    shared: &Shared,
    settings: &InferenceBatcherSettings,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
) -> Result<LoopReport, InferenceWorkerError> {
    let local_model = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || load_local_model(&settings))
            .await
            .map_err(|e| InferenceWorkerError::Join(e.to_string()))??
    };
    let batcher_token = CancellationToken::new();
    let batcher = start_batcher(settings, local_model, batcher_token.clone())?;
    // Settings changed while running are read back before the first job, then followed.
    let followers = TaskTracker::new();
    if let Some(topic) = &settings.overrides_topic {
        let snapshots =
            compacted::follow(&shared.kafka, topic, &followers, batcher_token.clone(), OVERRIDES_PATIENCE).await?;
        let configured = settings.models.iter().map(|(name, model)| (name.clone(), model.batching.clone())).collect();
        let (batcher, catalog) = (batcher.clone(), catalog.clone());
        followers.spawn(overrides::follow(batcher, configured, catalog, snapshots, batcher_token.clone()));
    }
    followers.close();
    if let Some(listen) = settings.admin_listen {
        let (batcher, token) = (batcher.clone(), batcher_token.clone());
        tokio::spawn(async move {
            if let Err(error) = admin::serve(listen, batcher, token).await {
                tracing::error!(%listen, %error, "the batch settings admin endpoint stopped");
            }
        });
    }
    let worker = Arc::new(InferenceWorker::new(settings, &catalog, batcher)?);
    let options = LoopOptions::new(&shared.bus, shared.group_id(settings), settings.input_topics());
    let report = match ConsumerLoop::new(&shared.kafka, options, worker, catalog) {
        Ok(consumer_loop) => consumer_loop.run(shutdown).await,
        Err(error) => Err(error),
    };
    batcher_token.cancel();
    followers.wait().await;
    Ok(report?)
}

/// Current batch settings of every model (for the admin endpoint and `frontier config`-like output).
pub fn batching_snapshot(batcher: &InferenceBatcher) -> HashMap<String, crate::inference::batcher::BatchingSettings> {
    batcher.models().filter_map(|model| Some((model.to_owned(), batcher.settings(model)?))).collect()
}
