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

    /// What computing the request is expected to cost in CPU time on one core of a current
    /// server, from its parameters alone. Calibrated on the analytics' inner loops (a
    /// Monte-Carlo path of `n` assets is about `n²/2` multiply-adds and `n` normal draws; a
    /// binomial tree of `s` steps about `s²/2` nodes): 52 assets x 1,000,000 paths, measured at
    /// 1.65 s, come out at 1.66 s. An estimate for admission and fairness, not a promise.
    pub fn estimated_cost(&self) -> std::time::Duration {
        const PER_MULTIPLY_ADD_NS: f64 = 1.0;
        const PER_NORMAL_DRAW_NS: f64 = 6.0;
        const PER_TREE_NODE_NS: f64 = 5.0;
        const PER_RETURN_NS: f64 = 20.0;
        const FIXED_NS: f64 = 50_000.0;
        let nanos = FIXED_NS
            + match self {
                Self::MarketVolatility(request) => request.window_days as f64 * PER_RETURN_NS,
                Self::PortfolioRisk(request) => {
                    let (assets, window) = (request.positions.len() as f64, request.window_days as f64);
                    let paths = request.monte_carlo_paths as f64;
                    let per_path = assets * (assets + 1.0) / 2.0 * PER_MULTIPLY_ADD_NS + assets * PER_NORMAL_DRAW_NS;
                    let covariance = assets * assets * window * PER_MULTIPLY_ADD_NS;
                    let historical = (assets + request.confidence_levels.len() as f64) * window * PER_RETURN_NS;
                    paths * per_path + covariance + historical
                }
                Self::OptionPrice(request) => {
                    let steps = match request.style {
                        crate::analytics::ExerciseStyle::American => request.steps.unwrap_or(500) as f64,
                        crate::analytics::ExerciseStyle::European => 0.0,
                    };
                    steps * steps / 2.0 * PER_TREE_NODE_NS + request.window_days as f64 * PER_RETURN_NS
                }
            };
        std::time::Duration::from_nanos(nanos as u64)
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

/// A result's named values. Quantities that are undefined are already left out by the
/// analytics; a value that is still not finite means the inputs overflowed double precision
/// (a spot of 1e308, say): an error, never an `ok` answer missing its number.
pub(crate) fn named_values(result: &impl NamedValues) -> Result<AnalysisResult, RequestError> {
    result
        .to_named_values()
        .into_iter()
        .map(|(name, value)| {
            if value.is_finite() {
                Ok((name.to_owned(), value))
            } else {
                let reason = format!("make `{name}` overflow: the values are outside any meaningful range");
                Err(RequestError::invalid("params", reason))
            }
        })
        .collect()
}

/// Cheap live analyses computing at once: one per core; the others wait their turn, first come
/// first served. Without a bound a cold burst can run as many blocking threads as tokio allows
/// (512), each finishing only when all do, sharing the cores with the async threads that read
/// Redis's and Kafka's answers. Heavy analyses and background refreshes are bounded by the pool
/// and run niced, so they stay out.
static LIVE_COMPUTING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

/// Seconds a cheap live analysis waited for its turn on a core (one runs per core at once):
/// the computation queue of a cold burst, which admission does not see.
pub const TURN_WAIT_SECONDS: &str = "frontier_analysis_turn_wait_seconds";

/// Runs CPU-bound analytics (Monte-Carlo paths, binomial trees: up to about a second) on
/// tokio's blocking pool, so that the worker's async threads keep serving the bus meanwhile.
pub(crate) async fn off_async_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RequestError> + Send + 'static,
) -> Result<T, RequestError> {
    // A heavy analysis admitted by the pool runs niced, so cheap ones and the bus come first.
    let nice = crate::market::pool::NICE.try_with(|nice| *nice).unwrap_or(0);
    // The semaphore is never closed, so `acquire` cannot fail; were it to, the work runs.
    let _turn = if nice == 0 {
        let asked = std::time::Instant::now();
        let turn = LIVE_COMPUTING.acquire().await.ok();
        ::metrics::histogram!(TURN_WAIT_SECONDS).record(asked.elapsed().as_secs_f64());
        turn
    } else {
        None
    };
    crate::market::pool::run_blocking(nice, work)
        .await
        .map_err(|error| RequestError::Internal { reason: format!("the computation did not finish: {error}") })?
}
