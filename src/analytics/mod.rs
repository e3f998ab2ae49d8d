//! Financial analytics: the pure computational core (no database, no I/O) behind the analytics
//! that the request-serving worker computes and caches.
//!
//! Inputs are daily closing prices, oldest first, one slice per symbol; the caller loads and
//! aligns them and picks the window (see [`returns::trailing_window`]). Every result is a plain
//! struct whose [`NamedValues::to_named_values`] gives the named doubles of a response's
//! `result` map.
//!
//! - `market.volatility`: [`volatility::market_volatility`].
//! - `portfolio.risk`: [`risk::portfolio_risk`] (historical and Monte-Carlo VaR/CVaR, volatility,
//!   Sharpe ratio, beta).
//! - `option.price`: [`options::price_option`] (Black-Scholes-Merton with Greeks for European
//!   options, a Cox-Ross-Rubinstein tree for American ones).
//! - `frontier seed`: [`synthetic::generate_synthetic_market`] (deterministic GBM prices).
//!
//! Conventions: 252 trading days a year; rates, yields and volatilities are annual and
//! continuously compounded; losses (VaR, CVaR) are positive fractions of portfolio value.

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
mod linalg;
mod montecarlo;
mod normal;
pub mod options;
pub mod returns;
pub mod risk;
mod stats;
pub mod synthetic;
pub mod tail;
pub mod volatility;

#[cfg(test)]
mod tests;

pub use error::AnalyticsError;
pub use options::{
    BinomialValuation, BlackScholesValuation, ExerciseStyle, OptionContract, OptionKind, OptionValuation, binomial_crr,
    black_scholes, price_option,
};
pub use returns::PriceSeries;
pub use risk::{PortfolioPosition, PortfolioRiskReport, RiskConfig, portfolio_risk};
pub use synthetic::{SyntheticConfig, SyntheticMarket, SyntheticSeries, generate_synthetic_market};
pub use tail::{TailRisk, historical_tail_risk};
pub use volatility::{VolatilityReport, market_volatility};

/// Trading days per year, used to annualize daily statistics (volatility scales with its
/// square root, mean returns linearly).
pub const TRADING_DAYS_PER_YEAR: f64 = 252.0;

/// A result that flattens into the named doubles of a response's `result` map.
pub trait NamedValues {
    /// The result's numbers, each under a stable snake_case name whose suffix gives its unit
    /// (`_daily`, `_annualized`, ...). Optional quantities that are undefined are left out.
    fn to_named_values(&self) -> Vec<(&'static str, f64)>;
}
