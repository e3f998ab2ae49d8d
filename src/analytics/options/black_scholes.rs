//! Black-Scholes-Merton: closed-form price and Greeks of European options on an underlying with
//! a continuous dividend yield.

use super::{CALENDAR_DAYS_PER_YEAR, OptionContract, OptionKind};
use crate::analytics::normal::{standard_normal_cdf, standard_normal_pdf};
use crate::analytics::{AnalyticsError, NamedValues};

/// Price and Greeks of a European option. Greeks are partial derivatives of the price in the
/// units of the input they bump, plus the per-point forms traders quote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BlackScholesValuation {
    /// Option value, in the currency of spot and strike.
    pub price: f64,
    /// dV/dS.
    pub delta: f64,
    /// d²V/dS².
    pub gamma: f64,
    /// dV/dσ, per 1.00 (100 percentage points) of annual volatility.
    pub vega: f64,
    /// Vega per 1 percentage point of volatility (vega / 100).
    pub vega_per_vol_point: f64,
    /// dV/dt as calendar time passes (= -dV/dT), per year.
    pub theta_per_year: f64,
    /// Theta per calendar day (theta per year / 365).
    pub theta_per_day: f64,
    /// dV/dr, per 1.00 (100 percentage points) of the risk-free rate.
    pub rho: f64,
    /// Rho per 1 percentage point of the rate (rho / 100).
    pub rho_per_rate_point: f64,
    /// d1 = (ln(S/K) + (r - q + σ²/2) T) / (σ sqrt(T)).
    pub d1: f64,
    /// d2 = d1 - σ sqrt(T).
    pub d2: f64,
}

impl NamedValues for BlackScholesValuation {
    fn to_named_values(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("price", self.price),
            ("delta", self.delta),
            ("gamma", self.gamma),
            ("vega", self.vega),
            ("vega_per_vol_point", self.vega_per_vol_point),
            ("theta_per_year", self.theta_per_year),
            ("theta_per_day", self.theta_per_day),
            ("rho", self.rho),
            ("rho_per_rate_point", self.rho_per_rate_point),
            ("d1", self.d1),
            ("d2", self.d2),
        ]
    }
}

/// Black-Scholes-Merton price and Greeks of a European option (Hull, ch. 17 and 19; Haug, 1.1):
///
/// `call = S e^(-qT) N(d1) - K e^(-rT) N(d2)`, `put = K e^(-rT) N(-d2) - S e^(-qT) N(-d1)`.
pub fn black_scholes(contract: &OptionContract) -> Result<BlackScholesValuation, AnalyticsError> {
    contract.validate()?;
    let OptionContract {
        kind,
        spot,
        strike,
        time_to_expiry_years: time,
        risk_free_rate_annual: rate,
        dividend_yield_annual: dividend_yield,
        volatility_annual: volatility,
    } = *contract;

    let sqrt_time = time.sqrt();
    let vol_sqrt_time = volatility * sqrt_time;
    let d1 = ((spot / strike).ln() + (rate - dividend_yield + 0.5 * volatility * volatility) * time) / vol_sqrt_time;
    let d2 = d1 - vol_sqrt_time;
    let dividend_discount = (-dividend_yield * time).exp();
    let rate_discount = (-rate * time).exp();
    let prepaid_forward = spot * dividend_discount; // S e^(-qT)
    let discounted_strike = strike * rate_discount; // K e^(-rT)
    let density_d1 = standard_normal_pdf(d1);

    // Terms shared by calls and puts.
    let gamma = dividend_discount * density_d1 / (spot * vol_sqrt_time);
    let vega = prepaid_forward * density_d1 * sqrt_time;
    let volatility_decay = -prepaid_forward * density_d1 * volatility / (2.0 * sqrt_time);

    let (price, delta, theta_per_year, rho) = match kind {
        OptionKind::Call => {
            let (n_d1, n_d2) = (standard_normal_cdf(d1), standard_normal_cdf(d2));
            (
                prepaid_forward * n_d1 - discounted_strike * n_d2,
                dividend_discount * n_d1,
                volatility_decay - rate * discounted_strike * n_d2 + dividend_yield * prepaid_forward * n_d1,
                time * discounted_strike * n_d2,
            )
        }
        OptionKind::Put => {
            let (n_minus_d1, n_minus_d2) = (standard_normal_cdf(-d1), standard_normal_cdf(-d2));
            (
                discounted_strike * n_minus_d2 - prepaid_forward * n_minus_d1,
                -dividend_discount * n_minus_d1,
                volatility_decay + rate * discounted_strike * n_minus_d2
                    - dividend_yield * prepaid_forward * n_minus_d1,
                -time * discounted_strike * n_minus_d2,
            )
        }
    };

    Ok(BlackScholesValuation {
        price,
        delta,
        gamma,
        vega,
        vega_per_vol_point: vega / 100.0,
        theta_per_year,
        theta_per_day: theta_per_year / CALENDAR_DAYS_PER_YEAR,
        rho,
        rho_per_rate_point: rho / 100.0,
        d1,
        d2,
    })
}
