//! VaR and CVaR: the quantile convention, historical tails of a known distribution, and
//! Monte-Carlo tails against the analytic normal ones.

use std::time::{Duration, Instant};

use super::support::{assert_close, normal_sample, prices_from_simple_returns, single_position};
use crate::analytics::montecarlo::{AssetReturns, simulate_tails};
use crate::analytics::stats::{mean, sample_covariance, sample_variance};
use crate::analytics::{AnalyticsError, PortfolioPosition, RiskConfig, historical_tail_risk, portfolio_risk};

/// Standard normal quantiles z_α (the tabulated 1.6449 and 2.3263) and expected shortfalls
/// E[-Z | -Z > z_α] = φ(z_α) / (1 - α) (2.0627 and 2.6652; e.g. McNeil, Frey & Embrechts,
/// "Quantitative Risk Management", ch. 2), to full double precision.
const NORMAL_VAR_95: f64 = 1.644_853_626_951_472;
const NORMAL_CVAR_95: f64 = 2.062_712_807_507_429;
const NORMAL_VAR_99: f64 = 2.326_347_874_040_841;
const NORMAL_CVAR_99: f64 = 2.665_214_220_345_806;

#[test]
fn historical_var_is_the_kth_worst_return_and_cvar_the_mean_of_the_k_worst() {
    // Returns -0.049, -0.048, ..., +0.050 (100 of them) in scrambled order. At 95 %,
    // k = ceil(100 × 0.05) = 5: VaR = -(5th worst) = 0.045, CVaR = -mean(5 worst) = 0.047.
    // At 99 %, k = 1: both are the worst loss, 0.049.
    let returns: Vec<f64> = (0..100).map(|i| ((i * 37) % 100 + 1) as f64).map(|rank| (rank - 50.0) / 1000.0).collect();
    let at_95 = historical_tail_risk(&returns, 0.95).unwrap();
    assert_close(at_95.var_daily, 0.045, 1e-15, "VaR95");
    assert_close(at_95.cvar_daily, 0.047, 1e-15, "CVaR95");
    let at_99 = historical_tail_risk(&returns, 0.99).unwrap();
    assert_close(at_99.var_daily, 0.049, 1e-15, "VaR99");
    assert_close(at_99.cvar_daily, 0.049, 1e-15, "CVaR99");
    assert!(matches!(
        historical_tail_risk(&returns, 1.0),
        Err(AnalyticsError::InvalidParameter { name: "confidence", .. })
    ));
}

#[test]
fn historical_var_and_cvar_of_a_normal_sample_match_the_normal_quantiles() {
    // 200,000 seeded draws of N(0, 1 %²): VaR95 ≈ 1.645 %, CVaR95 ≈ 2.063 %, VaR99 ≈ 2.326 %,
    // CVaR99 ≈ 2.665 %. Asymptotic standard errors at this size (quantile:
    // sqrt(p(1-p)/n) / φ(z); expected shortfall: sqrt((Var(tail) + α(ES - VaR)²) / (n p))) are
    // 0.0047σ, 0.0055σ, 0.0084σ and 0.0103σ; the tolerances are about 5 of them.
    let sigma = 0.01;
    let returns = normal_sample(7, 200_000, 0.0, sigma);
    let at_95 = historical_tail_risk(&returns, 0.95).unwrap();
    let at_99 = historical_tail_risk(&returns, 0.99).unwrap();
    assert_close(at_95.var_daily, NORMAL_VAR_95 * sigma, 0.025 * sigma, "VaR95");
    assert_close(at_95.cvar_daily, NORMAL_CVAR_95 * sigma, 0.03 * sigma, "CVaR95");
    assert_close(at_99.var_daily, NORMAL_VAR_99 * sigma, 0.045 * sigma, "VaR99");
    assert_close(at_99.cvar_daily, NORMAL_CVAR_99 * sigma, 0.05 * sigma, "CVaR99");

    // The same returns as a price history through `portfolio.risk`: prices and back again cost
    // only rounding, so the historical figures agree to 1e-12.
    let closes = prices_from_simple_returns(100.0, &returns);
    let report = portfolio_risk(&single_position("NORM", &closes), None, &RiskConfig::default()).unwrap();
    assert_close(report.historical_var_95_daily, at_95.var_daily, 1e-12, "report VaR95");
    assert_close(report.historical_cvar_95_daily, at_95.cvar_daily, 1e-12, "report CVaR95");
    assert_close(report.historical_var_99_daily, at_99.var_daily, 1e-12, "report VaR99");
    assert_close(report.historical_cvar_99_daily, at_99.cvar_daily, 1e-12, "report CVaR99");
}

#[test]
fn monte_carlo_var_of_a_single_normal_asset_matches_the_analytic_normal_var() {
    // The fitted normal is N(μ̂, σ̂²) of the sample, so its analytic VaR is -(μ̂ - z σ̂) and its
    // CVaR -(μ̂ - σ̂ φ(z)/(1-α)). With 100,000 paths the Monte-Carlo standard errors are 0.0067σ̂
    // and 0.0078σ̂ at 95 %, 0.0118σ̂ and 0.0145σ̂ at 99 %; the tolerances are about 4 of them.
    let returns = normal_sample(11, 2_000, 0.0003, 0.012);
    let closes = prices_from_simple_returns(50.0, &returns);
    let config = RiskConfig { monte_carlo_paths: 100_000, seed: 3, risk_free_rate_annual: 0.0 };
    let report = portfolio_risk(&single_position("NORM", &closes), None, &config).unwrap();
    let (fitted_mean, fitted_sigma) = (mean(&returns), sample_variance(&returns).sqrt());
    let expect = |actual: f64, z_or_shortfall: f64, tolerance_in_sigmas: f64, what: &str| {
        let analytic = -(fitted_mean - z_or_shortfall * fitted_sigma);
        assert_close(actual, analytic, tolerance_in_sigmas * fitted_sigma, what);
    };
    expect(report.monte_carlo_var_95_daily, NORMAL_VAR_95, 0.03, "MC VaR95");
    expect(report.monte_carlo_cvar_95_daily, NORMAL_CVAR_95, 0.035, "MC CVaR95");
    expect(report.monte_carlo_var_99_daily, NORMAL_VAR_99, 0.05, "MC VaR99");
    expect(report.monte_carlo_cvar_99_daily, NORMAL_CVAR_99, 0.06, "MC CVaR99");
    assert_eq!(report.monte_carlo_paths, 100_000);
}

#[test]
fn monte_carlo_var_of_correlated_assets_matches_the_portfolio_normal_var() {
    // Two assets with correlation ~0.6 and a third that duplicates the first (a singular
    // covariance the Cholesky factor must absorb). A linear portfolio of multivariate normal
    // returns is normal with variance wᵀΣw, so its VaR is analytic; tolerances as in the
    // single-asset test (~4 Monte-Carlo standard errors at 100,000 paths).
    let market = normal_sample(21, 1_500, 0.0002, 0.010);
    let noise = normal_sample(22, 1_500, 0.0, 0.008);
    let second: Vec<f64> = market.iter().zip(&noise).map(|(m, e)| 0.0001 + 0.6 * m + e).collect();
    let (first_closes, second_closes) =
        (prices_from_simple_returns(100.0, &market), prices_from_simple_returns(30.0, &second));
    let weights = [0.3, 0.5, 0.2];
    let positions = [
        PortfolioPosition { symbol: "A", weight: weights[0], closes: &first_closes },
        PortfolioPosition { symbol: "B", weight: weights[1], closes: &second_closes },
        PortfolioPosition { symbol: "A2", weight: weights[2], closes: &first_closes },
    ];
    let config = RiskConfig { monte_carlo_paths: 100_000, seed: 5, risk_free_rate_annual: 0.0 };
    let report = portfolio_risk(&positions, None, &config).unwrap();

    let asset_returns = [&market, &second, &market];
    let portfolio_mean: f64 = weights.iter().zip(asset_returns).map(|(w, r)| w * mean(r)).sum();
    let mut portfolio_variance = 0.0;
    for (i, returns_i) in asset_returns.iter().enumerate() {
        for (j, returns_j) in asset_returns.iter().enumerate() {
            portfolio_variance += weights[i] * weights[j] * sample_covariance(returns_i, returns_j);
        }
    }
    let sigma = portfolio_variance.sqrt();
    assert_close(report.volatility_daily, sigma, 1e-12, "daily vol = sqrt(wᵀΣw)");
    assert_close(report.monte_carlo_var_95_daily, -(portfolio_mean - NORMAL_VAR_95 * sigma), 0.03 * sigma, "VaR95");
    assert_close(report.monte_carlo_cvar_99_daily, -(portfolio_mean - NORMAL_CVAR_99 * sigma), 0.06 * sigma, "CVaR99");
}

#[test]
fn monte_carlo_results_are_identical_for_the_same_seed() {
    let closes = prices_from_simple_returns(100.0, &normal_sample(41, 500, 0.0, 0.015));
    let run = |seed| {
        let config = RiskConfig { seed, ..RiskConfig::default() };
        portfolio_risk(&single_position("S", &closes), None, &config).unwrap()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9).monte_carlo_var_95_daily, run(10).monte_carlo_var_95_daily);
}

#[test]
#[ignore = "timing: run with `cargo test --release --lib analytics -- --ignored`"]
fn monte_carlo_with_10_000_paths_and_5_assets_takes_well_under_50_ms() {
    let days = 1_000;
    let mut returns = Vec::with_capacity(5 * days);
    for asset in 0..5 {
        returns.extend(normal_sample(60 + asset, days, 0.0003, 0.01 + 0.002 * asset as f64));
    }
    let assets = AssetReturns { symbols: &["A", "B", "C", "D", "E"], weights: &[0.2; 5], returns: &returns, days };
    let started = Instant::now();
    let runs = 20;
    for seed in 0..runs {
        simulate_tails(&assets, 10_000, seed).unwrap();
    }
    let per_run = started.elapsed() / runs as u32;
    println!("Monte-Carlo 10,000 paths × 5 assets: {per_run:?} per run");
    // Release builds take under 1 ms (measured 0.7 ms, fit included); the 10 ms limit keeps a
    // wide margin under the 50 ms budget for slow machines. Unoptimized builds run ~30× slower,
    // so there the budget itself is the limit.
    let limit = Duration::from_millis(if cfg!(debug_assertions) { 50 } else { 10 });
    assert!(per_run < limit, "{per_run:?} per run, limit {limit:?}");
}
