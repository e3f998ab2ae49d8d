//! Zero-shot classification: a text gets the label whose description it is most similar to.

use super::{EmbeddingModel, ModelError};

/// Cosine similarities are multiplied by this before the softmax. all-MiniLM-L6-v2 was trained
/// with sentence-transformers' MultipleNegativesRankingLoss, a softmax over cosine similarities
/// times 20, so at this scale the scores read like the model's own match probabilities; at
/// scale 1 every label would get about 1/n, since cosines differ by only a few tenths.
pub const SIMILARITY_SCALE: f32 = 20.0;

/// A label and the text that describes it; texts are compared to the description.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelDescription {
    /// What a classified text is tagged with, e.g. `negative`.
    pub label: String,
    /// A sentence that reads like a typical text of this label (the model compares texts to
    /// texts, so a headline-like description works better than a definition).
    pub description: String,
}

impl LabelDescription {
    /// A label with its description.
    pub fn new(label: impl Into<String>, description: impl Into<String>) -> Self {
        LabelDescription { label: label.into(), description: description.into() }
    }
}

/// One label's share of a text's classification.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    /// The label.
    pub label: String,
    /// Its softmax probability: the scores of one text add up to 1.
    pub score: f32,
}

/// The result for one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The label with the highest score (the first such label on a tie).
    pub label: String,
    /// Every label's score, in the order the labels were given.
    pub scores: Vec<LabelScore>,
}

/// Sentiment of financial news, as seen by an investor in the company or market named:
/// `positive`, `negative` and `neutral`.
///
/// The descriptions are written as headlines because the model matches texts to similar
/// texts. On 28 hand-written headlines (16 used to choose the wording, 12 held out) they got
/// 26 right; the misses were mild (a CFO appointment read as positive, a drug-trial success
/// as neutral). Treat scores under about 0.6 as uncertain.
pub fn default_sentiment_labels() -> Vec<LabelDescription> {
    vec![
        LabelDescription::new(
            "positive",
            "Shares surge to a record high as the company posts strong profit growth, beats forecasts \
             and raises its outlook",
        ),
        LabelDescription::new(
            "negative",
            "Shares plunge to a record low as the company posts heavy losses, misses forecasts and \
             faces a fraud scandal",
        ),
        LabelDescription::new(
            "neutral",
            "Shares flat as the company announces the date of its annual meeting, results in line \
             with expectations",
        ),
    ]
}

impl EmbeddingModel {
    /// Scores each text against each label by the cosine similarity of their embeddings,
    /// then a softmax over the similarities times [`SIMILARITY_SCALE`]. Results are in the
    /// order of `texts`. Fails on an empty label list or duplicate labels.
    pub fn classify(&self, texts: &[String], labels: &[LabelDescription]) -> Result<Vec<Classification>, ModelError> {
        if labels.is_empty() {
            return Err(ModelError::InvalidArgument("zero-shot classification needs at least one label".to_owned()));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(duplicate) = labels.iter().find(|label| !seen.insert(label.label.as_str())) {
            return Err(ModelError::InvalidArgument(format!("label {:?} is given twice", duplicate.label)));
        }
        let descriptions: Vec<String> = labels.iter().map(|label| label.description.clone()).collect();
        let label_vectors = self.embed(&descriptions)?;
        let text_vectors = self.embed(texts)?;

        Ok(classify_embeddings(&text_vectors, &label_vectors, labels))
    }
}

/// Classifies texts from embeddings already computed: for each text vector, a softmax over its
/// cosine similarities (times [`SIMILARITY_SCALE`]) with `label_vectors`, which are the
/// embeddings of the labels' descriptions in label order. All vectors must be unit-norm (as
/// [`EmbeddingModel::embed`] gives them). [`EmbeddingModel::classify`] and the batcher, which
/// embeds the texts of many jobs at once and caches label embeddings, share this.
pub fn classify_embeddings(
    text_vectors: &[Vec<f32>],
    label_vectors: &[Vec<f32>],
    labels: &[LabelDescription],
) -> Vec<Classification> {
    text_vectors
        .iter()
        .map(|text_vector| {
            // Both sides are unit vectors, so the dot product is the cosine similarity.
            let logits: Vec<f32> =
                label_vectors.iter().map(|label_vector| dot(text_vector, label_vector) * SIMILARITY_SCALE).collect();
            let probabilities = softmax(&logits);
            let best = argmax(&probabilities);
            Classification {
                label: labels.get(best).map(|label| label.label.clone()).unwrap_or_default(),
                scores: labels
                    .iter()
                    .zip(probabilities)
                    .map(|(label, score)| LabelScore { label: label.label.clone(), score })
                    .collect(),
            }
        })
        .collect()
}

/// Dot product of two equally long vectors.
pub(super) fn dot(left: &[f32], right: &[f32]) -> f32 {
    left.iter().zip(right).map(|(l, r)| l * r).sum()
}

/// Softmax, shifted by the maximum so large logits cannot overflow `exp`.
pub(super) fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exponentials: Vec<f32> = logits.iter().map(|logit| (logit - max).exp()).collect();
    let total: f32 = exponentials.iter().sum();
    exponentials.iter().map(|value| value / total).collect()
}

/// Index of the largest value, the first one on a tie; 0 for an empty slice.
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best] {
            best = index;
        }
    }
    best
}
