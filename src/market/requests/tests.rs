//! Parsing, tags and error codes (no database; computations are tested in tests/market.rs).

use serde_json::json;

use super::*;
use crate::analytics::{ExerciseStyle, OptionKind};

fn invalid_field(result: Result<Analysis, RequestError>) -> String {
    match result {
        Err(RequestError::InvalidParams { field, .. }) => field,
        other => panic!("expected invalid_params, got {other:?}"),
    }
}

#[test]
fn volatility_params_parse_with_a_default_window() {
    let request = Analysis::parse("market.volatility", &json!({"symbol": "AAPL"})).unwrap();
    assert_eq!(
        request,
        Analysis::MarketVolatility(VolatilityRequest { symbol: "AAPL".into(), window_days: DEFAULT_WINDOW_DAYS })
    );
}

#[test]
fn params_may_arrive_as_json_text() {
    let request = Analysis::parse("market.volatility", &json!(r#"{"symbol":"MSFT","window_days":30}"#)).unwrap();
    assert_eq!(request.tags(), ["symbol:MSFT"]);
}

#[test]
fn unknown_kind_has_its_code() {
    let error = Analysis::parse("market.crystal_ball", &json!({})).unwrap_err();
    assert_eq!(error.code(), "unknown_kind");
    assert!(error.to_string().contains("market.crystal_ball"), "{error}");
}

#[test]
fn invalid_params_name_the_field() {
    assert_eq!(invalid_field(Analysis::parse("market.volatility", &json!({}))), "symbol");
    assert_eq!(
        invalid_field(Analysis::parse("market.volatility", &json!({"symbol": "A", "window_days": 1}))),
        "window_days"
    );
    assert_eq!(
        invalid_field(Analysis::parse("market.volatility", &json!({"symbol": "A", "windw_days": 30}))),
        "windw_days"
    );
    assert_eq!(invalid_field(Analysis::parse("market.volatility", &json!({"symbol": 7}))), "symbol");
    let error = Analysis::parse(
        "option.price",
        &json!({"spot": -1, "strike": 40, "volatility": 0.2,
        "time_to_expiry": 0.5, "right": "call"}),
    )
    .unwrap_err();
    assert_eq!(error.code(), "invalid_params");
    assert!(error.to_string().contains("`spot`"), "{error}");
}

#[test]
fn portfolio_positions_are_sorted_and_weights_must_sum_to_one() {
    let params = json!({"symbols": ["MSFT", "AAPL"], "weights": {"MSFT": 0.4, "AAPL": 0.6}, "benchmark": "MKT"});
    let Analysis::PortfolioRisk(request) = Analysis::parse("portfolio.risk", &params).unwrap() else {
        panic!("not a portfolio request");
    };
    let symbols: Vec<&str> = request.positions.iter().map(|p| p.symbol.as_str()).collect();
    assert_eq!(symbols, ["AAPL", "MSFT"]);
    assert_eq!(request.confidence_levels, DEFAULT_CONFIDENCE_LEVELS);
    assert_eq!(request.monte_carlo_paths, 10_000);
    assert_eq!(invalid_field(Analysis::parse("portfolio.risk", &json!({"weights": {"A": 0.5, "B": 0.4}}))), "weights");
    assert_eq!(
        invalid_field(Analysis::parse("portfolio.risk", &json!({"symbols": ["A"], "weights": {"A": 0.5, "B": 0.5}}))),
        "symbols"
    );
    assert_eq!(
        invalid_field(Analysis::parse(
            "portfolio.risk",
            &json!({"weights": {"A": 1.0}, "confidence_levels": ["0.95", 1.5]})
        )),
        "confidence_levels[1]"
    );
}

#[test]
fn tags_name_every_symbol_once() {
    let params = json!({"weights": {"MSFT": 0.5, "AAPL": 0.5}, "benchmark": "AAPL"});
    let request = Analysis::parse("portfolio.risk", &params).unwrap();
    assert_eq!(request.tags(), ["symbol:AAPL", "symbol:MSFT"]);
    let option = Analysis::parse(
        "option.price",
        &json!({"spot": 42, "strike": 40, "volatility": 0.2,
        "time_to_expiry": 0.5, "right": "put"}),
    )
    .unwrap();
    assert!(option.tags().is_empty());
}

#[test]
fn option_params_accept_the_example_request() {
    let params = json!({"symbol": "MSFT", "strike": 420.0, "expiry_days": 90, "style": "american", "right": "put"});
    let Analysis::OptionPrice(request) = Analysis::parse("option.price", &params).unwrap() else {
        panic!("not an option request");
    };
    assert_eq!(request.right, OptionKind::Put);
    assert_eq!(request.style, ExerciseStyle::American);
    assert!((request.time_to_expiry_years - 90.0 / 365.0).abs() < 1e-15);
    assert_eq!(request.symbol.as_deref(), Some("MSFT"));
}

#[test]
fn option_without_symbol_needs_spot_and_volatility() {
    let base = json!({"strike": 40, "time_to_expiry": 0.5, "right": "call"});
    assert_eq!(invalid_field(Analysis::parse("option.price", &base)), "spot");
    assert_eq!(
        invalid_field(Analysis::parse(
            "option.price",
            &json!({"spot": 42, "strike": 40,
            "time_to_expiry": 0.5, "right": "call"})
        )),
        "volatility"
    );
    assert_eq!(
        invalid_field(Analysis::parse(
            "option.price",
            &json!({"spot": 42, "strike": 40, "volatility": 0.2,
            "time_to_expiry": 0.5, "right": "straddle"})
        )),
        "right"
    );
}

#[test]
fn only_store_failures_are_transient() {
    assert!(!RequestError::UnknownSymbol { symbol: "X".into() }.is_transient());
    assert_eq!(RequestError::UnknownSymbol { symbol: "X".into() }.code(), "unknown_symbol");
}
