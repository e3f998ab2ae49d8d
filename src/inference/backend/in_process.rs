//! The embedded all-MiniLM-L6-v2, as a backend.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{BackendError, Embedded, EmbeddingBackend};
use crate::inference::model::EmbeddingModel;

/// The model loaded in this process. Its calls are CPU-bound and already use every core
/// (candle's rayon pool), so they run on tokio's blocking pool and one batch at a time: two
/// batches at once would only split the same cores and make both late.
#[derive(Debug, Clone)]
pub struct InProcessBackend {
    id: String,
    model: Arc<EmbeddingModel>,
    one_at_a_time: Arc<tokio::sync::Semaphore>,
}

impl InProcessBackend {
    /// Wraps a loaded model; `id` names it in results (`local` by default in config).
    pub fn new(id: impl Into<String>, model: Arc<EmbeddingModel>) -> Self {
        InProcessBackend { id: id.into(), model, one_at_a_time: Arc::new(tokio::sync::Semaphore::new(1)) }
    }

    /// The model itself, for its dimension or offline measurements.
    pub fn model(&self) -> &Arc<EmbeddingModel> {
        &self.model
    }
}

impl EmbeddingBackend for InProcessBackend {
    fn id(&self) -> &str {
        &self.id
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Embedded, BackendError>> {
        Box::pin(async move {
            let failed = |reason: String| BackendError::Failed { instance: self.id.clone(), reason };
            // The semaphore is never closed, so acquiring only fails if it were; say so rather than panic.
            let permit = Arc::clone(&self.one_at_a_time).acquire_owned().await.map_err(|e| failed(e.to_string()))?;
            let model = Arc::clone(&self.model);
            // The permit goes with the blocking task: if the caller gives up (a client hung up
            // on model-serve), the batch still runs to its end, and the next waits for it.
            let vectors = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                model.embed(&texts)
            })
            .await
            .map_err(|e| failed(format!("inference task ended abnormally: {e}")))?
            .map_err(|e| failed(e.to_string()))?;
            Ok(Embedded { vectors, instance: self.id.clone() })
        })
    }
}
