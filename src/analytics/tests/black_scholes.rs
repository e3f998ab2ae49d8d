//! Black-Scholes-Merton against published values (Hull, "Options, Futures, and Other
//! Derivatives"; Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed.), put-call
//! parity and finite differences.

use super::support::assert_close;
use crate::analytics::{
    AnalyticsError, ExerciseStyle, NamedValues, OptionContract, OptionKind, OptionValuation, black_scholes,
    price_option,
};

/// A contract from the textbook notation (S, K, T, r, q, σ).
pub(super) fn contract(
    kind: OptionKind,
    spot: f64,
    strike: f64,
    time_to_expiry_years: f64,
    risk_free_rate_annual: f64,
    dividend_yield_annual: f64,
    volatility_annual: f64,
) -> OptionContract {
    OptionContract {
        kind,
        spot,
        strike,
        time_to_expiry_years,
        risk_free_rate_annual,
        dividend_yield_annual,
        volatility_annual,
    }
}

fn price(contract: &OptionContract) -> f64 {
    match black_scholes(contract) {
        Ok(valuation) => valuation.price,
        Err(error) => panic!("valid contract {contract:?} was rejected: {error}"),
    }
}

#[test]
fn hull_example_call_is_4_76_and_put_is_0_81() {
    // Hull's worked example in the Black-Scholes-Merton chapter: S=42, K=40, r=10 %, σ=20 %,
    // T=0.5 gives d1 = 0.7693, d2 = 0.6278, c = 4.76, p = 0.81. Published to the cent (the d's
    // to 4 decimals), so the tolerance is half a unit of the last published digit.
    let call = black_scholes(&contract(OptionKind::Call, 42.0, 40.0, 0.5, 0.10, 0.0, 0.20)).unwrap();
    let put = black_scholes(&contract(OptionKind::Put, 42.0, 40.0, 0.5, 0.10, 0.0, 0.20)).unwrap();
    assert_close(call.price, 4.76, 0.005, "Hull call");
    assert_close(put.price, 0.81, 0.005, "Hull put");
    assert_close(call.d1, 0.7693, 0.00005, "Hull d1");
    assert_close(call.d2, 0.6278, 0.00005, "Hull d2");
}

#[test]
fn haug_generalized_black_scholes_call_is_2_1334() {
    // Haug's generalized Black-Scholes example (section 1.1): S=60, K=65, T=0.25, r=8 %,
    // b=r (no dividend), σ=30 %: c = 2.1334, published to 4 decimals.
    let call = contract(OptionKind::Call, 60.0, 65.0, 0.25, 0.08, 0.0, 0.30);
    assert_close(price(&call), 2.1334, 0.00005, "Haug call");
}

#[test]
fn haug_merton_dividend_yield_put_is_2_4648() {
    // Haug's Merton (1973) example (section 1.1): S=100, K=95, T=0.5, r=10 %, q=5 %, σ=20 %:
    // p = 2.4648.
    let put = contract(OptionKind::Put, 100.0, 95.0, 0.5, 0.10, 0.05, 0.20);
    assert_close(price(&put), 2.4648, 0.00005, "Haug Merton put");
}

#[test]
fn haug_greek_examples_match_to_four_decimals() {
    // Haug's Greek examples (chapter 2; carry b = r - q). Published to 4 decimals: the
    // tolerance is half a unit of the last.
    let tolerance = 0.00005;
    // Delta: S=105, K=100, T=0.5, r=10 %, b=0 (q=r), σ=36 %: call 0.5946, put -0.3566.
    let call = black_scholes(&contract(OptionKind::Call, 105.0, 100.0, 0.5, 0.10, 0.10, 0.36)).unwrap();
    let put = black_scholes(&contract(OptionKind::Put, 105.0, 100.0, 0.5, 0.10, 0.10, 0.36)).unwrap();
    assert_close(call.delta, 0.5946, tolerance, "Haug call delta");
    assert_close(put.delta, -0.3566, tolerance, "Haug put delta");
    // Gamma and vega: S=55, K=60, T=0.75, r=b=10 %, σ=30 %: gamma 0.0278, vega 18.9358.
    let gamma_vega = black_scholes(&contract(OptionKind::Call, 55.0, 60.0, 0.75, 0.10, 0.0, 0.30)).unwrap();
    assert_close(gamma_vega.gamma, 0.0278, tolerance, "Haug gamma");
    assert_close(gamma_vega.vega, 18.9358, tolerance, "Haug vega");
    // Theta: S=430, K=405, T=0.0833, r=7 %, b=2 % (q=5 %), σ=20 %: put theta -31.1924 a year.
    let theta = black_scholes(&contract(OptionKind::Put, 430.0, 405.0, 0.0833, 0.07, 0.05, 0.20)).unwrap();
    assert_close(theta.theta_per_year, -31.1924, tolerance, "Haug put theta");
    // Rho: S=72, K=75, T=1, r=b=9 %, σ=19 %: call rho 38.7325.
    let rho = black_scholes(&contract(OptionKind::Call, 72.0, 75.0, 1.0, 0.09, 0.0, 0.19)).unwrap();
    assert_close(rho.rho, 38.7325, tolerance, "Haug call rho");
}

#[test]
fn hull_greek_letters_example_matches_published_greeks() {
    // Hull's running example of the chapter "The Greek Letters": S=49, K=50, r=5 %, σ=20 %,
    // T=20 weeks (0.3846): c = 2.40, delta 0.522, gamma 0.066, vega 12.1, theta -4.31 a year
    // (-0.0118 a calendar day), rho 8.91. Tolerances: half a unit of the last published digit.
    let call = black_scholes(&contract(OptionKind::Call, 49.0, 50.0, 0.3846, 0.05, 0.0, 0.20)).unwrap();
    assert_close(call.price, 2.40, 0.005, "price");
    assert_close(call.delta, 0.522, 0.0005, "delta");
    assert_close(call.gamma, 0.066, 0.0005, "gamma");
    assert_close(call.vega, 12.1, 0.05, "vega");
    assert_close(call.theta_per_year, -4.31, 0.005, "theta per year");
    assert_close(call.theta_per_day, -0.0118, 0.00005, "theta per calendar day");
    assert_close(call.rho, 8.91, 0.005, "rho");
}

#[test]
fn put_call_parity_holds_to_1e_10() {
    // C - P = S e^(-qT) - K e^(-rT) is an identity of the formulas once N(x) + N(-x) = 1, which
    // erfc gives to rounding; 1e-10 on prices up to ~100 leaves room for a few ulps of each term.
    for &(spot, strike, time, rate, dividend_yield, volatility) in &[
        (42.0, 40.0, 0.5, 0.10, 0.0, 0.20),
        (100.0, 95.0, 0.5, 0.10, 0.05, 0.20),
        (60.0, 65.0, 0.25, 0.08, 0.0, 0.30),
        (100.0, 150.0, 2.0, 0.03, 0.02, 0.45),
        (100.0, 50.0, 0.01, -0.005, 0.01, 0.15),
        (20.0, 25.0, 5.0, 0.06, 0.0, 0.80),
    ] {
        let call = price(&contract(OptionKind::Call, spot, strike, time, rate, dividend_yield, volatility));
        let put = price(&contract(OptionKind::Put, spot, strike, time, rate, dividend_yield, volatility));
        let forward_difference = spot * (-dividend_yield * time).exp() - strike * (-rate * time).exp();
        assert_close(call - put, forward_difference, 1e-10, "put-call parity");
    }
}

#[test]
fn greeks_match_central_finite_differences() {
    // Central differences have truncation error O(h²): with relative bumps of 1e-4 that is
    // ~1e-8 of the Greek, and rounding adds ~1e-16 × price / h ≈ 1e-11. A relative tolerance
    // of 1e-6 (floored at 1e-8 absolute for Greeks near zero) catches any wrong sign or term.
    for kind in [OptionKind::Call, OptionKind::Put] {
        for &(spot, strike, time, rate, dividend_yield, volatility) in &[
            (42.0, 40.0, 0.5, 0.10, 0.0, 0.20),
            (100.0, 110.0, 1.5, 0.04, 0.03, 0.35),
            (430.0, 405.0, 0.0833, 0.07, 0.05, 0.20),
        ] {
            let base = contract(kind, spot, strike, time, rate, dividend_yield, volatility);
            let greeks = black_scholes(&base).unwrap();
            let bumped = |change: &dyn Fn(&mut OptionContract, f64), h: f64| {
                let (mut up, mut down) = (base, base);
                change(&mut up, h);
                change(&mut down, -h);
                (price(&up), price(&down))
            };
            let close = |actual: f64, expected: f64, what: &str| {
                assert_close(actual, expected, 1e-6 * expected.abs().max(1e-2), what);
            };

            let h = 1e-4 * spot;
            let (up, down) = bumped(&|c, d| c.spot += d, h);
            close(greeks.delta, (up - down) / (2.0 * h), "delta");
            close(greeks.gamma, (up - 2.0 * greeks.price + down) / (h * h), "gamma");

            let h = 1e-4 * volatility;
            let (up, down) = bumped(&|c, d| c.volatility_annual += d, h);
            close(greeks.vega, (up - down) / (2.0 * h), "vega");

            // Theta is the decay as calendar time passes: minus the derivative in T.
            let h = 1e-4 * time;
            let (up, down) = bumped(&|c, d| c.time_to_expiry_years += d, h);
            close(greeks.theta_per_year, -(up - down) / (2.0 * h), "theta");

            let h = 1e-4;
            let (up, down) = bumped(&|c, d| c.risk_free_rate_annual += d, h);
            close(greeks.rho, (up - down) / (2.0 * h), "rho");
        }
    }
}

#[test]
fn per_point_greeks_are_the_unit_greeks_scaled() {
    let call = black_scholes(&contract(OptionKind::Call, 49.0, 50.0, 0.3846, 0.05, 0.0, 0.20)).unwrap();
    assert_eq!(call.vega_per_vol_point, call.vega / 100.0);
    assert_eq!(call.rho_per_rate_point, call.rho / 100.0);
    assert_eq!(call.theta_per_day, call.theta_per_year / 365.0);
}

#[test]
fn invalid_inputs_are_rejected_naming_the_field() {
    let valid = contract(OptionKind::Call, 42.0, 40.0, 0.5, 0.10, 0.0, 0.20);
    type BreakContract = fn(&mut OptionContract);
    let cases: [(&str, BreakContract); 7] = [
        ("spot", |c| c.spot = 0.0),
        ("strike", |c| c.strike = -40.0),
        ("volatility_annual", |c| c.volatility_annual = 0.0),
        ("time_to_expiry_years", |c| c.time_to_expiry_years = 0.0),
        ("spot", |c| c.spot = f64::NAN),
        ("risk_free_rate_annual", |c| c.risk_free_rate_annual = f64::NAN),
        ("dividend_yield_annual", |c| c.dividend_yield_annual = f64::INFINITY),
    ];
    for (field, break_it) in cases {
        let mut broken = valid;
        break_it(&mut broken);
        match black_scholes(&broken) {
            Err(AnalyticsError::InvalidParameter { name, .. }) => assert_eq!(name, field),
            other => panic!("{field}: expected InvalidParameter, got {other:?}"),
        }
    }
}

#[test]
fn price_option_uses_closed_form_for_european_and_the_tree_for_american() {
    let put = contract(OptionKind::Put, 50.0, 50.0, 5.0 / 12.0, 0.10, 0.0, 0.40);
    let european = price_option(&put, ExerciseStyle::European, None).unwrap();
    let american = price_option(&put, ExerciseStyle::American, None).unwrap();
    assert!(matches!(european, OptionValuation::BlackScholes(_)));
    match &american {
        OptionValuation::Binomial(tree) => assert_eq!(tree.steps, 500),
        other => panic!("expected a tree valuation, got {other:?}"),
    }
    assert!(american.price() > european.price());
    for valuation in [european, american] {
        let values = valuation.to_named_values();
        assert!(values.iter().all(|(_, value)| value.is_finite()));
        assert!(values.iter().any(|&(name, value)| name == "price" && value == valuation.price()));
    }
}
