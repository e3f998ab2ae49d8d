//! Tests against the real all-MiniLM-L6-v2 in `models/` (fetched by `ops/models`). Without it
//! they fail, saying to run `ops/models`: a model that silently went untested is worse.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use super::classify::{dot, softmax};
use super::*;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_DIR)
}

/// The error and its sources on one line, as a user would need to read it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// Loaded once and shared by the tests in this binary (90 MB and a fraction of a second each).
fn model() -> &'static EmbeddingModel {
    static MODEL: OnceLock<Result<EmbeddingModel, String>> = OnceLock::new();
    match MODEL.get_or_init(|| EmbeddingModel::load(&model_dir()).map_err(|error| error_chain(&error))) {
        Ok(model) => model,
        Err(message) => panic!("this test needs all-MiniLM-L6-v2, which did not load: {message}"),
    }
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|text| text.to_string()).collect()
}

/// `reference.json`: all-MiniLM-L6-v2 run by sentence-transformers itself (see `reference.py`).
#[derive(Deserialize)]
struct Reference {
    sentences: Vec<ReferenceSentence>,
    cosines: Vec<ReferenceCosine>,
}

#[derive(Deserialize)]
struct ReferenceSentence {
    text: String,
    first: Vec<f32>,
    norm: f32,
}

#[derive(Deserialize)]
struct ReferenceCosine {
    a: usize,
    b: usize,
    cosine: f32,
}

/// Largest difference allowed from PyTorch's numbers: both compute in f32, in different
/// orders; the differences seen are near 1e-6, while a wrong pooling, truncation or
/// tokenization moves values by 1e-2 or more.
const REFERENCE_TOLERANCE: f32 = 1e-4;

#[test]
fn embeddings_match_the_sentence_transformers_reference() {
    let reference: Reference = serde_json::from_str(include_str!("reference.json")).expect("reference.json parses");
    let texts: Vec<String> = reference.sentences.iter().map(|sentence| sentence.text.clone()).collect();
    // Batches of two: still padded (the 256-token text shares its batch with the next
    // longest), at a quarter of the work of one batch of nine, which debug builds feel.
    let vectors = model().embed_in_batches(&texts, 2).expect("embedding works");

    let mut worst = 0f32;
    for (sentence, vector) in reference.sentences.iter().zip(&vectors) {
        let norm = dot(vector, vector).sqrt();
        assert!((norm - sentence.norm).abs() < REFERENCE_TOLERANCE, "norm {norm} for {:?}", sentence.text);
        for (dimension, (expected, actual)) in sentence.first.iter().zip(vector).enumerate() {
            worst = worst.max((expected - actual).abs());
            assert!(
                (expected - actual).abs() < REFERENCE_TOLERANCE,
                "dimension {dimension} of {:?}: sentence-transformers {expected}, candle {actual}",
                sentence.text
            );
        }
    }
    for pair in &reference.cosines {
        let cosine = dot(&vectors[pair.a], &vectors[pair.b]);
        worst = worst.max((cosine - pair.cosine).abs());
        assert!(
            (cosine - pair.cosine).abs() < REFERENCE_TOLERANCE,
            "cosine of {:?} and {:?}: sentence-transformers {}, candle {cosine}",
            reference.sentences[pair.a].text,
            reference.sentences[pair.b].text,
            pair.cosine
        );
    }
    println!("largest difference from sentence-transformers: {worst:e}");
}

#[test]
fn similarity_orders_sentence_pairs_like_the_original_model() {
    let vectors = model()
        .embed(&strings(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "A man is riding a horse.",
            "The stock market fell sharply today.",
        ]))
        .expect("embedding works");
    let bread = dot(&vectors[0], &vectors[1]);
    let horse = dot(&vectors[0], &vectors[2]);
    let market = dot(&vectors[0], &vectors[3]);
    assert!(bread > horse && horse > market, "expected bread {bread} > horse {horse} > market {market}");
}

#[test]
fn embeddings_are_unit_vectors_of_dimension_384() {
    let model = model();
    assert_eq!(model.dimension(), 384);
    let texts = strings(&["Short.", "", "A somewhat longer sentence about quarterly earnings and guidance."]);
    for (text, vector) in texts.iter().zip(model.embed(&texts).expect("embedding works")) {
        assert_eq!(vector.len(), 384, "length for {text:?}");
        let norm = dot(&vector, &vector).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm} for {text:?}");
    }
}

#[test]
fn same_text_gives_same_vector_whatever_its_batch() {
    let model = model();
    let text = "Oil prices steady as traders await OPEC decision".to_string();
    let alone = model.embed(std::slice::from_ref(&text)).expect("embedding works");
    let long = "Shares of the retailer slid in early trading after it cut its full-year outlook, \
                citing weaker consumer demand, higher freight costs and an unexpected inventory write-down."
        .to_string();
    // Padded to the long text, then in batches of one and two where the padding differs again.
    let beside_long = model.embed(&[long.clone(), text.clone()]).expect("embedding works");
    let small_batches = model.embed_in_batches(&[text.clone(), long, text], 2).expect("embedding works");
    for other in [&beside_long[1], &small_batches[0], &small_batches[2]] {
        let largest = alone[0].iter().zip(other).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(largest < 1e-5, "vectors differ by {largest} between batches");
    }
}

#[test]
fn sentiment_labels_clear_financial_headlines() {
    let cases = [
        ("Company shares plunge after massive accounting fraud revealed", "negative"),
        ("Company shares soar after record quarterly profits beat expectations", "positive"),
        ("Profit warning sends shares to five-year low", "negative"),
        ("Regulators fine bank $2 billion for money laundering failures", "negative"),
        ("Chipmaker's revenue jumps 40% on strong AI demand", "positive"),
        ("Retail sales beat forecasts, lifting consumer stocks", "positive"),
        ("Company to hold annual shareholder meeting on May 12", "neutral"),
    ];
    let texts: Vec<String> = cases.iter().map(|(text, _)| text.to_string()).collect();
    let results = model().classify(&texts, &default_sentiment_labels()).expect("classification works");
    for ((text, expected), result) in cases.iter().zip(&results) {
        println!("{text:?} -> {} {:?}", result.label, result.scores);
        assert_eq!(result.label, *expected, "for {text:?}: {:?}", result.scores);
        let total: f32 = result.scores.iter().map(|score| score.score).sum();
        assert!((total - 1.0).abs() < 1e-5, "scores add up to {total}");
        assert_eq!(result.scores.len(), 3);
    }
}

#[test]
fn classify_refuses_no_labels_and_duplicate_labels() {
    let texts = strings(&["Anything"]);
    let no_labels = model().classify(&texts, &[]);
    assert!(matches!(no_labels, Err(ModelError::InvalidArgument(_))), "{no_labels:?}");
    let twice = [LabelDescription::new("up", "Shares rise"), LabelDescription::new("up", "Shares rally")];
    let duplicate = model().classify(&texts, &twice);
    assert!(matches!(duplicate, Err(ModelError::InvalidArgument(_))), "{duplicate:?}");
}

#[test]
fn no_texts_give_no_vectors_and_batch_size_zero_is_refused() {
    assert!(model().embed(&[]).expect("embedding nothing works").is_empty());
    let zero = model().embed_in_batches(&strings(&["text"]), 0);
    assert!(matches!(zero, Err(ModelError::InvalidArgument(_))), "{zero:?}");
}

#[test]
fn missing_model_folder_names_the_file_and_ops_models() {
    let empty = tempfile::tempdir().expect("temp dir");
    let error = EmbeddingModel::load(empty.path()).expect_err("an empty folder is no model");
    let message = error.to_string();
    assert!(matches!(error, ModelError::MissingFile { .. }), "{error:?}");
    assert!(message.contains("config.json") && message.contains("run ops/models"), "{message}");
}

#[test]
fn softmax_sums_to_one_and_survives_large_logits() {
    let probabilities = softmax(&[1000.0, 999.0, -1000.0]);
    assert!(probabilities.iter().all(|p| p.is_finite()), "{probabilities:?}");
    assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!(probabilities[0] > probabilities[1] && probabilities[1] > probabilities[2]);
}

#[test]
fn throughput_per_batch_size() {
    let model = model();
    // Unoptimized candle is about 100x slower: a debug build only checks that the helper runs;
    // the release build gives the numbers worth reading
    // (`cargo test --release --lib inference::model::tests::throughput -- --nocapture`).
    let (corpus_size, batch_sizes): (usize, &[usize]) =
        if cfg!(debug_assertions) { (8, &[1, 8]) } else { (512, &[1, 8, 16, 32, 64]) };
    let texts = super::synthetic_headlines(corpus_size);
    println!("all-MiniLM-L6-v2 on {} candle threads, {} headlines:", compute_threads(), texts.len());
    for &batch_size in batch_sizes {
        let rate = throughput(model, &texts, batch_size).expect("throughput runs");
        assert!(rate > 0.0);
        println!("  batch size {batch_size:>2}: {rate:>7.1} sentences/s");
    }
}

#[test]
fn embedding_model_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EmbeddingModel>();
}

const LIMITS: embedding::PassLimits = embedding::PassLimits { texts: 128, token_rows: 8192 };

#[test]
fn texts_of_similar_length_run_as_one_forward_pass() {
    let lengths = [20, 20, 21, 22, 22, 23, 24, 25];
    assert_eq!(embedding::padding_aware_passes(&lengths, 128, LIMITS), vec![0..lengths.len()]);
}

#[test]
fn short_and_long_texts_run_in_separate_passes_when_the_padding_saved_is_worth_a_pass() {
    // 32 texts of 10 tokens padded to 100 would waste 2,880 token rows; a pass costs 128.
    let lengths: Vec<usize> = std::iter::repeat_n(10, 32).chain(std::iter::repeat_n(100, 32)).collect();
    assert_eq!(embedding::padding_aware_passes(&lengths, 128, LIMITS), [0..32, 32..64]);
    // One short text beside a long one is cheaper padded than run alone.
    assert_eq!(embedding::padding_aware_passes(&[10, 100], 128, LIMITS).len(), 1);
}

#[test]
fn no_forward_pass_holds_more_texts_or_token_rows_than_its_limits() {
    let passes = embedding::padding_aware_passes(&[16; 300], 128, LIMITS);
    assert!(passes.iter().all(|pass| pass.len() <= 128), "{passes:?}");
    assert_eq!(passes.iter().map(ExactSizeIterator::len).sum::<usize>(), 300);
    // Long texts: 32 of 256 tokens fill the token rows.
    let passes = embedding::padding_aware_passes(&[256; 100], 128, LIMITS);
    assert!(passes.iter().all(|pass| pass.len() * 256 <= 8192), "{passes:?}");
    assert_eq!(passes.iter().map(ExactSizeIterator::len).sum::<usize>(), 100);
    // A text longer than the budget still runs, alone.
    assert_eq!(embedding::padding_aware_passes(&[10_000], 128, LIMITS), vec![0..1]);
    assert!(embedding::padding_aware_passes(&[], 128, LIMITS).is_empty());
}
