//! `market.volatility` on hand-computed series and on a GBM of known volatility.

use super::support::assert_close;
use crate::analytics::returns::trailing_window;
use crate::analytics::synthetic::{GbmParameters, simulate_gbm};
use crate::analytics::{AnalyticsError, NamedValues, PriceSeries, market_volatility};

#[test]
fn realized_volatility_of_a_gbm_with_20_percent_sigma_is_20_percent() {
    // 10,000 daily steps of GBM with σ = 20 %: the sample standard deviation of n normal log
    // returns has relative standard error 1/sqrt(2(n-1)) ≈ 0.71 %, i.e. 0.0014 in annual vol.
    // Tolerance 0.006 is about 4 standard errors.
    let parameters = GbmParameters { start_price: 100.0, drift_annual: 0.08, volatility_annual: 0.20 };
    let closes = simulate_gbm(&parameters, 10_001, 42).unwrap();
    let report = market_volatility(PriceSeries::new("GBM", &closes)).unwrap();
    assert_eq!(report.return_count, 10_000);
    assert_close(report.volatility_annualized, 0.20, 0.006, "realized volatility");
    // Normal log returns: no skew, no excess kurtosis. Standard errors sqrt(6/n) = 0.024 and
    // sqrt(24/n) = 0.049; tolerances are about 4 of them.
    assert_close(report.skewness, 0.0, 0.1, "skewness");
    assert_close(report.excess_kurtosis, 0.0, 0.2, "excess kurtosis");
    // The log price drifts at μ - σ²/2 = 6 % a year; over ~40 years its standard error is
    // σ / sqrt(40) ≈ 3.2 %, so only a loose check (4 standard errors) is meaningful.
    assert_close(report.mean_return_annualized, 0.06, 0.13, "annualized mean log return");
}

#[test]
fn moments_of_a_hand_computed_series_are_exact() {
    // Log returns 0, 0, 0.03: mean 0.01; deviations -0.01, -0.01, 0.02; population central
    // moments m2 = 2e-4, m3 = 2e-6, m4 = 6e-8, so skewness = 2e-6 / (2e-4)^1.5 = 1/sqrt(2) and
    // excess kurtosis = 6e-8 / 4e-8 - 3 = -1.5; sample sd = sqrt(6e-4 / 2) = sqrt(3e-4).
    // Only rounding of ln(e^0.03) separates the result from these: tolerance 1e-9.
    let closes = [100.0, 100.0, 100.0, 100.0 * 0.03_f64.exp()];
    let report = market_volatility(PriceSeries::new("HAND", &closes)).unwrap();
    assert_eq!(report.return_count, 3);
    assert_close(report.mean_return_daily, 0.01, 1e-12, "mean");
    assert_close(report.std_dev_daily, 3e-4_f64.sqrt(), 1e-12, "sd");
    assert_close(report.skewness, std::f64::consts::FRAC_1_SQRT_2, 1e-9, "skewness");
    assert_close(report.excess_kurtosis, -1.5, 1e-9, "excess kurtosis");
    assert_close(report.min_return_daily, 0.0, 1e-15, "min");
    assert_close(report.max_return_daily, 0.03, 1e-12, "max");
    assert_close(report.volatility_annualized, (3e-4_f64 * 252.0).sqrt(), 1e-12, "annual vol");
    assert_close(report.mean_return_annualized, 2.52, 1e-10, "annual mean");
}

#[test]
fn flat_prices_have_zero_volatility_and_zero_shape() {
    let report = market_volatility(PriceSeries::new("FLAT", &[10.0; 5])).unwrap();
    assert_eq!(report.volatility_annualized, 0.0);
    assert_eq!((report.skewness, report.excess_kurtosis), (0.0, 0.0));
    assert!(report.to_named_values().iter().all(|(_, value)| value.is_finite()));
}

#[test]
fn too_few_non_positive_and_nan_prices_are_rejected_with_context() {
    let too_few = market_volatility(PriceSeries::new("AAPL", &[100.0, 101.0]));
    assert_eq!(too_few, Err(AnalyticsError::TooFewPrices { symbol: "AAPL".into(), prices: 2, minimum_returns: 2 }));
    let non_positive = market_volatility(PriceSeries::new("AAPL", &[100.0, 0.0, 101.0]));
    assert!(matches!(non_positive, Err(AnalyticsError::NonPositivePrice { index: 1, .. })));
    let negative = market_volatility(PriceSeries::new("AAPL", &[100.0, 101.0, -1.0]));
    assert!(matches!(negative, Err(AnalyticsError::NonPositivePrice { index: 2, .. })));
    let nan = market_volatility(PriceSeries::new("AAPL", &[100.0, f64::NAN, 101.0]));
    match nan {
        Err(error @ AnalyticsError::NonFinitePrice { index: 1, .. }) => {
            assert!(error.to_string().contains("AAPL"), "{error}");
        }
        other => panic!("expected NonFinitePrice, got {other:?}"),
    }
}

#[test]
fn trailing_window_keeps_the_last_returns_worth_of_closes() {
    let closes = [1.0, 2.0, 3.0, 4.0, 5.0];
    assert_eq!(trailing_window(&closes, 2), &[3.0, 4.0, 5.0]);
    assert_eq!(trailing_window(&closes, 10), &closes);
    assert_eq!(trailing_window(&closes, 0), &[5.0]);
}

#[test]
fn volatility_named_values_carry_every_field_once() {
    let closes = [100.0, 101.0, 99.5, 102.0, 103.0];
    let report = market_volatility(PriceSeries::new("X", &closes)).unwrap();
    let values = report.to_named_values();
    assert_eq!(values.len(), 9);
    let mut names: Vec<_> = values.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 9);
    assert!(values.contains(&("volatility_annualized", report.volatility_annualized)));
    assert!(values.contains(&("return_count", 4.0)));
}
