//! Offline throughput of [`EmbeddingModel`], for benchmarks and capacity planning.

use std::time::Instant;

use super::{EmbeddingModel, ModelError};

/// Texts per second that `model` embeds `texts` at, `batch_size` texts per forward pass,
/// tokenization and pooling included (the whole of [`EmbeddingModel::embed_in_batches`]).
///
/// One batch is embedded first and not timed, so one-off costs (candle's thread pool
/// starting, the first touch of the weights) do not count. The figure depends on the text
/// lengths: pass texts like the ones the caller will embed.
pub fn throughput(model: &EmbeddingModel, texts: &[String], batch_size: usize) -> Result<f64, ModelError> {
    if texts.is_empty() {
        return Err(ModelError::InvalidArgument("throughput needs at least one text".to_owned()));
    }
    let warm_up = &texts[..batch_size.clamp(1, texts.len())];
    model.embed_in_batches(warm_up, batch_size)?;

    let started = Instant::now();
    model.embed_in_batches(texts, batch_size)?;
    // A clock too coarse to see the run must not turn into an infinite rate.
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok(texts.len() as f64 / seconds)
}
