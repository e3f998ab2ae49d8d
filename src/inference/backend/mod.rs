//! Model instances the batcher sends batches to: the embedded model ([`InProcessBackend`]), any
//! OpenAI-compatible embeddings endpoint ([`OpenAiEmbeddingsClient`]), and a pool of instances
//! of one model behind the same trait ([`InstancePool`]). [`connect`] builds one from a config
//! string.

mod http;
mod in_process;
pub mod metrics;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::inference::model::EmbeddingModel;

pub use http::{HttpClientError, OpenAiEmbeddingsClient};
pub use in_process::InProcessBackend;
pub use pool::{BreakerSettings, BreakerState, CircuitBreaker, InstancePool, InstanceStatus, PoolError, PoolOptions};

/// The vectors of one batch and the instance that computed them.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// One unit-norm vector per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// [`EmbeddingBackend::id`] of the instance that answered: for a pool, the member that did
    /// the work, not the pool itself.
    pub instance: String,
}

/// One model instance that turns a batch of texts into embeddings. Classification is built on
/// embeddings (zero-shot by cosine similarity), so embedding is the only call a backend needs.
///
/// Boxed futures rather than `async fn` so pools can hold `Arc<dyn EmbeddingBackend>`.
pub trait EmbeddingBackend: Send + Sync + 'static {
    /// Stable id of this instance, reported in results and metric labels (`local`, `http://127.0.0.1:8081`).
    fn id(&self) -> &str;

    /// Embeds `texts` in order, one unit-norm vector per text, saying which instance answered.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Embedded, BackendError>>;

    /// Whether the instance is up and its model loaded, without running it (`GET /health` for a
    /// server). Pools use it to put a failed instance back; an embedded model is always ready.
    fn health(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Why a backend could not embed a batch.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The instance could not be reached or answered with a server error: worth retrying
    /// elsewhere, and a mark against the instance's circuit breaker.
    #[error("model instance {instance} is unavailable: {reason}")]
    Unavailable { instance: String, reason: String },
    /// The instance refused the input itself (4xx, invalid text): retrying elsewhere is pointless.
    #[error("model instance {instance} refused the batch: {reason}")]
    Refused { instance: String, reason: String },
    /// The model failed while running.
    #[error("model instance {instance} failed: {reason}")]
    Failed { instance: String, reason: String },
}

impl BackendError {
    /// The instance the error is about.
    pub fn instance(&self) -> &str {
        match self {
            BackendError::Unavailable { instance, .. }
            | BackendError::Refused { instance, .. }
            | BackendError::Failed { instance, .. } => instance,
        }
    }

    /// Whether another instance could succeed where this one failed: true for
    /// [`Unavailable`](Self::Unavailable) and [`Failed`](Self::Failed), false for a refused input.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, BackendError::Refused { .. })
    }

    /// Short kind for metric labels and logs: `unavailable`, `refused`, `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendError::Unavailable { .. } => "unavailable",
            BackendError::Refused { .. } => "refused",
            BackendError::Failed { .. } => "failed",
        }
    }
}

/// The config string that names the embedded model in [`connect`].
pub const IN_PROCESS_SPEC: &str = "in-process";

/// What [`connect`] needs besides the spec string.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The model name sent in each request's `model` field (`all-MiniLM-L6-v2`).
    pub model_name: String,
    /// How long establishing a TCP connection to an instance may take.
    pub connect_timeout: Duration,
    /// How long one embeddings request may take, queueing on the instance included.
    pub request_timeout: Duration,
    /// The model loaded in this process, for the `in-process` spec.
    pub local_model: Option<Arc<EmbeddingModel>>,
}

impl ConnectOptions {
    /// Options for `model_name` with the default timeouts (2 s to connect, 30 s per request)
    /// and no local model.
    pub fn new(model_name: impl Into<String>) -> Self {
        ConnectOptions {
            model_name: model_name.into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            local_model: None,
        }
    }
}

/// Why [`connect`] could not build a backend from its spec.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `in-process` was asked for but no model was loaded.
    #[error("backend `{IN_PROCESS_SPEC}` needs the model loaded in this process, and none was given")]
    NoLocalModel,
    /// The spec is neither `in-process` nor an `http://` URL (this build has no TLS: model
    /// instances are reached on a private network or loopback).
    #[error("backend spec `{spec}` is neither `{IN_PROCESS_SPEC}` nor an http:// base URL (https is not built in)")]
    UnknownSpec {
        /// The spec as given.
        spec: String,
    },
    /// The URL could not be turned into a client.
    #[error("cannot build a client for `{spec}`")]
    Http {
        /// The spec as given.
        spec: String,
        /// Why.
        #[source]
        source: HttpClientError,
    },
    /// The instances do not form a pool (none, or two with the same id).
    #[error("cannot pool the instances")]
    Pool(#[from] PoolError),
}

/// Builds one backend from a config string: `in-process` (the model in `options.local_model`,
/// id `local`) or the base URL of an OpenAI-compatible server (`http://127.0.0.1:8081`, with
/// or without a trailing `/v1`; the URL is the instance id).
pub fn connect(spec: &str, options: &ConnectOptions) -> Result<Arc<dyn EmbeddingBackend>, ConnectError> {
    let spec = spec.trim();
    if spec == IN_PROCESS_SPEC {
        let model = options.local_model.clone().ok_or(ConnectError::NoLocalModel)?;
        return Ok(Arc::new(InProcessBackend::new("local", model)));
    }
    if spec.starts_with("http://") {
        let client =
            OpenAiEmbeddingsClient::new(spec, &options.model_name, options.connect_timeout, options.request_timeout)
                .map_err(|source| ConnectError::Http { spec: spec.to_owned(), source })?;
        return Ok(Arc::new(client));
    }
    Err(ConnectError::UnknownSpec { spec: spec.to_owned() })
}

/// Builds an [`InstancePool`] named `id` over one backend per spec (see [`connect`]).
pub fn connect_pool(
    id: impl Into<String>,
    specs: &[String],
    options: &ConnectOptions,
    pool_options: PoolOptions,
) -> Result<Arc<InstancePool>, ConnectError> {
    let members = specs.iter().map(|spec| connect(spec, options)).collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(InstancePool::new(id, members, pool_options)?))
}
