//! `option.price`: European options by Black-Scholes-Merton (price and Greeks), American options
//! on a Cox-Ross-Rubinstein binomial tree.
//!
//! All rates are annual and continuously compounded; time is in years; the underlying pays a
//! continuous dividend yield `q` (so its carry is `r - q`).

mod binomial;
mod black_scholes;

pub use binomial::{
    BinomialValuation, DEFAULT_BINOMIAL_STEPS, MAXIMUM_BINOMIAL_STEPS, MINIMUM_BINOMIAL_STEPS, binomial_crr,
};
pub use black_scholes::{BlackScholesValuation, black_scholes};

use super::{AnalyticsError, NamedValues};

/// Calendar days per year, for theta per day (Hull's convention: time decays on weekends too).
pub const CALENDAR_DAYS_PER_YEAR: f64 = 365.0;

/// Call or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionKind {
    /// The right to buy at the strike.
    Call,
    /// The right to sell at the strike.
    Put,
}

/// When the option may be exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExerciseStyle {
    /// At expiry only.
    European,
    /// At any time up to expiry.
    American,
}

/// The inputs of an option valuation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptionContract {
    /// Call or put.
    pub kind: OptionKind,
    /// Price of the underlying now (> 0).
    pub spot: f64,
    /// Strike price (> 0).
    pub strike: f64,
    /// Time to expiry in years (> 0).
    pub time_to_expiry_years: f64,
    /// Risk-free rate, annual, continuously compounded (may be negative).
    pub risk_free_rate_annual: f64,
    /// Dividend yield, annual, continuously compounded (may be negative, e.g. a borrow fee).
    pub dividend_yield_annual: f64,
    /// Volatility of the underlying's log price, annual (> 0).
    pub volatility_annual: f64,
}

impl OptionContract {
    /// Checks every input: spot, strike, time and volatility positive; rates finite.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        let positive = [
            ("spot", self.spot),
            ("strike", self.strike),
            ("time_to_expiry_years", self.time_to_expiry_years),
            ("volatility_annual", self.volatility_annual),
        ];
        for (name, value) in positive {
            // `!(value > 0.0)` rather than `value <= 0.0` so that NaN is caught too.
            if !(value > 0.0 && value.is_finite()) {
                return Err(AnalyticsError::InvalidParameter {
                    name,
                    value,
                    requirement: "must be a positive finite number",
                });
            }
        }
        let rates = [
            ("risk_free_rate_annual", self.risk_free_rate_annual),
            ("dividend_yield_annual", self.dividend_yield_annual),
        ];
        for (name, value) in rates {
            if !value.is_finite() {
                return Err(AnalyticsError::InvalidParameter { name, value, requirement: "must be a finite number" });
            }
        }
        Ok(())
    }

    /// What exercising now pays: `max(S - K, 0)` for a call, `max(K - S, 0)` for a put, at `spot`.
    pub(crate) fn intrinsic_value(&self, spot: f64) -> f64 {
        match self.kind {
            OptionKind::Call => (spot - self.strike).max(0.0),
            OptionKind::Put => (self.strike - spot).max(0.0),
        }
    }
}

/// The valuation `option.price` returns: closed form for European options, a tree for American.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum OptionValuation {
    /// Black-Scholes-Merton price and Greeks of a European option.
    BlackScholes(BlackScholesValuation),
    /// Cox-Ross-Rubinstein tree price, delta and gamma of an American option.
    Binomial(BinomialValuation),
}

impl OptionValuation {
    /// The option's value.
    pub fn price(&self) -> f64 {
        match self {
            Self::BlackScholes(valuation) => valuation.price,
            Self::Binomial(valuation) => valuation.price,
        }
    }
}

impl NamedValues for OptionValuation {
    fn to_named_values(&self) -> Vec<(&'static str, f64)> {
        match self {
            Self::BlackScholes(valuation) => valuation.to_named_values(),
            Self::Binomial(valuation) => valuation.to_named_values(),
        }
    }
}

/// Computes `option.price`: European options in closed form (Black-Scholes-Merton with Greeks),
/// American options on a CRR tree of `tree_steps` steps (`None`: [`DEFAULT_BINOMIAL_STEPS`]).
pub fn price_option(
    contract: &OptionContract,
    style: ExerciseStyle,
    tree_steps: Option<usize>,
) -> Result<OptionValuation, AnalyticsError> {
    match style {
        ExerciseStyle::European => black_scholes(contract).map(OptionValuation::BlackScholes),
        ExerciseStyle::American => {
            binomial_crr(contract, ExerciseStyle::American, tree_steps.unwrap_or(DEFAULT_BINOMIAL_STEPS))
                .map(OptionValuation::Binomial)
        }
    }
}
