//! The price store, seeding, DB query events and the request kinds, against the real PostgreSQL
//! and Kafka of `ops/stack up`. Each test keeps its tables in a PostgreSQL schema of its own
//! (dropped at the end), so tests run in parallel without seeing each other's rows.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

#[path = "../common/mod.rs"]
mod common;
mod pools;
mod query_events;
mod requests;
mod seed_command;
mod seeding;
mod statements;
mod store;

use std::sync::Arc;
use std::time::Duration;

use common::{START_HINT, catalog, create_topics, decoded_json, frontier, read_topic, settings, unique};
use frontier::analytics::returns::trailing_window;
use frontier::analytics::{PriceSeries, market_volatility};
use frontier::market::seed::{SeedPlan, generate_seed_series, seed_prices};
use frontier::market::{
    Analysis, AnalysisResult, DailyClose, KafkaQueryEvents, PriceStore, QueryEventSink, RecordedQueryEvents,
    StoreOptions, TradingDay,
};
use frontier::records::QueryStatus;
use serde_json::{Value, json};

/// A schema name no other test or run uses.
fn unique_schema() -> String {
    format!("test_market_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A store in `schema`, failing with instructions when PostgreSQL is down.
async fn store_in(schema: &str, sink: Arc<dyn QueryEventSink>) -> PriceStore {
    let options = StoreOptions { schema: Some(schema.to_owned()), application: "frontier-tests".to_owned() };
    match PriceStore::connect(&settings().postgres, options, sink).await {
        Ok(store) => store,
        Err(error) => panic!("PostgreSQL is not usable ({error}): {START_HINT}"),
    }
}

/// A store in a fresh schema, recording its query events in memory.
async fn fresh_store() -> (PriceStore, String, Arc<RecordedQueryEvents>) {
    let schema = unique_schema();
    let events = Arc::new(RecordedQueryEvents::default());
    let store = store_in(&schema, events.clone()).await;
    (store, schema, events)
}

async fn drop_schema(store: &PriceStore, schema: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
        .execute(store.pool())
        .await
        .expect("test schema dropped");
}

fn plan(symbols: usize, days: usize, seed: u64, benchmark: Option<&str>) -> SeedPlan {
    SeedPlan { symbols, days, seed, names: Vec::new(), benchmark: benchmark.map(str::to_owned) }
}

/// Every stored close, ordered by symbol and day.
async fn all_closes(store: &PriceStore) -> Vec<(String, i32, f64)> {
    sqlx::query_as("SELECT symbol, day - DATE '1970-01-01', close FROM prices ORDER BY symbol, day")
        .fetch_all(store.pool())
        .await
        .expect("closes read")
}

/// How many statements with `sql` the store ran on PostgreSQL.
fn statements_run(events: &RecordedQueryEvents, sql: &str) -> usize {
    events.events().iter().filter(|event| event.sql == sql).count()
}

/// Registers `symbol` and stores `closes` on consecutive days from `first_day`.
async fn store_closes(store: &PriceStore, symbol: &str, days_and_closes: &[(i32, f64)]) {
    store.add_symbols(&[symbol], "tests").await.expect("symbol registered");
    let rows: Vec<DailyClose> = days_and_closes
        .iter()
        .map(|&(day, close)| DailyClose { symbol: symbol.to_owned(), day: TradingDay(day), close })
        .collect();
    store.upsert_closes(&rows).await.expect("closes stored");
}

fn number(result: &AnalysisResult, name: &str) -> f64 {
    *result.get(name).unwrap_or_else(|| panic!("result has no number `{name}`: {result:?}"))
}
