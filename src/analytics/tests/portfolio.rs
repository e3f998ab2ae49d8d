//! `portfolio.risk` beyond the tails: beta, Sharpe ratio, portfolio returns, validation of
//! positions, and the named values.

use super::support::{assert_close, normal_sample, prices_from_simple_returns, single_position};
use crate::analytics::risk::portfolio_daily_returns;
use crate::analytics::{AnalyticsError, NamedValues, PortfolioPosition, PriceSeries, RiskConfig, portfolio_risk};

#[test]
fn beta_of_an_asset_built_as_1_5_times_benchmark_plus_noise_is_1_5() {
    // Asset = 1.5 × benchmark + N(0, 0.5 %²) noise over 5,000 days, benchmark σ = 1 %. The OLS
    // slope's standard error is σ_noise / (σ_benchmark sqrt(n)) ≈ 0.0071; tolerance 0.03 is
    // about 4 of them.
    let benchmark_returns = normal_sample(31, 5_000, 0.0003, 0.01);
    let noise = normal_sample(32, 5_000, 0.0, 0.005);
    let asset_returns: Vec<f64> = benchmark_returns.iter().zip(&noise).map(|(b, e)| 1.5 * b + e).collect();
    let benchmark_closes = prices_from_simple_returns(4000.0, &benchmark_returns);
    let asset_closes = prices_from_simple_returns(120.0, &asset_returns);
    let report = portfolio_risk(
        &single_position("LEVERED", &asset_closes),
        Some(PriceSeries::new("BENCH", &benchmark_closes)),
        &RiskConfig::default(),
    )
    .unwrap();
    let beta = report.beta.unwrap();
    assert_close(beta, 1.5, 0.03, "beta");
    assert!(report.to_named_values().contains(&("beta", beta)));

    let flat = [100.0; 5_001];
    assert_eq!(
        portfolio_risk(
            &single_position("LEVERED", &asset_closes),
            Some(PriceSeries::new("FLAT", &flat)),
            &RiskConfig::default()
        ),
        Err(AnalyticsError::DegenerateBenchmark { symbol: "FLAT".into() })
    );
}

#[test]
fn sharpe_ratio_is_annual_excess_return_over_annual_volatility() {
    // Returns alternating +2 % and -1 % over 100 days: mean 0.5 %, sample sd
    // 1.5 % × sqrt(100/99). With a 3 % risk-free rate:
    // Sharpe = (0.005 × 252 - 0.03) / (sd × sqrt(252)).
    let returns: Vec<f64> = (0..100).map(|day| if day % 2 == 0 { 0.02 } else { -0.01 }).collect();
    let closes = prices_from_simple_returns(10.0, &returns);
    let config = RiskConfig { risk_free_rate_annual: 0.03, ..RiskConfig::default() };
    let report = portfolio_risk(&single_position("ALT", &closes), None, &config).unwrap();
    let sd = 0.015 * (100.0_f64 / 99.0).sqrt();
    assert_close(report.mean_return_annualized, 1.26, 1e-12, "annual mean");
    assert_close(report.volatility_annualized, sd * 252.0_f64.sqrt(), 1e-12, "annual vol");
    let expected = (1.26 - 0.03) / (sd * 252.0_f64.sqrt());
    assert_close(report.sharpe_ratio_annualized.unwrap(), expected, 1e-10, "Sharpe");
    assert_eq!(report.beta, None);

    let flat = [5.0; 50];
    let flat_report = portfolio_risk(&single_position("FLAT", &flat), None, &RiskConfig::default()).unwrap();
    assert_eq!(flat_report.sharpe_ratio_annualized, None);
    assert!(!flat_report.to_named_values().iter().any(|(name, _)| *name == "sharpe_ratio_annualized"));
}

#[test]
fn portfolio_daily_returns_are_weighted_simple_returns() {
    // A: 100 → 110 → 99 (+10 %, -10 %); B: 50 → 50 → 55 (0 %, +10 %); weights 1/4, 3/4.
    let positions = [
        PortfolioPosition { symbol: "A", weight: 0.25, closes: &[100.0, 110.0, 99.0] },
        PortfolioPosition { symbol: "B", weight: 0.75, closes: &[50.0, 50.0, 55.0] },
    ];
    let returns = portfolio_daily_returns(&positions).unwrap();
    assert_close(returns[0], 0.025, 1e-15, "day 1");
    assert_close(returns[1], 0.05, 1e-15, "day 2");
}

#[test]
fn weights_must_sum_to_one_within_1e_minus_6() {
    let closes = [100.0, 101.0, 102.0, 100.0];
    let with_weights = |a: f64, b: f64| {
        let positions = [
            PortfolioPosition { symbol: "A", weight: a, closes: &closes },
            PortfolioPosition { symbol: "B", weight: b, closes: &closes },
        ];
        portfolio_daily_returns(&positions)
    };
    match with_weights(0.5, 0.4) {
        Err(error @ AnalyticsError::WeightsDoNotSumToOne { .. }) => {
            assert!(error.to_string().contains("sum to 0.9"), "{error}");
        }
        other => panic!("expected WeightsDoNotSumToOne, got {other:?}"),
    }
    assert!(with_weights(0.5, 0.5 + 2e-6).is_err());
    assert!(with_weights(0.5, 0.5 + 5e-7).is_ok());
    assert!(with_weights(1.5, -0.5).is_ok(), "shorts are allowed");
    assert!(matches!(with_weights(f64::NAN, 1.0), Err(AnalyticsError::NonFiniteWeight { .. })));
}

#[test]
fn bad_positions_are_rejected_with_the_symbol_named() {
    let config = RiskConfig::default();
    assert_eq!(portfolio_risk(&[], None, &config), Err(AnalyticsError::EmptyPortfolio));
    let long = [100.0, 101.0, 102.0, 103.0];
    let short = [100.0, 101.0, 102.0];
    let misaligned = [
        PortfolioPosition { symbol: "LONG", weight: 0.5, closes: &long },
        PortfolioPosition { symbol: "SHORT", weight: 0.5, closes: &short },
    ];
    assert_eq!(
        portfolio_risk(&misaligned, None, &config),
        Err(AnalyticsError::MisalignedHistory {
            symbol: "SHORT".into(),
            actual: 3,
            reference_symbol: "LONG".into(),
            expected: 4,
        })
    );
    let bad_price = [100.0, -1.0, 102.0, 103.0];
    assert!(matches!(
        portfolio_risk(&single_position("NEG", &bad_price), None, &config),
        Err(AnalyticsError::NonPositivePrice { ref symbol, index: 1, .. }) if symbol == "NEG"
    ));
    let too_few_paths = RiskConfig { monte_carlo_paths: 99, ..config };
    assert_eq!(
        portfolio_risk(&single_position("OK", &long), None, &too_few_paths),
        Err(AnalyticsError::MonteCarloPathsOutOfRange { paths: 99, minimum: 100, maximum: 1_000_000 })
    );
    let short_benchmark = Some(PriceSeries::new("BENCH", &short));
    assert!(matches!(
        portfolio_risk(&single_position("OK", &long), short_benchmark, &config),
        Err(AnalyticsError::MisalignedHistory { ref symbol, .. }) if symbol == "BENCH"
    ));
}

#[test]
fn risk_named_values_are_finite_and_uniquely_named() {
    let closes = prices_from_simple_returns(100.0, &normal_sample(51, 300, 0.0, 0.02));
    let bench = prices_from_simple_returns(100.0, &normal_sample(52, 300, 0.0, 0.01));
    let report =
        portfolio_risk(&single_position("S", &closes), Some(PriceSeries::new("B", &bench)), &RiskConfig::default())
            .unwrap();
    let values = report.to_named_values();
    assert_eq!(values.len(), 16);
    assert!(values.iter().all(|(_, value)| value.is_finite()));
    let mut names: Vec<_> = values.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), values.len());
    // Tail figures are ordered: CVaR beyond VaR, 99 % beyond 95 %.
    assert!(report.historical_cvar_95_daily >= report.historical_var_95_daily);
    assert!(report.historical_var_99_daily >= report.historical_var_95_daily);
    assert!(report.monte_carlo_cvar_99_daily >= report.monte_carlo_var_99_daily);
}
