//! Adaptive batch sizing: latency against batch size, learned online as a straight line
//! (latency = fixed + per_input * size, which is what a forward pass over padded rows costs),
//! fitted by exponentially weighted least squares so the fit follows a machine whose load
//! changes. The batcher sends the largest batch whose predicted latency still meets the most
//! urgent deadline in the queue.

use std::time::Duration;

/// Weight of the newest observation; older ones fade by `1 - DECAY` each (~20 batches of memory).
const DECAY: f64 = 0.05;

/// The learned line, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyFit {
    /// Cost of a batch of any size (dispatch, the fixed part of a forward pass).
    pub fixed_ms: f64,
    /// Cost of each input.
    pub per_input_ms: f64,
}

impl LatencyFit {
    /// Predicted latency of a batch of `size` inputs.
    pub fn predict(&self, size: usize) -> Duration {
        Duration::from_secs_f64(((self.fixed_ms + self.per_input_ms * size as f64) / 1000.0).max(0.0))
    }

    /// The largest size in `1..=max` predicted to finish within `budget` (1 if none does: the
    /// most urgent job still goes, alone, as fast as it can).
    pub fn largest_within(&self, budget: Duration, max: usize) -> usize {
        let budget_ms = budget.as_secs_f64() * 1000.0;
        if self.per_input_ms <= f64::EPSILON {
            return if budget_ms >= self.fixed_ms { max } else { 1 };
        }
        // The epsilon keeps a batch that fits exactly from losing one input to float rounding.
        let fits = ((budget_ms - self.fixed_ms) / self.per_input_ms + 1e-6).floor();
        if fits < 1.0 { 1 } else { (fits as usize).min(max) }
    }
}

/// Exponentially weighted sums for the least-squares line through (size, latency).
#[derive(Debug, Clone, Default)]
pub struct LatencyModel {
    weight: f64,
    sum_size: f64,
    sum_latency: f64,
    sum_size_squared: f64,
    sum_size_latency: f64,
    observations: u64,
}

impl LatencyModel {
    /// Adds a batch of `size` inputs that took `latency`.
    pub fn observe(&mut self, size: usize, latency: Duration) {
        let (n, t) = (size as f64, latency.as_secs_f64() * 1000.0);
        let keep = if self.observations == 0 { 0.0 } else { 1.0 - DECAY };
        self.weight = self.weight * keep + 1.0;
        self.sum_size = self.sum_size * keep + n;
        self.sum_latency = self.sum_latency * keep + t;
        self.sum_size_squared = self.sum_size_squared * keep + n * n;
        self.sum_size_latency = self.sum_size_latency * keep + n * t;
        self.observations += 1;
    }

    /// Batches observed so far.
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// The current line; `None` before the first batch.
    pub fn fit(&self) -> Option<LatencyFit> {
        if self.observations == 0 || self.sum_size <= 0.0 {
            return None;
        }
        let mean_size = self.sum_size / self.weight;
        let mean_latency = self.sum_latency / self.weight;
        let variance = self.sum_size_squared / self.weight - mean_size * mean_size;
        // One size seen so far (or nearly): assume latency proportional to size, which
        // overestimates larger batches (their fixed cost is shared) — the safe side.
        if variance < 0.25 {
            return Some(LatencyFit { fixed_ms: 0.0, per_input_ms: mean_latency / mean_size });
        }
        let covariance = self.sum_size_latency / self.weight - mean_size * mean_latency;
        let per_input = covariance / variance;
        if per_input < 0.0 {
            // Noise made bigger batches look faster: trust only the mean.
            return Some(LatencyFit { fixed_ms: mean_latency, per_input_ms: 0.0 });
        }
        let fixed = (mean_latency - per_input * mean_size).max(0.0);
        Some(LatencyFit { fixed_ms: fixed, per_input_ms: per_input })
    }
}
