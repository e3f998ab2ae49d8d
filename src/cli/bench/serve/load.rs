//! The load of `frontier bench serve`: a key space of distinct requests and Zipf ranks over it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::cache::CacheKey;

/// `size` distinct requests: 60 % volatility (symbol x window), 30 % portfolios of 2 to 5
/// symbols, 10 % options on a symbol; in a seeded random order (the Zipf rank order).
pub(super) fn key_space(symbols: &[String], size: usize) -> Vec<(String, Value)> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let windows = [20, 30, 60, 90, 120, 250];
    let mut space = Vec::with_capacity(size);
    let mut seen = std::collections::HashSet::new();
    while space.len() < size {
        let pick: f64 = rng.random();
        let request = if pick < 0.6 {
            let symbol = &symbols[rng.random_range(0..symbols.len())];
            (
                "market.volatility".to_string(),
                json!({"symbol": symbol, "window_days": windows[rng.random_range(0..windows.len())]}),
            )
        } else if pick < 0.9 {
            let n = rng.random_range(2..=5);
            let mut chosen: Vec<&String> = Vec::new();
            while chosen.len() < n {
                let symbol = &symbols[rng.random_range(0..symbols.len())];
                if !chosen.contains(&symbol) {
                    chosen.push(symbol);
                }
            }
            let weights: serde_json::Map<String, Value> =
                chosen.iter().map(|s| (s.to_string(), json!(1.0 / n as f64))).collect();
            // Weights of 1/3 sum to 1 within the kind's tolerance.
            (
                "portfolio.risk".to_string(),
                json!({"symbols": chosen, "weights": weights, "window_days": 120, "paths": 1000}),
            )
        } else {
            let symbol = &symbols[rng.random_range(0..symbols.len())];
            let strike = 80 + 5 * rng.random_range(0..9);
            (
                "option.price".to_string(),
                json!({"symbol": symbol, "strike": strike, "expiry_days": 90, "right": "call"}),
            )
        };
        let key = CacheKey::for_request(&request.0, &request.1, "acme", &[]);
        if seen.insert(key) {
            space.push(request);
        }
    }
    space
}

/// Zipf ranks by inverse CDF over precomputed cumulative weights.
pub(in crate::cli::bench) struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub(in crate::cli::bench) fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    pub(in crate::cli::bench) fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let target = rng.random::<f64>() * total;
        self.cumulative.partition_point(|c| *c < target).min(self.cumulative.len() - 1)
    }
}
