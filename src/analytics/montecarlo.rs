//! Monte-Carlo VaR/CVaR: a multivariate normal fitted to the assets' daily simple returns,
//! sampled through the Cholesky factor of its covariance with a seeded ChaCha8 stream.

use super::AnalyticsError;
use super::linalg::cholesky_lower;
use super::normal::NormalSampler;
use super::stats::{mean, sample_covariance};
use super::tail::{TailRisk, tail_risk_in_place};

/// The fewest paths accepted: at 99 % confidence, 100 paths put exactly one in the tail.
pub const MINIMUM_MONTE_CARLO_PATHS: usize = 100;

/// The most paths accepted: 8 MB of simulated returns and well under a second per request.
pub const MAXIMUM_MONTE_CARLO_PATHS: usize = 1_000_000;

/// Simulated one-day tails of a portfolio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MonteCarloTails {
    pub at_95: TailRisk,
    pub at_99: TailRisk,
}

/// Fitted asset returns, asset-major: asset `i`'s daily returns are
/// `returns[i * days..(i + 1) * days]`.
pub(crate) struct AssetReturns<'a> {
    pub symbols: &'a [&'a str],
    pub weights: &'a [f64],
    pub returns: &'a [f64],
    pub days: usize,
}

/// Simulates `paths` one-day portfolio returns `w · (mu + L z)`, `z` standard normal, and takes
/// their 95 % and 99 % tails (quantile convention in [`super::tail`]).
///
/// Each path builds every asset's return before weighting it, which costs `n²/2` multiply-adds
/// for `n` assets where a linear portfolio could use the single loading vector `Lᵀw`; it keeps
/// the simulated asset returns at hand for positions that are not linear in them, and at 5
/// assets the normal draws dominate anyway. One buffer of `paths` returns is the only
/// allocation that grows with the path count.
pub(crate) fn simulate_tails(
    assets: &AssetReturns<'_>,
    paths: usize,
    seed: u64,
) -> Result<MonteCarloTails, AnalyticsError> {
    if !(MINIMUM_MONTE_CARLO_PATHS..=MAXIMUM_MONTE_CARLO_PATHS).contains(&paths) {
        return Err(AnalyticsError::MonteCarloPathsOutOfRange {
            paths,
            minimum: MINIMUM_MONTE_CARLO_PATHS,
            maximum: MAXIMUM_MONTE_CARLO_PATHS,
        });
    }
    let asset_count = assets.weights.len();
    let series = |asset: usize| &assets.returns[asset * assets.days..(asset + 1) * assets.days];

    let means: Vec<f64> = (0..asset_count).map(|asset| mean(series(asset))).collect();
    let mut covariance = vec![0.0; asset_count * asset_count];
    for row in 0..asset_count {
        for column in 0..=row {
            let value = sample_covariance(series(row), series(column));
            covariance[row * asset_count + column] = value;
            covariance[column * asset_count + row] = value;
        }
    }
    let lower = cholesky_lower(&covariance, asset_count).map_err(|failure| {
        AnalyticsError::CovarianceNotPositiveSemiDefinite {
            symbol: assets.symbols[failure.index].to_owned(),
            pivot: failure.pivot,
        }
    })?;

    let mut sampler = NormalSampler::new(seed, 0);
    let mut shocks = vec![0.0; asset_count];
    let mut portfolio_returns = Vec::with_capacity(paths);
    for _ in 0..paths {
        for shock in shocks.iter_mut() {
            *shock = sampler.next_standard_normal();
        }
        let mut portfolio_return = 0.0;
        for asset in 0..asset_count {
            // L is lower-triangular: asset `i` loads on the first `i + 1` shocks only.
            let loadings = &lower[asset * asset_count..=asset * asset_count + asset];
            let correlated_shock: f64 =
                loadings.iter().zip(&shocks[..=asset]).map(|(loading, shock)| loading * shock).sum();
            portfolio_return += assets.weights[asset] * (means[asset] + correlated_shock);
        }
        portfolio_returns.push(portfolio_return);
    }

    // The 95 % pass reorders the sample; the 99 % pass works on the same multiset.
    let at_95 = tail_risk_in_place(&mut portfolio_returns, 0.95);
    let at_99 = tail_risk_in_place(&mut portfolio_returns, 0.99);
    Ok(MonteCarloTails { at_95, at_99 })
}
