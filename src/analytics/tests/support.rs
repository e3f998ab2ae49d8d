//! Helpers shared by the analytics tests.

use crate::analytics::PortfolioPosition;
use crate::analytics::normal::NormalSampler;

/// Fails with both numbers and the tolerance when `actual` is farther than `tolerance` from
/// `expected`.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} ± {tolerance} (off by {})",
        (actual - expected).abs()
    );
}

/// `count` seeded draws from N(mean, std_dev²).
pub fn normal_sample(seed: u64, count: usize, mean: f64, std_dev: f64) -> Vec<f64> {
    let mut sampler = NormalSampler::new(seed, 0);
    (0..count).map(|_| mean + std_dev * sampler.next_standard_normal()).collect()
}

/// Closes starting at `start` whose daily simple returns are `returns`.
pub fn prices_from_simple_returns(start: f64, returns: &[f64]) -> Vec<f64> {
    let mut closes = Vec::with_capacity(returns.len() + 1);
    let mut price = start;
    closes.push(price);
    for simple_return in returns {
        price *= 1.0 + simple_return;
        closes.push(price);
    }
    closes
}

/// A one-position portfolio (weight 1) of `closes`.
pub fn single_position<'a>(symbol: &'a str, closes: &'a [f64]) -> [PortfolioPosition<'a>; 1] {
    [PortfolioPosition { symbol, weight: 1.0, closes }]
}
