//! Model instances the batcher sends batches to: the embedded model ([`InProcessBackend`]) and,
//! behind the same trait, any OpenAI-compatible embeddings endpoint.

mod in_process;

use futures::future::BoxFuture;

pub use in_process::InProcessBackend;

/// One model instance that turns a batch of texts into embeddings. Classification is built on
/// embeddings (zero-shot by cosine similarity), so embedding is the only call a backend needs.
///
/// Boxed futures rather than `async fn` so pools can hold `Arc<dyn EmbeddingBackend>`.
pub trait EmbeddingBackend: Send + Sync + 'static {
    /// Stable id of this instance, reported in results and metric labels (`local`, `http://127.0.0.1:8081`).
    fn id(&self) -> &str;

    /// Embeds `texts` in order, one unit-norm vector per text.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, BackendError>>;
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
