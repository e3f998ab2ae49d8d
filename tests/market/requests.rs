//! The request kinds computed from seeded prices, and their error codes.

use super::*;

#[tokio::test]
async fn volatility_equals_the_analytics_on_the_same_closes() {
    let (store, schema, _) = fresh_store().await;
    let seeded = plan(3, 300, 11, None);
    seed_prices(&store, &seeded, |_, _| {}).await.expect("seeded");
    let request = Analysis::parse("market.volatility", &json!({"symbol": "SYN0002", "window_days": 60})).unwrap();
    let result = request.compute(&store).await.expect("computed");

    let generated = generate_seed_series(&seeded).unwrap();
    let closes = trailing_window(&generated[1].closes, 60);
    let expected = market_volatility(PriceSeries::new("SYN0002", closes)).unwrap();
    assert_eq!(number(&result, "return_count"), 60.0);
    assert_eq!(number(&result, "volatility_annualized"), expected.volatility_annualized);
    assert_eq!(number(&result, "mean_return_daily"), expected.mean_return_daily);
    assert_eq!(number(&result, "excess_kurtosis"), expected.excess_kurtosis);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn option_price_matches_hull_black_scholes_values() {
    let (store, schema, _) = fresh_store().await;
    let hull = json!({"spot": 42, "strike": 40, "rate": 0.1, "volatility": 0.2, "time_to_expiry": 0.5});
    let price = |right: &str| {
        let mut params = hull.clone();
        params["right"] = json!(right);
        Analysis::parse("option.price", &params).unwrap()
    };
    let call = price("call").compute(&store).await.expect("call priced");
    let put = price("put").compute(&store).await.expect("put priced");
    assert!((number(&call, "price") - 4.76).abs() < 0.005, "{call:?}");
    assert!((number(&put, "price") - 0.81).abs() < 0.005, "{put:?}");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn option_price_on_a_symbol_uses_its_latest_close_and_realized_volatility() {
    let (store, schema, _) = fresh_store().await;
    let seeded = plan(1, 120, 2, None);
    seed_prices(&store, &seeded, |_, _| {}).await.expect("seeded");
    let params = json!({"symbol": "SYN0001", "strike": 100, "expiry_days": 90, "right": "put", "style": "american",
        "window_days": 60, "steps": 200});
    let result = Analysis::parse("option.price", &params).unwrap().compute(&store).await.expect("priced");

    let closes = &generate_seed_series(&seeded).unwrap()[0].closes;
    let volatility = market_volatility(PriceSeries::new("SYN0001", trailing_window(closes, 60))).unwrap();
    assert_eq!(number(&result, "spot"), *closes.last().unwrap());
    assert_eq!(number(&result, "volatility_annual"), volatility.volatility_annualized);
    assert!(number(&result, "price") >= (100.0 - closes.last().unwrap()).max(0.0));
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn portfolio_risk_reports_ordered_tails_and_beta() {
    let (store, schema, _) = fresh_store().await;
    seed_prices(&store, &plan(3, 400, 8, Some("MKT")), |_, _| {}).await.expect("seeded");
    let params = json!({"symbols": ["SYN0001", "SYN0002", "SYN0003"],
        "weights": {"SYN0001": 0.5, "SYN0002": 0.3, "SYN0003": 0.2}, "window_days": 250, "benchmark": "MKT",
        "confidence_levels": ["0.95", "0.975", "0.99"], "paths": 5000, "seed": 4});
    let request = Analysis::parse("portfolio.risk", &params).unwrap();
    assert_eq!(request.tags(), ["symbol:MKT", "symbol:SYN0001", "symbol:SYN0002", "symbol:SYN0003"]);
    let result = request.compute(&store).await.expect("computed");

    assert_eq!(number(&result, "return_count"), 250.0);
    assert_eq!(number(&result, "monte_carlo_paths"), 5000.0);
    for method in ["historical", "monte_carlo"] {
        let var = |level: &str| number(&result, &format!("{method}_var_{level}_daily"));
        let cvar = |level: &str| number(&result, &format!("{method}_cvar_{level}_daily"));
        assert!(var("99") >= var("95"), "{result:?}");
        assert!(cvar("95") >= var("95") && cvar("99") >= var("99"), "{result:?}");
    }
    let var_975 = number(&result, "historical_var_97_5_daily");
    assert!(var_975 >= number(&result, "historical_var_95_daily"));
    assert!(var_975 <= number(&result, "historical_var_99_daily"));
    // The synthetic symbols load on the market factor with correlation 0.3 to 0.8.
    let beta = number(&result, "beta");
    assert!(beta > 0.0 && beta < 5.0, "{result:?}");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn unknown_symbols_give_unknown_symbol() {
    let (store, schema, _) = fresh_store().await;
    seed_prices(&store, &plan(1, 30, 1, None), |_, _| {}).await.expect("seeded");
    let volatility = Analysis::parse("market.volatility", &json!({"symbol": "NOPE"})).unwrap();
    let error = volatility.compute(&store).await.unwrap_err();
    assert_eq!(error.code(), "unknown_symbol");
    assert!(error.to_string().contains("NOPE"), "{error}");

    let portfolio = Analysis::parse("portfolio.risk", &json!({"weights": {"SYN0001": 0.5, "GHOST": 0.5}})).unwrap();
    let error = portfolio.compute(&store).await.unwrap_err();
    assert_eq!(error.code(), "unknown_symbol");
    assert!(error.to_string().contains("GHOST"), "{error}");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn invalid_params_and_unknown_kinds_give_their_codes() {
    let cases = [
        ("market.volatility", json!({"symbol": "A", "window_days": "thirty"}), "invalid_params", "window_days"),
        ("portfolio.risk", json!({"weights": {"A": 0.7, "B": 0.7}}), "invalid_params", "weights"),
        (
            "option.price",
            json!({"spot": 42, "strike": 0, "volatility": 0.2, "time_to_expiry": 0.5, "right": "call"}),
            "invalid_params",
            "strike",
        ),
        ("market.sentiment", json!({}), "unknown_kind", "market.sentiment"),
    ];
    for (kind, params, code, named) in cases {
        let error = Analysis::parse(kind, &params).unwrap_err();
        assert_eq!(error.code(), code, "{kind} {params}");
        assert!(error.to_string().contains(named), "{error}");
    }
}

#[tokio::test]
async fn too_short_a_history_gives_insufficient_history() {
    let (store, schema, _) = fresh_store().await;
    store_closes(&store, "TINY", &[(1, 10.0), (2, 11.0)]).await;
    let request = Analysis::parse("market.volatility", &json!({"symbol": "TINY", "window_days": 30})).unwrap();
    assert_eq!(request.compute(&store).await.unwrap_err().code(), "insufficient_history");
    drop_schema(&store, &schema).await;
}
