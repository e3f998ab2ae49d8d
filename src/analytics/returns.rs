//! Price histories and the daily returns taken from them.

use super::AnalyticsError;

/// The fewest returns any statistic here is computed from: a dispersion needs two.
pub const MINIMUM_RETURNS: usize = 2;

/// A symbol's daily closing prices, oldest first, as borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceSeries<'a> {
    /// The symbol, used to name the series in errors.
    pub symbol: &'a str,
    /// Closing prices, oldest first, one per trading day.
    pub closes: &'a [f64],
}

impl<'a> PriceSeries<'a> {
    /// A series of `closes` (oldest first) for `symbol`.
    pub fn new(symbol: &'a str, closes: &'a [f64]) -> Self {
        Self { symbol, closes }
    }

    /// Checks that the series gives at least [`MINIMUM_RETURNS`] returns and that every price
    /// is finite and positive.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        if self.closes.len() < MINIMUM_RETURNS + 1 {
            return Err(AnalyticsError::TooFewPrices {
                symbol: self.symbol.to_owned(),
                prices: self.closes.len(),
                minimum_returns: MINIMUM_RETURNS,
            });
        }
        for (index, &price) in self.closes.iter().enumerate() {
            // NaN compares false with everything, so it must be caught before the sign test.
            if !price.is_finite() {
                return Err(AnalyticsError::NonFinitePrice { symbol: self.symbol.to_owned(), index, price });
            }
            if price <= 0.0 {
                return Err(AnalyticsError::NonPositivePrice { symbol: self.symbol.to_owned(), index, price });
            }
        }
        Ok(())
    }
}

/// The last `returns` daily returns' worth of a history: its last `returns + 1` closes (all of
/// them when the history is shorter). This is how a request's window is applied.
pub fn trailing_window(closes: &[f64], returns: usize) -> &[f64] {
    let wanted_prices = returns.saturating_add(1);
    &closes[closes.len().saturating_sub(wanted_prices)..]
}

/// Daily log returns `ln(P_t / P_{t-1})` of a validated series.
pub fn log_returns(series: PriceSeries<'_>) -> Result<Vec<f64>, AnalyticsError> {
    series.validate()?;
    Ok(series.closes.windows(2).map(|pair| (pair[1] / pair[0]).ln()).collect())
}

/// Daily simple returns `P_t / P_{t-1} - 1` of a validated series.
pub fn simple_returns(series: PriceSeries<'_>) -> Result<Vec<f64>, AnalyticsError> {
    series.validate()?;
    let mut returns = Vec::with_capacity(series.closes.len() - 1);
    append_simple_returns(series.closes, &mut returns);
    Ok(returns)
}

/// Appends the simple returns of already validated `closes` to `out`, so that several assets'
/// returns can share one buffer.
pub(crate) fn append_simple_returns(closes: &[f64], out: &mut Vec<f64>) {
    out.extend(closes.windows(2).map(|pair| pair[1] / pair[0] - 1.0));
}
