//! Cox-Ross-Rubinstein binomial tree: American (and, for comparison, European) options, with
//! delta, gamma and theta read off the tree's first levels.

use super::{CALENDAR_DAYS_PER_YEAR, ExerciseStyle, OptionContract};
use crate::analytics::{AnalyticsError, NamedValues};

/// Tree steps when a request names none: CRR's error shrinks like 1/steps, and at 500 steps it
/// is about a tenth of a cent on a $50 option while a valuation still takes well under a
/// millisecond.
pub const DEFAULT_BINOMIAL_STEPS: usize = 500;

/// Fewest steps: gamma needs the three nodes of the tree's second level.
pub const MINIMUM_BINOMIAL_STEPS: usize = 2;

/// Most steps: work grows with steps², and 10,000 steps (50 million node updates) keep one
/// request well under a second.
pub const MAXIMUM_BINOMIAL_STEPS: usize = 10_000;

/// Value and tree Greeks of an option on a CRR tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BinomialValuation {
    /// Option value at the root of the tree.
    pub price: f64,
    /// (V_u - V_d) / (S_u - S_d) from the first level.
    pub delta: f64,
    /// Change of the two second-level deltas over half the spot spread of that level.
    pub gamma: f64,
    /// (V_ud - V_0) / (2 Δt), per year: the middle node of level 2 has the same spot as the root.
    pub theta_per_year: f64,
    /// Theta per calendar day (theta per year / 365).
    pub theta_per_day: f64,
    /// Time steps in the tree.
    pub steps: usize,
}

impl NamedValues for BinomialValuation {
    fn to_named_values(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("price", self.price),
            ("delta", self.delta),
            ("gamma", self.gamma),
            ("theta_per_year", self.theta_per_year),
            ("theta_per_day", self.theta_per_day),
            ("steps", self.steps as f64),
        ]
    }
}

/// Values `contract` on a Cox-Ross-Rubinstein tree of `steps` steps: up factor
/// `u = e^(σ sqrt(Δt))`, down `d = 1/u`, risk-neutral up-probability
/// `p = (e^((r - q) Δt) - d) / (u - d)`; with `ExerciseStyle::American` each node is worth at
/// least its intrinsic value (early exercise).
///
/// Allocates the `2 steps + 1` node spots and one buffer of `steps + 1` values, rolled back in
/// place level by level.
pub fn binomial_crr(
    contract: &OptionContract,
    style: ExerciseStyle,
    steps: usize,
) -> Result<BinomialValuation, AnalyticsError> {
    contract.validate()?;
    if !(MINIMUM_BINOMIAL_STEPS..=MAXIMUM_BINOMIAL_STEPS).contains(&steps) {
        return Err(AnalyticsError::InvalidTreeSteps {
            steps,
            minimum: MINIMUM_BINOMIAL_STEPS,
            maximum: MAXIMUM_BINOMIAL_STEPS,
        });
    }
    let spot = contract.spot;
    let step_years = contract.time_to_expiry_years / steps as f64;
    let log_up = contract.volatility_annual * step_years.sqrt();
    let up = log_up.exp();
    let down = 1.0 / up;
    let growth = ((contract.risk_free_rate_annual - contract.dividend_yield_annual) * step_years).exp();
    let up_probability = (growth - down) / (up - down);
    // Outside (0, 1) the tree admits arbitrage and the "probabilities" are meaningless; it only
    // happens when |r - q| sqrt(Δt) is comparable to σ, i.e. with too few steps.
    if !(up_probability > 0.0 && up_probability < 1.0) {
        return Err(AnalyticsError::TreeProbabilityOutOfRange { steps, probability: up_probability });
    }
    let step_discount = (-contract.risk_free_rate_annual * step_years).exp();
    let discounted_up = step_discount * up_probability;
    let discounted_down = step_discount * (1.0 - up_probability);
    let american = style == ExerciseStyle::American;

    // Every node's spot is S u^k for some k in -steps..=steps: node j of level i has
    // k = 2j - i. One exp per rung of this ladder keeps every spot within one rounding of exact
    // (rolling spots level by level would accumulate `steps` roundings), and the root is S.
    let spot_ladder: Vec<f64> =
        (0..=2 * steps).map(|rung| spot * ((rung as f64 - steps as f64) * log_up).exp()).collect();
    let node_spot = |level: usize, node: usize| spot_ladder[2 * node + steps - level];
    let mut values: Vec<f64> = (0..=steps).map(|node| contract.intrinsic_value(node_spot(steps, node))).collect();

    let mut first_level = [0.0; 2]; // [V_d, V_u]
    let mut second_level = [0.0; 3]; // [V_dd, V_ud, V_uu]
    for level in (0..steps).rev() {
        for node in 0..=level {
            let continuation = discounted_down * values[node] + discounted_up * values[node + 1];
            values[node] = if american {
                continuation.max(contract.intrinsic_value(node_spot(level, node)))
            } else {
                continuation
            };
        }
        match level {
            2 => second_level.copy_from_slice(&values[..3]),
            1 => first_level.copy_from_slice(&values[..2]),
            _ => {}
        }
    }
    let price = values[0];

    let [value_down, value_up] = first_level;
    let delta = (value_up - value_down) / (spot * (up - down));
    let [value_down_down, value_middle, value_up_up] = second_level;
    let spot_up_up = spot * up * up;
    let spot_down_down = spot * down * down;
    let delta_upper = (value_up_up - value_middle) / (spot_up_up - spot);
    let delta_lower = (value_middle - value_down_down) / (spot - spot_down_down);
    let gamma = (delta_upper - delta_lower) / (0.5 * (spot_up_up - spot_down_down));
    let theta_per_year = (value_middle - price) / (2.0 * step_years);

    Ok(BinomialValuation {
        price,
        delta,
        gamma,
        theta_per_year,
        theta_per_day: theta_per_year / CALENDAR_DAYS_PER_YEAR,
        steps,
    })
}
