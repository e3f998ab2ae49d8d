//! Offline throughput of [`EmbeddingModel`], for benchmarks and capacity planning.

use std::time::Instant;

use super::{EmbeddingModel, ModelError};

/// Headline-like texts of 8 to 30 words, the length of the news the platform embeds, all
/// distinct (so de-duplication cannot flatter a batched figure): the corpus throughput is
/// measured on, offline and through Kafka.
pub fn synthetic_headlines(count: usize) -> Vec<String> {
    let subjects = ["Acme Corp", "The central bank", "Global Mining Ltd", "A regional lender", "Tech giant Orbit"];
    let events = [
        "reported quarterly revenue above analyst estimates",
        "cut its full-year outlook citing weaker demand in Europe and rising input costs",
        "announced a share buyback",
        "faces a regulatory probe into its accounting practices after a whistleblower complaint",
        "kept interest rates unchanged",
        "agreed to acquire a smaller rival in an all-stock deal valued at about two billion dollars",
    ];
    (0..count)
        .map(|index| {
            let subject = subjects[index % subjects.len()];
            let event = events[(index / subjects.len()) % events.len()];
            format!("{subject} {event} (item {index}).")
        })
        .collect()
}

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
    texts_per_second(texts.len(), || model.embed_in_batches(texts, batch_size).map(drop))
}

/// `count` divided by the seconds `run` takes.
fn texts_per_second(count: usize, run: impl FnOnce() -> Result<(), ModelError>) -> Result<f64, ModelError> {
    let started = Instant::now();
    run()?;
    // A clock too coarse to see the run must not turn into an infinite rate.
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok(count as f64 / seconds)
}

/// Texts per second that `model` embeds `texts` at when they come `batch_size` at a time in
/// the order given, each batch on its own ([`EmbeddingModel::embed`]): what a batcher gets
/// that takes jobs in arrival order, against [`throughput`], which sorts all of `texts` by
/// length first and so pads almost nothing.
pub fn throughput_in_arrival_order(
    model: &EmbeddingModel,
    texts: &[String],
    batch_size: usize,
) -> Result<f64, ModelError> {
    if texts.is_empty() || batch_size == 0 {
        return Err(ModelError::InvalidArgument("throughput needs texts and a batch size of at least 1".to_owned()));
    }
    model.embed(&texts[..batch_size.min(texts.len())])?;
    texts_per_second(texts.len(), || texts.chunks(batch_size).try_for_each(|batch| model.embed(batch).map(drop)))
}
