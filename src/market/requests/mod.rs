//! The request kinds the serving worker answers: a request's `kind` and `params` parsed into a
//! typed [`Analysis`], its cache tags, and its computation over the price store.
//!
//! ```text
//! let request = Analysis::parse(&kind, &params)?;   // params: JSON object or JSON text
//! let tags = request.tags();                                // ["symbol:AAPL", ...]
//! let result = request.compute(&store).await?;              // {"volatility_annualized": 0.23, ...}
//! ```
//!
//! Results are flat JSON objects of numbers: exactly a response's `result` map. Errors carry a
//! stable [`RequestError::code`]. Nothing here caches; the cache sits in front of `compute`.
//!
//! Parameters (`window_days` counts daily returns, so it reads `window_days + 1` closes):
//!
//! | Kind | Parameters |
//! | --- | --- |
//! | `market.volatility` | `symbol`; `window_days` (252) |
//! | `portfolio.risk` | `weights` {symbol: weight, summing to 1}; `symbols` (must match `weights`); `window_days` (252); `benchmark`; `confidence_levels` (0.95, 0.99; numbers or numeric strings); `paths` (10,000); `seed` (0); `risk_free_rate` (0) |
//! | `option.price` | `right` call/put; `strike`; `time_to_expiry` (years) or `expiry_days`; `spot` and `volatility`, or `symbol` (latest close, realized volatility over `window_days`); `style` european/american (european); `rate` (0); `dividend_yield` (0); `steps` (500) |
//!
//! Error codes: `unknown_kind`, `invalid_params` (naming the field), `unknown_symbol`,
//! `insufficient_history`, `analysis_failed`, `internal_error`, and `store_unavailable` (the
//! only transient one, see [`RequestError::is_transient`]).

mod error;
mod option;
mod params;
mod portfolio;
mod volatility;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde_json::Value;

pub use error::RequestError;
pub use option::OptionPriceRequest;
pub use portfolio::{DEFAULT_CONFIDENCE_LEVELS, MAXIMUM_POSITIONS, PortfolioRiskRequest, Position};
pub use volatility::VolatilityRequest;

use crate::analytics::NamedValues;
use crate::market::PriceStore;
use crate::market::seed::symbol_tag;

/// `market.volatility`.
pub const MARKET_VOLATILITY: &str = "market.volatility";
/// `portfolio.risk`.
pub const PORTFOLIO_RISK: &str = "portfolio.risk";
/// `option.price`.
pub const OPTION_PRICE: &str = "option.price";
/// Every kind [`Analysis::parse`] knows.
pub const KNOWN_KINDS: [&str; 3] = [MARKET_VOLATILITY, PORTFOLIO_RISK, OPTION_PRICE];

/// Window when a request names none: one trading year of daily returns.
pub const DEFAULT_WINDOW_DAYS: usize = 252;
/// Accepted `window_days`: two returns (a dispersion needs them) up to the longest history
/// `frontier seed` writes.
pub const WINDOW_DAYS_RANGE: RangeInclusive<u64> = 2..=100_000;

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Analysis {
    /// `market.volatility`.
    MarketVolatility(VolatilityRequest),
    /// `portfolio.risk`.
    PortfolioRisk(PortfolioRiskRequest),
    /// `option.price`.
    OptionPrice(OptionPriceRequest),
}

impl Analysis {
    /// Parses `params` (a JSON object, a JSON text of one, or `null`) for `kind`. Unknown kinds
    /// give `unknown_kind`; missing, mistyped, out-of-range or unexpected parameters give
    /// `invalid_params` naming the field.
    pub fn parse(kind: &str, params: &Value) -> Result<Self, RequestError> {
        match kind {
            MARKET_VOLATILITY => VolatilityRequest::parse(params).map(Self::MarketVolatility),
            PORTFOLIO_RISK => PortfolioRiskRequest::parse(params).map(Self::PortfolioRisk),
            OPTION_PRICE => OptionPriceRequest::parse(params).map(Self::OptionPrice),
            other => Err(RequestError::UnknownKind { kind: other.to_owned() }),
        }
    }

    /// The request's kind, e.g. `market.volatility`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MarketVolatility(_) => MARKET_VOLATILITY,
            Self::PortfolioRisk(_) => PORTFOLIO_RISK,
            Self::OptionPrice(_) => OPTION_PRICE,
        }
    }

    /// Every symbol whose prices the result depends on, sorted and without repeats.
    pub fn symbols(&self) -> Vec<&str> {
        let mut symbols = match self {
            Self::MarketVolatility(request) => vec![request.symbol.as_str()],
            Self::PortfolioRisk(request) => request.symbols(),
            Self::OptionPrice(request) => request.symbol.as_deref().into_iter().collect(),
        };
        symbols.sort_unstable();
        symbols.dedup();
        symbols
    }

    /// The cache tags of the result: `symbol:XYZ` for every symbol it depends on, so an
    /// invalidation of that tag drops it. Empty for an option priced on a given spot and
    /// volatility alone.
    pub fn tags(&self) -> Vec<String> {
        self.symbols().into_iter().map(symbol_tag).collect()
    }

    /// Loads the prices the request needs and computes it: named numbers, a response's
    /// `result` map.
    pub async fn compute(&self, store: &PriceStore) -> Result<AnalysisResult, RequestError> {
        match self {
            Self::MarketVolatility(request) => request.compute(store).await,
            Self::PortfolioRisk(request) => request.compute(store).await,
            Self::OptionPrice(request) => request.compute(store).await,
        }
    }
}

/// What an analysis computes: named numbers (the response's `result` map).
pub type AnalysisResult = BTreeMap<String, f64>;

/// A result's named values (non-finite values, which a client cannot use, are left out).
pub(crate) fn named_values(result: &impl NamedValues) -> AnalysisResult {
    result
        .to_named_values()
        .into_iter()
        .filter(|(_, value)| value.is_finite())
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Runs CPU-bound analytics (Monte-Carlo paths, binomial trees: up to about a second) on
/// tokio's blocking pool, so that the worker's async threads keep serving the bus meanwhile.
pub(crate) async fn off_async_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RequestError> + Send + 'static,
) -> Result<T, RequestError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| RequestError::Internal { reason: format!("the computation did not finish: {error}") })?
}
