//! The price store's statement cache: frequent identical reads answered from the tiered cache
//! (real Redis and PostgreSQL), and invalidated by the same orders as the cached results.

use frontier::cache::{InvalidationVersion, TieredCache};
use frontier::market::store::sql as sql_text;

use super::*;

/// A cache of the development settings with a prefix and disk folder of its own.
async fn fresh_cache() -> (TieredCache, tempfile::TempDir) {
    let settings = settings();
    let url = common::redis::stack_redis(&settings).await;
    let disk = tempfile::tempdir().unwrap();
    let mut cache = settings.cache.clone();
    cache.redis_key_prefix = unique("statements");
    cache.disk_dir = disk.path().to_path_buf();
    (TieredCache::connect(&cache, Some(&url)).await.unwrap(), disk)
}

/// Closes of `symbol` on days 1..=days, rising by one a day from 100.
async fn seed_symbol(store: &PriceStore, symbol: &str, days: i32) {
    let closes: Vec<(i32, f64)> = (1..=days).map(|day| (day, 100.0 + f64::from(day))).collect();
    store_closes(store, symbol, &closes).await;
}

#[tokio::test]
async fn identical_reads_share_one_statement_from_their_second_sighting() {
    let (store, schema, events) = fresh_store().await;
    let (cache, _disk) = fresh_cache().await;
    seed_symbol(&store, "AAPL", 300).await;
    let plain = store.latest_closes("AAPL", 253).await.unwrap();
    let cached_store = store.clone().with_statement_cache(cache);
    let before = statements_run(&events, sql_text::LATEST_CLOSES);

    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(cached_store.latest_closes("AAPL", 253).await.unwrap());
    }

    // The first sighting runs plainly, the second runs and is cached, the rest are hits.
    assert_eq!(statements_run(&events, sql_text::LATEST_CLOSES) - before, 2);
    assert!(answers.iter().all(|answer| *answer == plain), "every answer is PostgreSQL's, bit for bit");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn aligned_closes_from_the_cache_equal_postgresql_s() {
    let (store, schema, events) = fresh_store().await;
    let (cache, _disk) = fresh_cache().await;
    seed_symbol(&store, "AAPL", 200).await;
    seed_symbol(&store, "MSFT", 150).await;
    let plain = store.aligned_closes(&["MSFT", "AAPL"], 120).await.unwrap();
    let cached_store = store.clone().with_statement_cache(cache);
    let before = statements_run(&events, sql_text::ALIGNED_CLOSES);

    let answers = [
        cached_store.aligned_closes(&["MSFT", "AAPL"], 120).await.unwrap(),
        // The same symbols in another order and repeated: the same statement.
        cached_store.aligned_closes(&["AAPL", "MSFT", "AAPL"], 120).await.unwrap(),
        cached_store.aligned_closes(&["AAPL", "MSFT"], 120).await.unwrap(),
    ];

    assert_eq!(statements_run(&events, sql_text::ALIGNED_CLOSES) - before, 2);
    assert!(answers.iter().all(|answer| *answer == plain), "{answers:?} against {plain:?}");
    assert_eq!(plain.days.len(), 120);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn a_cached_statement_stands_until_its_symbol_is_invalidated() {
    let (store, schema, _events) = fresh_store().await;
    let (cache, _disk) = fresh_cache().await;
    seed_symbol(&store, "AAPL", 30).await;
    let cached_store = store.clone().with_statement_cache(cache.clone());
    cached_store.latest_closes("AAPL", 5).await.unwrap();
    let cached = cached_store.latest_closes("AAPL", 5).await.unwrap();

    // A new close, written but not yet announced: the cached answer is what readers get.
    store_closes(&store, "AAPL", &[(31, 500.0)]).await;
    assert_eq!(cached_store.latest_closes("AAPL", 5).await.unwrap(), cached);

    // `frontier seed` announces `symbol:AAPL`; the invalidation loop applies it like this.
    cache.invalidate(&["symbol:AAPL".to_owned()], InvalidationVersion::new(0, 1)).await;
    let fresh = cached_store.latest_closes("AAPL", 5).await.unwrap();
    assert_eq!(fresh.last().map(|close| close.close), Some(500.0));
    assert_eq!(fresh, store.latest_closes("AAPL", 5).await.unwrap());
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn a_registered_symbol_is_found_once_the_symbols_table_is_invalidated() {
    let (store, schema, _events) = fresh_store().await;
    let (cache, _disk) = fresh_cache().await;
    seed_symbol(&store, "AAPL", 3).await;
    let cached_store = store.clone().with_statement_cache(cache.clone());
    for _ in 0..2 {
        assert_eq!(cached_store.existing_symbols(&["AAPL", "NEWCO"]).await.unwrap(), ["AAPL"]);
    }

    store.add_symbols(&["NEWCO"], "tests").await.unwrap();
    cache.invalidate(&["table:symbols".to_owned()], InvalidationVersion::new(0, 1)).await;

    assert_eq!(cached_store.existing_symbols(&["AAPL", "NEWCO"]).await.unwrap(), ["AAPL", "NEWCO"]);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn stores_on_two_schemas_never_share_cached_statements() {
    let (first, first_schema, _) = fresh_store().await;
    let (second, second_schema, _) = fresh_store().await;
    let (cache, _disk) = fresh_cache().await;
    store_closes(&first, "AAPL", &[(1, 10.0), (2, 11.0)]).await;
    store_closes(&second, "AAPL", &[(1, 20.0), (2, 21.0)]).await;
    let (first_cached, second_cached) =
        (first.clone().with_statement_cache(cache.clone()), second.clone().with_statement_cache(cache));

    for _ in 0..3 {
        let first_closes = first_cached.latest_closes("AAPL", 2).await.unwrap();
        let second_closes = second_cached.latest_closes("AAPL", 2).await.unwrap();
        assert_eq!(first_closes.iter().map(|close| close.close).collect::<Vec<_>>(), [10.0, 11.0]);
        assert_eq!(second_closes.iter().map(|close| close.close).collect::<Vec<_>>(), [20.0, 21.0]);
    }
    drop_schema(&first, &first_schema).await;
    drop_schema(&second, &second_schema).await;
}
