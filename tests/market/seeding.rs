//! Seeding: row counts, determinism, idempotence.

use super::*;

#[tokio::test]
async fn seeding_stores_symbols_times_days_rows() {
    let (store, schema, _) = fresh_store().await;
    let report = seed_prices(&store, &plan(7, 45, 1, None), |_, _| {}).await.expect("seeded");
    assert_eq!(report.rows_written(), 7 * 45);
    assert_eq!(all_closes(&store).await.len(), 7 * 45);
    assert_eq!(store.known_symbols().await.unwrap().len(), 7);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn seeding_with_the_same_seed_stores_the_same_generated_closes() {
    let (first, first_schema, _) = fresh_store().await;
    let (second, second_schema, _) = fresh_store().await;
    let same = plan(3, 30, 99, Some("MKT"));
    seed_prices(&first, &same, |_, _| {}).await.expect("first seeded");
    seed_prices(&second, &same, |_, _| {}).await.expect("second seeded");
    let stored = all_closes(&first).await;
    assert_eq!(stored, all_closes(&second).await);

    let generated = generate_seed_series(&same).expect("generated");
    for series in &generated {
        let closes: Vec<f64> =
            stored.iter().filter(|(symbol, _, _)| *symbol == series.symbol).map(|(_, _, close)| *close).collect();
        assert_eq!(closes, series.closes, "{} is stored exactly as generated", series.symbol);
    }
    drop_schema(&first, &first_schema).await;
    drop_schema(&second, &second_schema).await;
}

#[tokio::test]
async fn reseeding_replaces_the_same_rows_and_changes_nothing() {
    let (store, schema, _) = fresh_store().await;
    let first = seed_prices(&store, &plan(4, 25, 5, None), |_, _| {}).await.expect("seeded");
    assert_eq!(first.changed_symbols().len(), 4);
    let before = all_closes(&store).await;

    let again = seed_prices(&store, &plan(4, 25, 5, None), |_, _| {}).await.expect("re-seeded");
    assert_eq!(again.rows_written(), 100);
    assert_eq!(again.rows_changed(), 0);
    assert!(again.changed_symbols().is_empty());
    assert_eq!(all_closes(&store).await, before);

    let other_seed = seed_prices(&store, &plan(4, 25, 6, None), |_, _| {}).await.expect("seeded anew");
    assert_eq!(other_seed.changed_symbols().len(), 4);
    assert_eq!(all_closes(&store).await.len(), 100);
    drop_schema(&store, &schema).await;
}
