//! `portfolio.risk`: tail risk, volatility, Sharpe ratio and beta of a fixed-weight portfolio
//! over aligned daily price histories.

use super::montecarlo::{AssetReturns, simulate_tails};
use super::returns::{PriceSeries, append_simple_returns};
use super::stats::{mean, sample_covariance, sample_variance};
use super::tail::tail_risk_in_place;
use super::{AnalyticsError, NamedValues, TRADING_DAYS_PER_YEAR};

pub use super::montecarlo::{MAXIMUM_MONTE_CARLO_PATHS, MINIMUM_MONTE_CARLO_PATHS};

/// How far from 1 the weights may sum (absorbs weights rounded to a few decimals).
pub const WEIGHT_SUM_TOLERANCE: f64 = 1e-6;

/// Monte-Carlo paths when the request names none: the 99 % tail then holds 100 paths, which
/// puts the sampling error of VaR99 near 1 % of its value (see the tests).
pub const DEFAULT_MONTE_CARLO_PATHS: usize = 10_000;

/// One position: a symbol's weight and its closing prices, aligned with the other positions'.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PortfolioPosition<'a> {
    /// The position's symbol.
    pub symbol: &'a str,
    /// Fraction of portfolio value; negative for a short. All weights sum to 1.
    pub weight: f64,
    /// Closing prices, oldest first, the same days as every other position.
    pub closes: &'a [f64],
}

/// Settings of a risk computation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskConfig {
    /// Simulated one-day scenarios for Monte-Carlo VaR/CVaR ([`MINIMUM_MONTE_CARLO_PATHS`] to
    /// [`MAXIMUM_MONTE_CARLO_PATHS`]).
    pub monte_carlo_paths: usize,
    /// Seed of the Monte-Carlo generator: the same seed gives the same numbers on any machine.
    pub seed: u64,
    /// Annual risk-free rate for the Sharpe ratio (0.04 = 4 %).
    pub risk_free_rate_annual: f64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self { monte_carlo_paths: DEFAULT_MONTE_CARLO_PATHS, seed: 0, risk_free_rate_annual: 0.0 }
    }
}

/// Risk of a portfolio over its window. VaR and CVaR are one-day losses as positive fractions of
/// portfolio value, with the quantile convention of [`super::tail`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PortfolioRiskReport {
    /// Daily portfolio returns in the window.
    pub return_count: usize,
    /// Mean daily portfolio simple return.
    pub mean_return_daily: f64,
    /// Mean daily return × 252 (arithmetic annualization).
    pub mean_return_annualized: f64,
    /// Sample standard deviation of daily portfolio returns.
    pub volatility_daily: f64,
    /// Daily volatility × sqrt(252).
    pub volatility_annualized: f64,
    /// Historical one-day VaR at 95 %.
    pub historical_var_95_daily: f64,
    /// Historical one-day CVaR (expected shortfall) at 95 %.
    pub historical_cvar_95_daily: f64,
    /// Historical one-day VaR at 99 %.
    pub historical_var_99_daily: f64,
    /// Historical one-day CVaR at 99 %.
    pub historical_cvar_99_daily: f64,
    /// Monte-Carlo one-day VaR at 95 % (multivariate normal fitted to the asset returns).
    pub monte_carlo_var_95_daily: f64,
    /// Monte-Carlo one-day CVaR at 95 %.
    pub monte_carlo_cvar_95_daily: f64,
    /// Monte-Carlo one-day VaR at 99 %.
    pub monte_carlo_var_99_daily: f64,
    /// Monte-Carlo one-day CVaR at 99 %.
    pub monte_carlo_cvar_99_daily: f64,
    /// Simulated paths behind the Monte-Carlo figures.
    pub monte_carlo_paths: usize,
    /// (annualized mean return - risk-free rate) / annualized volatility; `None` when the
    /// portfolio's returns do not vary.
    pub sharpe_ratio_annualized: Option<f64>,
    /// cov(portfolio, benchmark) / var(benchmark) of daily simple returns; `None` without a
    /// benchmark.
    pub beta: Option<f64>,
}

impl NamedValues for PortfolioRiskReport {
    fn to_named_values(&self) -> Vec<(&'static str, f64)> {
        let mut values = vec![
            ("return_count", self.return_count as f64),
            ("mean_return_daily", self.mean_return_daily),
            ("mean_return_annualized", self.mean_return_annualized),
            ("volatility_daily", self.volatility_daily),
            ("volatility_annualized", self.volatility_annualized),
            ("historical_var_95_daily", self.historical_var_95_daily),
            ("historical_cvar_95_daily", self.historical_cvar_95_daily),
            ("historical_var_99_daily", self.historical_var_99_daily),
            ("historical_cvar_99_daily", self.historical_cvar_99_daily),
            ("monte_carlo_var_95_daily", self.monte_carlo_var_95_daily),
            ("monte_carlo_cvar_95_daily", self.monte_carlo_cvar_95_daily),
            ("monte_carlo_var_99_daily", self.monte_carlo_var_99_daily),
            ("monte_carlo_cvar_99_daily", self.monte_carlo_cvar_99_daily),
            ("monte_carlo_paths", self.monte_carlo_paths as f64),
        ];
        if let Some(sharpe) = self.sharpe_ratio_annualized {
            values.push(("sharpe_ratio_annualized", sharpe));
        }
        if let Some(beta) = self.beta {
            values.push(("beta", beta));
        }
        values
    }
}

/// Daily portfolio returns `sum_i w_i R_i,t` from the positions' simple returns: a portfolio
/// rebalanced to its weights every day. Validates prices, weights and alignment.
pub fn portfolio_daily_returns(positions: &[PortfolioPosition<'_>]) -> Result<Vec<f64>, AnalyticsError> {
    let asset_returns = validated_asset_returns(positions)?;
    Ok(weighted_returns(positions, &asset_returns))
}

/// Computes `portfolio.risk` for `positions` over their (already windowed) histories, with an
/// optional `benchmark` covering the same days for beta.
pub fn portfolio_risk(
    positions: &[PortfolioPosition<'_>],
    benchmark: Option<PriceSeries<'_>>,
    config: &RiskConfig,
) -> Result<PortfolioRiskReport, AnalyticsError> {
    if !config.risk_free_rate_annual.is_finite() {
        return Err(AnalyticsError::InvalidParameter {
            name: "risk_free_rate_annual",
            value: config.risk_free_rate_annual,
            requirement: "must be a finite number",
        });
    }
    let asset_returns = validated_asset_returns(positions)?;
    let portfolio_returns = weighted_returns(positions, &asset_returns);
    let days = portfolio_returns.len();

    // Validation above guarantees a first position; its symbol names the reference history.
    let reference_symbol = positions.first().map_or("", |position| position.symbol);
    let beta = benchmark.map(|benchmark| beta_against(&portfolio_returns, benchmark, reference_symbol)).transpose()?;

    let mean_return_daily = mean(&portfolio_returns);
    let volatility_daily = sample_variance(&portfolio_returns).sqrt();
    let mean_return_annualized = mean_return_daily * TRADING_DAYS_PER_YEAR;
    let volatility_annualized = volatility_daily * TRADING_DAYS_PER_YEAR.sqrt();
    let sharpe_ratio_annualized = (volatility_annualized > 0.0)
        .then(|| (mean_return_annualized - config.risk_free_rate_annual) / volatility_annualized);

    let symbols: Vec<&str> = positions.iter().map(|position| position.symbol).collect();
    let weights: Vec<f64> = positions.iter().map(|position| position.weight).collect();
    let simulated = simulate_tails(
        &AssetReturns { symbols: &symbols, weights: &weights, returns: &asset_returns, days },
        config.monte_carlo_paths,
        config.seed,
    )?;

    // The returns are not needed in order any more; the tail selection may reorder them.
    let mut historical_sample = portfolio_returns;
    let historical_95 = tail_risk_in_place(&mut historical_sample, 0.95);
    let historical_99 = tail_risk_in_place(&mut historical_sample, 0.99);

    Ok(PortfolioRiskReport {
        return_count: days,
        mean_return_daily,
        mean_return_annualized,
        volatility_daily,
        volatility_annualized,
        historical_var_95_daily: historical_95.var_daily,
        historical_cvar_95_daily: historical_95.cvar_daily,
        historical_var_99_daily: historical_99.var_daily,
        historical_cvar_99_daily: historical_99.cvar_daily,
        monte_carlo_var_95_daily: simulated.at_95.var_daily,
        monte_carlo_cvar_95_daily: simulated.at_95.cvar_daily,
        monte_carlo_var_99_daily: simulated.at_99.var_daily,
        monte_carlo_cvar_99_daily: simulated.at_99.cvar_daily,
        monte_carlo_paths: config.monte_carlo_paths,
        sharpe_ratio_annualized,
        beta,
    })
}

/// Checks the positions and returns their simple returns, asset-major in one buffer.
fn validated_asset_returns(positions: &[PortfolioPosition<'_>]) -> Result<Vec<f64>, AnalyticsError> {
    let first = positions.first().ok_or(AnalyticsError::EmptyPortfolio)?;
    let mut weight_sum = 0.0;
    for position in positions {
        if !position.weight.is_finite() {
            return Err(AnalyticsError::NonFiniteWeight {
                symbol: position.symbol.to_owned(),
                weight: position.weight,
            });
        }
        weight_sum += position.weight;
        PriceSeries::new(position.symbol, position.closes).validate()?;
        if position.closes.len() != first.closes.len() {
            return Err(AnalyticsError::MisalignedHistory {
                symbol: position.symbol.to_owned(),
                actual: position.closes.len(),
                reference_symbol: first.symbol.to_owned(),
                expected: first.closes.len(),
            });
        }
    }
    if (weight_sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        return Err(AnalyticsError::WeightsDoNotSumToOne { sum: weight_sum, tolerance: WEIGHT_SUM_TOLERANCE });
    }
    let days = first.closes.len() - 1;
    let mut returns = Vec::with_capacity(days * positions.len());
    for position in positions {
        append_simple_returns(position.closes, &mut returns);
    }
    Ok(returns)
}

/// Weighted daily portfolio returns from asset-major asset returns.
fn weighted_returns(positions: &[PortfolioPosition<'_>], asset_returns: &[f64]) -> Vec<f64> {
    let days = asset_returns.len() / positions.len();
    let mut portfolio = vec![0.0; days];
    for (position, returns) in positions.iter().zip(asset_returns.chunks_exact(days)) {
        for (total, asset_return) in portfolio.iter_mut().zip(returns) {
            *total += position.weight * asset_return;
        }
    }
    portfolio
}

/// Beta of the portfolio's returns against the benchmark's simple returns over the same days.
fn beta_against(
    portfolio_returns: &[f64],
    benchmark: PriceSeries<'_>,
    reference_symbol: &str,
) -> Result<f64, AnalyticsError> {
    benchmark.validate()?;
    if benchmark.closes.len() != portfolio_returns.len() + 1 {
        return Err(AnalyticsError::MisalignedHistory {
            symbol: benchmark.symbol.to_owned(),
            actual: benchmark.closes.len(),
            reference_symbol: reference_symbol.to_owned(),
            expected: portfolio_returns.len() + 1,
        });
    }
    let mut benchmark_returns = Vec::with_capacity(portfolio_returns.len());
    append_simple_returns(benchmark.closes, &mut benchmark_returns);
    let benchmark_variance = sample_variance(&benchmark_returns);
    if benchmark_variance <= 0.0 {
        return Err(AnalyticsError::DegenerateBenchmark { symbol: benchmark.symbol.to_owned() });
    }
    Ok(sample_covariance(portfolio_returns, &benchmark_returns) / benchmark_variance)
}
