//! `market.volatility`: realized volatility and the return distribution of one symbol.

use serde_json::Value;

use super::params::Params;
use super::{AnalysisResult, DEFAULT_WINDOW_DAYS, RequestError, WINDOW_DAYS_RANGE, named_values};
use crate::analytics::{PriceSeries, market_volatility};
use crate::market::PriceStore;

/// `market.volatility` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct VolatilityRequest {
    /// The symbol (`symbol`).
    pub symbol: String,
    /// Daily returns in the window (`window_days`, default 252): the latest `window_days + 1`
    /// closes.
    pub window_days: usize,
}

impl VolatilityRequest {
    /// The parameter names this kind takes.
    pub const PARAMS: &'static [&'static str] = &["symbol", "window_days"];

    /// Reads the parameters.
    pub fn parse(params: &Value) -> Result<Self, RequestError> {
        let params = Params::new(params, Self::PARAMS)?;
        Ok(Self {
            symbol: params.required_symbol("symbol")?,
            window_days: params
                .integer("window_days", WINDOW_DAYS_RANGE)?
                .map_or(DEFAULT_WINDOW_DAYS, |days| days as usize),
        })
    }

    /// Loads the window's closes and computes the volatility report.
    pub async fn compute(&self, store: &PriceStore) -> Result<AnalysisResult, RequestError> {
        let closes = load_window(store, &self.symbol, self.window_days).await?;
        let report = market_volatility(PriceSeries::new(&self.symbol, &closes))?;
        named_values(&report)
    }
}

/// The latest `window_days + 1` closes of `symbol`, oldest first; `unknown_symbol` when none.
pub(super) async fn load_window(
    store: &PriceStore,
    symbol: &str,
    window_days: usize,
) -> Result<Vec<f64>, RequestError> {
    let rows = store.latest_closes(symbol, window_days.saturating_add(1)).await?;
    if rows.is_empty() {
        return Err(RequestError::UnknownSymbol { symbol: symbol.to_owned() });
    }
    Ok(rows.into_iter().map(|row| row.close).collect())
}
