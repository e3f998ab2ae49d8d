//! `market.volatility`: distribution of a symbol's daily log returns and its realized
//! volatility.

use super::returns::{PriceSeries, log_returns};
use super::stats::moments;
use super::{AnalyticsError, NamedValues, TRADING_DAYS_PER_YEAR};

/// Statistics of a symbol's daily log returns `ln(P_t / P_{t-1})` over its window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VolatilityReport {
    /// Daily log returns in the window (one fewer than the prices).
    pub return_count: usize,
    /// Mean daily log return.
    pub mean_return_daily: f64,
    /// Sample standard deviation (denominator n - 1) of daily log returns.
    pub std_dev_daily: f64,
    /// Skewness g1 = m3 / m2^1.5 (population central moments; 0 for a flat series).
    pub skewness: f64,
    /// Excess kurtosis g2 = m4 / m2^2 - 3 (population central moments; 0 for a flat series).
    pub excess_kurtosis: f64,
    /// Worst daily log return.
    pub min_return_daily: f64,
    /// Best daily log return.
    pub max_return_daily: f64,
    /// Realized volatility: daily standard deviation × sqrt(252).
    pub volatility_annualized: f64,
    /// Mean daily log return × 252: the continuously compounded annual growth rate.
    pub mean_return_annualized: f64,
}

impl NamedValues for VolatilityReport {
    fn to_named_values(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("return_count", self.return_count as f64),
            ("mean_return_daily", self.mean_return_daily),
            ("std_dev_daily", self.std_dev_daily),
            ("skewness", self.skewness),
            ("excess_kurtosis", self.excess_kurtosis),
            ("min_return_daily", self.min_return_daily),
            ("max_return_daily", self.max_return_daily),
            ("volatility_annualized", self.volatility_annualized),
            ("mean_return_annualized", self.mean_return_annualized),
        ]
    }
}

/// Computes `market.volatility` from a symbol's (already windowed) closes. Needs at least two
/// returns, and finite, positive prices.
pub fn market_volatility(series: PriceSeries<'_>) -> Result<VolatilityReport, AnalyticsError> {
    let returns = log_returns(series)?;
    let stats = moments(&returns);
    Ok(VolatilityReport {
        return_count: returns.len(),
        mean_return_daily: stats.mean,
        std_dev_daily: stats.std_dev,
        skewness: stats.skewness,
        excess_kurtosis: stats.excess_kurtosis,
        min_return_daily: stats.min,
        max_return_daily: stats.max,
        volatility_annualized: stats.std_dev * TRADING_DAYS_PER_YEAR.sqrt(),
        mean_return_annualized: stats.mean * TRADING_DAYS_PER_YEAR,
    })
}
