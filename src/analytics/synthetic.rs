//! Synthetic daily closes for `frontier seed --symbols N --days D`: geometric Brownian motion per
//! symbol, optionally correlated with a market factor, fully determined by a seed.
//!
//! Reproducibility on any machine: ChaCha8's output is specified bit for bit, uniforms take 53 of
//! its bits by integer arithmetic, normals come from the polar method, and `exp`/`ln` come from
//! the pure-Rust `libm` instead of the platform's C library (whose last bits differ between
//! systems). Everything else is IEEE 754 arithmetic, which Rust does not reorder or fuse.
//!
//! Each series draws from its own ChaCha stream (market: 0, symbol i: i + 1), parameters first,
//! then one normal per day. So asking for more days extends every series without changing its
//! start, and asking for more symbols leaves the earlier symbols as they were.

use super::normal::NormalSampler;
use super::returns::MINIMUM_RETURNS;
use super::{AnalyticsError, TRADING_DAYS_PER_YEAR};

/// Range of a symbol's annual drift μ (uniform).
pub const DRIFT_RANGE_ANNUAL: (f64, f64) = (0.0, 0.15);
/// Range of a symbol's annual volatility σ (uniform).
pub const VOLATILITY_RANGE_ANNUAL: (f64, f64) = (0.15, 0.60);
/// Range of a symbol's first close (log-uniform: as many symbols near 20-50 as near 200-500).
pub const START_PRICE_RANGE: (f64, f64) = (20.0, 500.0);
/// Range of a symbol's correlation with the market factor (uniform), when the factor is on.
pub const MARKET_CORRELATION_RANGE: (f64, f64) = (0.3, 0.8);
/// Symbol of the market factor's own price series (a benchmark for beta).
pub const MARKET_SYMBOL: &str = "MKT";
/// The market factor's annual drift.
pub const MARKET_DRIFT_ANNUAL: f64 = 0.07;
/// The market factor's annual volatility.
pub const MARKET_VOLATILITY_ANNUAL: f64 = 0.18;
/// The market factor's first close.
pub const MARKET_START_PRICE: f64 = 100.0;
/// Most symbols one call generates.
pub const MAXIMUM_SYMBOLS: usize = 10_000;
/// Most days one call generates (about 400 years).
pub const MAXIMUM_DAYS: usize = 100_000;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Seed: the same seed gives identical series on any machine.
    pub seed: u64,
    /// Number of symbols (1 to [`MAXIMUM_SYMBOLS`]).
    pub symbols: usize,
    /// Closes per symbol, one per trading day (3 to [`MAXIMUM_DAYS`]).
    pub days: usize,
    /// Correlate each symbol with a common market factor so that betas are not trivially zero.
    pub with_market_factor: bool,
}

/// Parameters of one geometric Brownian motion.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GbmParameters {
    /// First close (> 0).
    pub start_price: f64,
    /// Annual drift μ of the price (the log price grows at μ - σ²/2).
    pub drift_annual: f64,
    /// Annual volatility σ of the log price (>= 0).
    pub volatility_annual: f64,
}

/// One generated price series and the parameters that made it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyntheticSeries {
    /// Symbol: `SYN0001`, `SYN0002`, ... or [`MARKET_SYMBOL`].
    pub symbol: String,
    /// Start price, drift and volatility.
    pub parameters: GbmParameters,
    /// Correlation ρ of the daily log-return shocks with the market factor (0 when off).
    pub market_correlation: f64,
    /// The beta this implies against the market series: ρ σ / σ_market.
    pub market_beta: f64,
    /// Daily closes, oldest first (unrounded; a store may round them to cents).
    pub closes: Vec<f64>,
}

/// A generated market: the factor's own series and the symbols'.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyntheticMarket {
    /// The market factor as a price series (drift [`MARKET_DRIFT_ANNUAL`], volatility
    /// [`MARKET_VOLATILITY_ANNUAL`]), usable as a beta benchmark.
    pub market: SyntheticSeries,
    /// The symbols, in order.
    pub symbols: Vec<SyntheticSeries>,
}

/// Generates `config.symbols` GBM series of `config.days` closes each, plus the market series.
///
/// Daily log return of symbol i: `(μ - σ²/2) Δt + σ sqrt(Δt) (ρ Z_market + sqrt(1 - ρ²) ε_i)`
/// with `Δt = 1/252`, so each symbol keeps exactly its drawn σ whatever ρ is.
pub fn generate_synthetic_market(config: &SyntheticConfig) -> Result<SyntheticMarket, AnalyticsError> {
    check_range("symbols", config.symbols, (1, MAXIMUM_SYMBOLS), "must be between 1 and 10,000")?;
    check_range(
        "days",
        config.days,
        (MINIMUM_RETURNS + 1, MAXIMUM_DAYS),
        "must be between 3 (two returns) and 100,000",
    )?;

    let mut market_sampler = NormalSampler::new(config.seed, 0);
    let market_shocks: Vec<f64> = (1..config.days).map(|_| market_sampler.next_standard_normal()).collect();
    let market_parameters = GbmParameters {
        start_price: MARKET_START_PRICE,
        drift_annual: MARKET_DRIFT_ANNUAL,
        volatility_annual: MARKET_VOLATILITY_ANNUAL,
    };
    let market = SyntheticSeries {
        symbol: MARKET_SYMBOL.to_owned(),
        parameters: market_parameters,
        market_correlation: 1.0,
        market_beta: 1.0,
        closes: gbm_closes(&market_parameters, config.days, |day| market_shocks[day]),
    };

    let symbols = (0..config.symbols)
        .map(|index| {
            let mut sampler = NormalSampler::new(config.seed, index as u64 + 1);
            let drift_annual = sampler.next_uniform(DRIFT_RANGE_ANNUAL.0, DRIFT_RANGE_ANNUAL.1);
            let volatility_annual = sampler.next_uniform(VOLATILITY_RANGE_ANNUAL.0, VOLATILITY_RANGE_ANNUAL.1);
            let log_start = sampler.next_uniform(libm::log(START_PRICE_RANGE.0), libm::log(START_PRICE_RANGE.1));
            // Drawn whether or not the factor is on, so switching it keeps every other draw.
            let drawn_correlation = sampler.next_uniform(MARKET_CORRELATION_RANGE.0, MARKET_CORRELATION_RANGE.1);
            let market_correlation = if config.with_market_factor { drawn_correlation } else { 0.0 };
            let parameters = GbmParameters { start_price: libm::exp(log_start), drift_annual, volatility_annual };
            let idiosyncratic_weight = (1.0 - market_correlation * market_correlation).sqrt();
            let closes = gbm_closes(&parameters, config.days, |day| {
                market_correlation * market_shocks[day] + idiosyncratic_weight * sampler.next_standard_normal()
            });
            SyntheticSeries {
                symbol: format!("SYN{:04}", index + 1),
                parameters,
                market_correlation,
                market_beta: market_correlation * volatility_annual / MARKET_VOLATILITY_ANNUAL,
                closes,
            }
        })
        .collect();

    Ok(SyntheticMarket { market, symbols })
}

/// One GBM path of `days` closes (at least 1) with its own seeded shocks.
pub fn simulate_gbm(parameters: &GbmParameters, days: usize, seed: u64) -> Result<Vec<f64>, AnalyticsError> {
    check_range("days", days, (1, MAXIMUM_DAYS), "must be between 1 and 100,000")?;
    let checks = [
        ("start_price", parameters.start_price, parameters.start_price > 0.0),
        ("drift_annual", parameters.drift_annual, true),
        ("volatility_annual", parameters.volatility_annual, parameters.volatility_annual >= 0.0),
    ];
    for (name, value, in_domain) in checks {
        if !(in_domain && value.is_finite()) {
            return Err(AnalyticsError::InvalidParameter {
                name,
                value,
                requirement: "start price must be positive, volatility non-negative, all finite",
            });
        }
    }
    let mut sampler = NormalSampler::new(seed, 0);
    Ok(gbm_closes(parameters, days, |_| sampler.next_standard_normal()))
}

/// `days` closes of a GBM whose day-`t` shock (t = 0 for the move into the second close) is
/// `shock(t)`, a standard normal.
fn gbm_closes(parameters: &GbmParameters, days: usize, mut shock: impl FnMut(usize) -> f64) -> Vec<f64> {
    let step_years = 1.0 / TRADING_DAYS_PER_YEAR;
    let volatility = parameters.volatility_annual;
    let log_drift_daily = (parameters.drift_annual - 0.5 * volatility * volatility) * step_years;
    let volatility_daily = volatility * step_years.sqrt();
    let mut closes = Vec::with_capacity(days);
    let mut price = parameters.start_price;
    closes.push(price);
    for day in 0..days.saturating_sub(1) {
        price *= libm::exp(log_drift_daily + volatility_daily * shock(day));
        closes.push(price);
    }
    closes
}

/// Checks a count setting against its inclusive `(minimum, maximum)` range.
fn check_range(
    name: &'static str,
    value: usize,
    (minimum, maximum): (usize, usize),
    requirement: &'static str,
) -> Result<(), AnalyticsError> {
    if (minimum..=maximum).contains(&value) {
        Ok(())
    } else {
        Err(AnalyticsError::InvalidParameter { name, value: value as f64, requirement })
    }
}
