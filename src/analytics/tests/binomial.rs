//! Cox-Ross-Rubinstein trees against Hull's published American put and against
//! Black-Scholes-Merton.

use super::black_scholes::contract;
use super::support::assert_close;
use crate::analytics::options::MAXIMUM_BINOMIAL_STEPS;
use crate::analytics::{AnalyticsError, ExerciseStyle, OptionContract, OptionKind, binomial_crr, black_scholes};

/// A bound on CRR's discretization error for options near the money: its leading term is
/// proportional to S σ sqrt(T) / steps, with a coefficient that oscillates with where the strike
/// falls between nodes. Measured from 25 to 3,200 steps on the contracts below, the coefficient
/// stays under 0.1; the bound takes 0.2.
fn crr_error_bound(option: &OptionContract, steps: usize) -> f64 {
    0.2 * option.spot * option.volatility_annual * option.time_to_expiry_years.sqrt() / steps as f64
}

#[test]
fn hull_american_put_tree_matches_published_prices() {
    // Hull's binomial-tree example (chapter "Basic Numerical Procedures"): American put,
    // S=50, K=50, r=10 %, σ=40 %, T=5 months.
    // Five steps give 4.49 (the worked tree); 30, 50, 100 and 500 steps give 4.263, 4.272,
    // 4.278 and 4.283. Tolerances: half a unit of the last published digit.
    let put = contract(OptionKind::Put, 50.0, 50.0, 5.0 / 12.0, 0.10, 0.0, 0.40);
    let tree_price = |steps| binomial_crr(&put, ExerciseStyle::American, steps).unwrap().price;
    assert_close(tree_price(5), 4.49, 0.005, "5 steps");
    for (steps, published) in [(30, 4.263), (50, 4.272), (100, 4.278), (500, 4.283)] {
        assert_close(tree_price(steps), published, 0.0005, &format!("{steps} steps"));
    }
}

#[test]
fn american_put_is_worth_at_least_the_european_put() {
    for &(spot, strike, rate, dividend_yield) in
        &[(50.0, 50.0, 0.10, 0.0), (40.0, 50.0, 0.05, 0.0), (60.0, 50.0, 0.05, 0.02), (100.0, 100.0, 0.0, 0.03)]
    {
        let put = contract(OptionKind::Put, spot, strike, 1.0, rate, dividend_yield, 0.30);
        let american = binomial_crr(&put, ExerciseStyle::American, 500).unwrap().price;
        let european_tree = binomial_crr(&put, ExerciseStyle::European, 500).unwrap().price;
        let european_closed_form = black_scholes(&put).unwrap().price;
        assert!(american >= european_tree, "{put:?}: {american} < {european_tree}");
        // Against the closed form the tree's own discretization error applies.
        let bound = crr_error_bound(&put, 500);
        assert!(american >= european_closed_form - bound, "{put:?}");
    }
    // In the money with a positive rate, early exercise has real value.
    let deep_put = contract(OptionKind::Put, 40.0, 50.0, 1.0, 0.05, 0.0, 0.30);
    let premium =
        binomial_crr(&deep_put, ExerciseStyle::American, 500).unwrap().price - black_scholes(&deep_put).unwrap().price;
    assert!(premium > 0.1, "early-exercise premium {premium}");
}

#[test]
fn american_call_without_dividends_equals_european_call() {
    // Without dividends early exercise of a call is never optimal (Merton), so on the same tree
    // the American and European values are the same numbers, and both sit within the tree's
    // discretization error of the closed form.
    for &(spot, strike, rate) in &[(42.0, 40.0, 0.10), (100.0, 110.0, 0.05), (50.0, 30.0, 0.02)] {
        let call = contract(OptionKind::Call, spot, strike, 0.75, rate, 0.0, 0.25);
        let american = binomial_crr(&call, ExerciseStyle::American, 500).unwrap().price;
        let european_tree = binomial_crr(&call, ExerciseStyle::European, 500).unwrap().price;
        assert_close(american, european_tree, 1e-12, "American vs European on the tree");
        let closed_form = black_scholes(&call).unwrap().price;
        assert_close(american, closed_form, crr_error_bound(&call, 500), "tree vs closed form");
    }
}

#[test]
fn american_call_with_high_dividend_yield_is_worth_more_than_european() {
    // A large dividend yield makes exercising a deep in-the-money call early worthwhile.
    let call = contract(OptionKind::Call, 150.0, 100.0, 2.0, 0.03, 0.10, 0.20);
    let american = binomial_crr(&call, ExerciseStyle::American, 500).unwrap().price;
    let european = black_scholes(&call).unwrap().price;
    assert!(american > european + 1.0, "American {american}, European {european}");
    assert!(american >= call.spot - call.strike, "worth at least exercising now");
}

#[test]
fn crr_european_prices_converge_to_black_scholes() {
    // CRR's error shrinks like 1/steps with an oscillating coefficient (see `crr_error_bound`),
    // so 32× more steps must cut the worst error by at least 10× (not 32×: the oscillation), and
    // at 1,600 and 3,200 steps it must be within the bound.
    for option in [
        contract(OptionKind::Call, 42.0, 40.0, 0.5, 0.10, 0.0, 0.20),
        contract(OptionKind::Put, 42.0, 40.0, 0.5, 0.10, 0.0, 0.20),
        contract(OptionKind::Call, 100.0, 95.0, 0.5, 0.10, 0.05, 0.20),
        contract(OptionKind::Put, 100.0, 100.0, 0.5, 0.10, 0.03, 0.20),
    ] {
        let closed_form = black_scholes(&option).unwrap().price;
        let worst_error = |steps: &[usize]| {
            steps
                .iter()
                .map(|&n| {
                    let tree = binomial_crr(&option, ExerciseStyle::European, n).unwrap();
                    (tree.price - closed_form).abs()
                })
                .fold(0.0, f64::max)
        };
        let coarse = worst_error(&[50, 100]);
        let fine = worst_error(&[1600, 3200]);
        assert!(fine <= coarse / 10.0, "{option:?}: coarse {coarse}, fine {fine}");
        assert!(fine < crr_error_bound(&option, 1600), "{option:?}: fine {fine}");
    }
}

#[test]
fn tree_greeks_approach_black_scholes_greeks() {
    // At 1,000 steps the tree's delta, gamma and theta differ from the closed form by O(1/steps)
    // (measured: ≤ 1.5e-4, ≤ 6e-5 and ≤ 2.4e-3 on these contracts); the tolerances leave ~3×.
    for option in [
        contract(OptionKind::Call, 42.0, 40.0, 0.5, 0.10, 0.0, 0.20),
        contract(OptionKind::Put, 100.0, 100.0, 0.5, 0.10, 0.03, 0.20),
    ] {
        let tree = binomial_crr(&option, ExerciseStyle::European, 1000).unwrap();
        let exact = black_scholes(&option).unwrap();
        assert_close(tree.delta, exact.delta, 5e-4, "delta");
        assert_close(tree.gamma, exact.gamma, 2e-4, "gamma");
        assert_close(tree.theta_per_year, exact.theta_per_year, 8e-3, "theta");
    }
}

#[test]
fn tree_rejects_bad_step_counts_and_arbitrage_probabilities() {
    let put = contract(OptionKind::Put, 50.0, 50.0, 1.0, 0.10, 0.0, 0.40);
    for steps in [0, 1, MAXIMUM_BINOMIAL_STEPS + 1] {
        assert!(matches!(
            binomial_crr(&put, ExerciseStyle::American, steps),
            Err(AnalyticsError::InvalidTreeSteps { .. })
        ));
    }
    // σ = 1 %, r = 50 %, two half-year steps: e^(rΔt) = 1.28 > u = 1.007, so p > 1.
    let coarse = contract(OptionKind::Put, 50.0, 50.0, 1.0, 0.50, 0.0, 0.01);
    assert!(matches!(
        binomial_crr(&coarse, ExerciseStyle::American, 2),
        Err(AnalyticsError::TreeProbabilityOutOfRange { steps: 2, .. })
    ));
    assert!(matches!(
        binomial_crr(&contract(OptionKind::Put, 50.0, 0.0, 1.0, 0.1, 0.0, 0.4), ExerciseStyle::American, 100),
        Err(AnalyticsError::InvalidParameter { name: "strike", .. })
    ));
}
