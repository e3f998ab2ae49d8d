//! `option.price`: a European (Black-Scholes-Merton) or American (binomial tree) option, on a
//! given spot or on a stored symbol's latest close and realized volatility.

use serde_json::Value;

use super::params::{Params, missing, positive};
use super::volatility::load_window;
use super::{AnalysisResult, DEFAULT_WINDOW_DAYS, RequestError, WINDOW_DAYS_RANGE, named_values, off_async_runtime};
use crate::analytics::options::CALENDAR_DAYS_PER_YEAR;
use crate::analytics::options::{MAXIMUM_BINOMIAL_STEPS, MINIMUM_BINOMIAL_STEPS};
use crate::analytics::{ExerciseStyle, OptionContract, OptionKind, PriceSeries, market_volatility, price_option};
use crate::market::PriceStore;

/// `option.price` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionPriceRequest {
    /// Underlying whose latest close is the spot and whose realized volatility is the default
    /// volatility (`symbol`); `None` when `spot` and `volatility` are both given.
    pub symbol: Option<String>,
    /// Spot price (`spot`); from the symbol's latest close when absent.
    pub spot: Option<f64>,
    /// Strike (`strike`).
    pub strike: f64,
    /// Years to expiry (`time_to_expiry` in years, or `expiry_days` in calendar days / 365).
    pub time_to_expiry_years: f64,
    /// Annual continuously compounded risk-free rate (`rate`, default 0).
    pub rate: f64,
    /// Annual continuous dividend yield (`dividend_yield`, default 0).
    pub dividend_yield: f64,
    /// Annual volatility (`volatility`); the symbol's realized volatility over `window_days`
    /// when absent.
    pub volatility: Option<f64>,
    /// Call or put (`right`).
    pub right: OptionKind,
    /// European or American (`style`, default european).
    pub style: ExerciseStyle,
    /// Binomial tree steps for American options (`steps`, default 500).
    pub steps: Option<usize>,
    /// Returns in the realized-volatility window (`window_days`, default 252).
    pub window_days: usize,
}

impl OptionPriceRequest {
    /// The parameter names this kind takes.
    pub const PARAMS: &'static [&'static str] = &[
        "symbol",
        "spot",
        "strike",
        "time_to_expiry",
        "expiry_days",
        "rate",
        "dividend_yield",
        "volatility",
        "right",
        "style",
        "steps",
        "window_days",
    ];

    /// Reads and checks the parameters.
    pub fn parse(params: &Value) -> Result<Self, RequestError> {
        let params = Params::new(params, Self::PARAMS)?;
        let symbol = params.symbol("symbol")?;
        let spot = params.number("spot")?.map(|spot| positive("spot", spot)).transpose()?;
        let volatility = params.number("volatility")?.map(|v| positive("volatility", v)).transpose()?;
        if symbol.is_none() {
            if spot.is_none() {
                return Err(RequestError::invalid("spot", "is required when no symbol is given"));
            }
            if volatility.is_none() {
                return Err(RequestError::invalid("volatility", "is required when no symbol is given"));
            }
        }
        let time_to_expiry_years = match (params.number("time_to_expiry")?, params.number("expiry_days")?) {
            (Some(_), Some(_)) => {
                return Err(RequestError::invalid(
                    "expiry_days",
                    "give either time_to_expiry (years) or expiry_days, not both",
                ));
            }
            (Some(years), None) => positive("time_to_expiry", years)?,
            (None, Some(days)) => positive("expiry_days", days)? / CALENDAR_DAYS_PER_YEAR,
            (None, None) => return Err(missing("time_to_expiry")),
        };
        let right = match params.choice("right", &["call", "put"])?.as_deref() {
            Some("call") => OptionKind::Call,
            Some(_) => OptionKind::Put,
            None => return Err(missing("right")),
        };
        let style = match params.choice("style", &["european", "american"])?.as_deref() {
            Some("american") => ExerciseStyle::American,
            _ => ExerciseStyle::European,
        };
        let steps_range = MINIMUM_BINOMIAL_STEPS as u64..=MAXIMUM_BINOMIAL_STEPS as u64;
        Ok(Self {
            symbol,
            spot,
            strike: positive("strike", params.number("strike")?.ok_or_else(|| missing("strike"))?)?,
            time_to_expiry_years,
            rate: params.number("rate")?.unwrap_or(0.0),
            dividend_yield: params.number("dividend_yield")?.unwrap_or(0.0),
            volatility,
            right,
            style,
            steps: params.integer("steps", steps_range)?.map(|steps| steps as usize),
            window_days: params
                .integer("window_days", WINDOW_DAYS_RANGE)?
                .map_or(DEFAULT_WINDOW_DAYS, |days| days as usize),
        })
    }

    /// Completes spot and volatility from the store when needed, then prices the option.
    pub async fn compute(&self, store: &PriceStore) -> Result<AnalysisResult, RequestError> {
        let (spot, volatility) = match (&self.symbol, self.spot, self.volatility) {
            (_, Some(spot), Some(volatility)) => (spot, volatility),
            (Some(symbol), spot, volatility) => {
                let closes = load_window(store, symbol, self.window_days).await?;
                let spot = match spot {
                    Some(spot) => spot,
                    // load_window never returns an empty history, so there is a last close.
                    None => {
                        closes.last().copied().ok_or_else(|| RequestError::UnknownSymbol { symbol: symbol.clone() })?
                    }
                };
                let volatility = match volatility {
                    Some(volatility) => volatility,
                    None => market_volatility(PriceSeries::new(symbol, &closes))?.volatility_annualized,
                };
                (spot, volatility)
            }
            // parse() requires spot and volatility when there is no symbol.
            (None, _, _) => return Err(missing("spot")),
        };
        let contract = OptionContract {
            kind: self.right,
            spot,
            strike: self.strike,
            time_to_expiry_years: self.time_to_expiry_years,
            risk_free_rate_annual: self.rate,
            dividend_yield_annual: self.dividend_yield,
            volatility_annual: volatility,
        };
        let (style, steps) = (self.style, self.steps);
        let valuation = off_async_runtime(move || Ok(price_option(&contract, style, steps)?)).await?;
        let mut result = named_values(&valuation)?;
        // The inputs taken from the store, so a client can see what was priced.
        for (name, value) in [("spot", spot), ("volatility_annual", volatility)] {
            if value.is_finite() {
                result.entry(name.to_owned()).or_insert(value);
            }
        }
        Ok(result)
    }
}
