//! [`EmbeddingModel`]: loading all-MiniLM-L6-v2 and turning texts into unit vectors.

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::ModelError;

/// The longest input in tokens, `[CLS]` and `[SEP]` included; longer texts are cut. This is
/// the model's `max_seq_length` in `sentence_bert_config.json` (what it was trained with),
/// not the 128 that its `tokenizer.json` carries, nor BERT's 512 positions.
pub const MAX_SEQUENCE_TOKENS: usize = 256;

/// What one more forward pass costs, in padded token rows (texts x tokens): on two cores a
/// pass of 64 headlines of ~21 tokens took 254 ms and two passes of 32 took 279 ms, ~0.19 ms
/// per token row, so a pass is worth ~130 of them. [`EmbeddingModel::embed`] splits a batch
/// only where that saves more padding than this.
const PASS_COST_TOKEN_ROWS: usize = 128;

/// The most texts in one forward pass of [`EmbeddingModel::embed`]: larger passes gained
/// nothing on two cores (128 ran as fast as 64).
pub const MAX_TEXTS_PER_PASS: usize = 128;

/// The most padded token rows in one forward pass of [`EmbeddingModel::embed`], which bounds
/// its memory (attention scores grow with texts x tokens²): 32 texts of the longest 256
/// tokens, the most the fixed passes of 32 it replaced ever held.
const MAX_TOKEN_ROWS_PER_PASS: usize = 32 * MAX_SEQUENCE_TOKENS;

/// sentence-transformers' guards: the token count and the vector norm are clamped to these
/// before dividing, so an all-padding row or a zero vector cannot give NaN.
const MIN_TOKEN_COUNT: f64 = 1e-9;
const MIN_NORM: f64 = 1e-12;

/// all-MiniLM-L6-v2 loaded for CPU inference: BERT weights plus its WordPiece tokenizer.
pub struct EmbeddingModel {
    bert: BertModel,
    tokenizer: Tokenizer,
    dimension: usize,
    device: Device,
}

impl std::fmt::Debug for EmbeddingModel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EmbeddingModel")
            .field("dimension", &self.dimension)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl EmbeddingModel {
    /// Loads the model from `dir`, a folder laid out by `ops/models` (`config.json`,
    /// `tokenizer.json`, `model.safetensors`). A missing file is a [`ModelError::MissingFile`]
    /// that names it and says to run `ops/models`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        // Check all three up front, so a half-unpacked folder reports the first missing file
        // instead of a parse error.
        let config_path = required_file(dir, "config.json")?;
        let tokenizer_path = required_file(dir, "tokenizer.json")?;
        let weights_path = required_file(dir, "model.safetensors")?;

        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|source| ModelError::ReadFile { path: config_path.clone(), source })?;
        let config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|source| ModelError::Config { path: config_path.clone(), source })?;

        let tokenizer = load_tokenizer(&tokenizer_path)?;

        // Read into memory rather than mmap: mmap needs `unsafe` (the file could change under
        // us), and the 90 MB are copied into tensors and released once loading is done.
        let weights = std::fs::read(&weights_path)
            .map_err(|source| ModelError::ReadFile { path: weights_path.clone(), source })?;
        let device = Device::Cpu;
        let weights_error = |source| ModelError::Weights { path: weights_path.clone(), source };
        let variables = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device).map_err(weights_error)?;
        let bert = BertModel::load(variables, &config).map_err(weights_error)?;

        Ok(EmbeddingModel { bert, tokenizer, dimension: config.hidden_size, device })
    }

    /// Length of every embedding: 384 for all-MiniLM-L6-v2.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// How many tokens the model reads of each text: `[CLS]` and `[SEP]` included, cut at
    /// [`MAX_SEQUENCE_TOKENS`] as [`embed`](Self::embed) cuts them (the `usage` an
    /// embeddings server reports).
    pub fn count_tokens(&self, texts: &[String]) -> Result<Vec<usize>, ModelError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self.tokenizer.encode_batch(inputs, true).map_err(|source| ModelError::Tokenize { source })?;
        Ok(encodings.iter().map(Encoding::len).collect())
    }

    /// One L2-normalized embedding per text, in the order given: the texts are sorted by token
    /// length and cut into forward passes where the padding saved is worth another pass (see
    /// [`padding_aware_passes`]), so a batch of similar texts runs as one pass and a mixed one
    /// does not pad its short texts to its longest. A text's vector does not depend on its
    /// batch beyond float rounding.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        let encodings = self.encode(texts)?;
        let mut shortest_first: Vec<usize> = (0..encodings.len()).collect();
        shortest_first.sort_by_key(|&index| encodings[index].len());
        let lengths: Vec<usize> = shortest_first.iter().map(|&index| encodings[index].len()).collect();
        let limits = PassLimits { texts: MAX_TEXTS_PER_PASS, token_rows: MAX_TOKEN_ROWS_PER_PASS };
        let passes = padding_aware_passes(&lengths, PASS_COST_TOKEN_ROWS, limits);
        self.run_passes(&encodings, &shortest_first, passes)
    }

    /// Like [`embed`](Self::embed) with exactly `batch_size` texts per forward pass (the last
    /// may have fewer), as sentence-transformers does: the texts are sorted by token length
    /// first, so a pass pads to the length of similar texts rather than to the longest text
    /// overall; the result order is the input order.
    pub fn embed_in_batches(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        if batch_size == 0 {
            return Err(ModelError::InvalidArgument("batch size must be at least 1".to_owned()));
        }
        let encodings = self.encode(texts)?;
        let mut longest_first: Vec<usize> = (0..encodings.len()).collect();
        longest_first.sort_by_key(|&index| std::cmp::Reverse(encodings[index].len()));
        let passes =
            (0..encodings.len()).step_by(batch_size).map(|start| start..(start + batch_size).min(encodings.len()));
        self.run_passes(&encodings, &longest_first, passes.collect())
    }

    fn encode(&self, texts: &[String]) -> Result<Vec<Encoding>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.tokenizer.encode_batch(inputs, true).map_err(|source| ModelError::Tokenize { source })
    }

    /// Embeds `encodings` in the order `order`, one forward pass per range of it, and puts
    /// each vector back at its text's place.
    fn run_passes(
        &self,
        encodings: &[Encoding],
        order: &[usize],
        passes: Vec<Range<usize>>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut embeddings = vec![Vec::new(); encodings.len()];
        for pass in passes {
            let indices = &order[pass];
            let pass_encodings: Vec<&Encoding> = indices.iter().map(|&index| &encodings[index]).collect();
            let vectors = self.embed_encodings(&pass_encodings)?;
            for (&index, vector) in indices.iter().zip(vectors) {
                embeddings[index] = vector;
            }
        }
        Ok(embeddings)
    }

    /// Pads one batch to its longest encoding, runs BERT, mean-pools over the real tokens
    /// and L2-normalizes.
    fn embed_encodings(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, ModelError> {
        let rows = encodings.len();
        let padded_length = encodings.iter().map(|encoding| encoding.len()).max().unwrap_or(0);
        // Padding id 0 is `[PAD]`; its positions are masked out of attention and pooling.
        let mut token_ids = vec![0u32; rows * padded_length];
        let mut attention_mask = vec![0u32; rows * padded_length];
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * padded_length;
            token_ids[start..start + encoding.len()].copy_from_slice(encoding.get_ids());
            attention_mask[start..start + encoding.len()].copy_from_slice(encoding.get_attention_mask());
        }

        let step = |step: &'static str| move |source| ModelError::Inference { step, source };
        let token_ids =
            Tensor::from_vec(token_ids, (rows, padded_length), &self.device).map_err(step("building token ids"))?;
        let attention_mask = Tensor::from_vec(attention_mask, (rows, padded_length), &self.device)
            .map_err(step("building the attention mask"))?;
        // Single-sentence inputs: every token is segment 0.
        let segment_ids = token_ids.zeros_like().map_err(step("building segment ids"))?;

        let token_states =
            self.bert.forward(&token_ids, &segment_ids, Some(&attention_mask)).map_err(step("running BERT"))?;
        let pooled = mean_pool(&token_states, &attention_mask).map_err(step("mean pooling"))?;
        let normalized = l2_normalize(&pooled).map_err(step("normalizing"))?;
        normalized.to_vec2::<f32>().map_err(step("reading the embeddings"))
    }
}

/// How large one forward pass may be.
#[derive(Debug, Clone, Copy)]
pub(super) struct PassLimits {
    /// Texts in the pass.
    pub texts: usize,
    /// Texts times the padded length; a single text longer than this still runs alone.
    pub token_rows: usize,
}

/// Cuts texts sorted by token length (`lengths`, ascending) into forward passes within
/// `limits` that cost the least, a pass costing `pass_cost` token rows plus its texts times
/// its longest length (every text is padded to it). Dynamic programming over the cut points:
/// O(texts x limits.texts), nothing next to a forward pass.
pub(super) fn padding_aware_passes(lengths: &[usize], pass_cost: usize, limits: PassLimits) -> Vec<Range<usize>> {
    let max_texts = limits.texts.max(1);
    // cost[i]: the cheapest way to embed the first i texts; start[i]: where its last pass starts.
    let mut cost = vec![0usize; lengths.len() + 1];
    let mut start = vec![0usize; lengths.len() + 1];
    for end in 1..=lengths.len() {
        // The last pass is lengths[begin..end]; sorted, so it pads to lengths[end - 1].
        let padded = lengths[end - 1];
        let (best_cost, best_begin) = (end.saturating_sub(max_texts)..end)
            .filter(|&begin| begin == end - 1 || (end - begin) * padded <= limits.token_rows)
            .map(|begin| (cost[begin] + pass_cost + (end - begin) * padded, begin))
            .min()
            // Never empty: the pass of the last text alone always qualifies.
            .unwrap_or((0, end - 1));
        cost[end] = best_cost;
        start[end] = best_begin;
    }
    let mut passes = Vec::new();
    let mut end = lengths.len();
    while end > 0 {
        passes.push(start[end]..end);
        end = start[end];
    }
    passes.reverse();
    passes
}

/// Mean of the token states over the positions whose mask is 1: `[rows, tokens, hidden]` and
/// `[rows, tokens]` give `[rows, hidden]`.
fn mean_pool(token_states: &Tensor, attention_mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = attention_mask.to_dtype(token_states.dtype())?.unsqueeze(D::Minus1)?;
    let summed = token_states.broadcast_mul(&mask)?.sum(1)?;
    let token_counts = mask.sum(1)?.clamp(MIN_TOKEN_COUNT, f64::MAX)?;
    summed.broadcast_div(&token_counts)
}

/// Each row divided by its Euclidean norm.
fn l2_normalize(rows: &Tensor) -> candle_core::Result<Tensor> {
    let norms = rows.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(MIN_NORM, f64::MAX)?;
    rows.broadcast_div(&norms)
}

/// `dir/name` if it is a file, else the error that tells the user to run `ops/models`.
fn required_file(dir: &Path, name: &str) -> Result<PathBuf, ModelError> {
    let path = dir.join(name);
    if path.is_file() { Ok(path) } else { Err(ModelError::MissingFile { path }) }
}

/// The model's tokenizer with sentence-transformers' settings: truncation at
/// [`MAX_SEQUENCE_TOKENS`] and no padding (the file asks for a fixed 128; batches are padded
/// by hand to their longest text instead).
fn load_tokenizer(path: &Path) -> Result<Tokenizer, ModelError> {
    let tokenizer_error = |source| ModelError::Tokenizer { path: path.to_path_buf(), source };
    let mut tokenizer = Tokenizer::from_file(path).map_err(tokenizer_error)?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: MAX_SEQUENCE_TOKENS, ..TruncationParams::default() }))
        .map_err(tokenizer_error)?;
    Ok(tokenizer)
}
