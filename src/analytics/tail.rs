//! Value at risk and conditional value at risk (expected shortfall) of a sample of returns.
//!
//! Quantile convention (used for both historical and Monte-Carlo samples): with `n` returns
//! sorted ascending, `r(1) <= ... <= r(n)`, and `k = ceil(n (1 - confidence))` (at least 1),
//!
//! - `VaR = -r(k)`: the k-th worst return, i.e. the lower empirical quantile of returns at
//!   `1 - confidence` (inverse of the empirical distribution function, Hyndman-Fan type 1),
//!   without interpolation, the usual historical-simulation rule (500 days at 99 %: the 5th
//!   worst day);
//! - `CVaR = -(r(1) + ... + r(k)) / k`: the mean of those k worst returns, VaR's own included,
//!   so `CVaR >= VaR` always.
//!
//! Both are one-period losses as positive fractions of value; a negative number means even the
//! tail of the sample is a gain. Nothing is clamped at zero.

use super::AnalyticsError;

/// Value at risk and expected shortfall at one confidence level, as positive loss fractions
/// over the sample's period (one day for daily returns).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TailRisk {
    /// Value at risk: the loss not exceeded with the given confidence.
    pub var_daily: f64,
    /// Conditional value at risk (expected shortfall): the mean loss beyond VaR.
    pub cvar_daily: f64,
}

/// How many of `sample_size` observations make up the `1 - confidence` tail.
///
/// The 1e-9 guard absorbs binary rounding: 1 - 0.95 is 0.05000000000000004 in `f64`, which
/// would turn 10,000 × 5 % into 501 instead of 500.
pub(crate) fn tail_count(sample_size: usize, confidence: f64) -> usize {
    let exact = sample_size as f64 * (1.0 - confidence);
    ((exact - 1e-9).ceil() as usize).clamp(1, sample_size.max(1))
}

/// VaR and CVaR of `returns` at `confidence` (e.g. 0.95), by the module's quantile convention.
/// Allocates one copy of the sample; the input is left as it is.
pub fn historical_tail_risk(returns: &[f64], confidence: f64) -> Result<TailRisk, AnalyticsError> {
    validate_confidence(confidence)?;
    if returns.is_empty() {
        return Err(AnalyticsError::InvalidParameter {
            name: "returns",
            value: 0.0,
            requirement: "at least one return is needed for a tail",
        });
    }
    if let Some(&bad) = returns.iter().find(|r| !r.is_finite()) {
        return Err(AnalyticsError::InvalidParameter {
            name: "returns",
            value: bad,
            requirement: "returns must be finite numbers",
        });
    }
    let mut sample = returns.to_vec();
    Ok(tail_risk_in_place(&mut sample, confidence))
}

/// Checks that a confidence level lies strictly between 0 and 1.
pub(crate) fn validate_confidence(confidence: f64) -> Result<(), AnalyticsError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(AnalyticsError::InvalidParameter {
            name: "confidence",
            value: confidence,
            requirement: "must lie strictly between 0 and 1",
        })
    }
}

/// VaR and CVaR of a non-empty, finite sample, reordering it in place: a selection (expected
/// linear time) instead of a full sort, and no allocation, since Monte-Carlo samples are large.
/// Calling it again on the reordered sample gives the same answers for any confidence.
pub(crate) fn tail_risk_in_place(sample: &mut [f64], confidence: f64) -> TailRisk {
    let tail = tail_count(sample.len(), confidence);
    let (worse, kth_worst, _) = sample.select_nth_unstable_by(tail - 1, f64::total_cmp);
    let kth_worst = *kth_worst;
    let tail_sum: f64 = worse.iter().sum::<f64>() + kth_worst;
    TailRisk { var_daily: -kth_worst, cvar_daily: -tail_sum / tail as f64 }
}
