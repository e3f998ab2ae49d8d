//! What the store takes and returns.

use std::collections::BTreeMap;

use crate::market::TradingDay;

/// How to connect beyond the shared [`crate::config::PostgresSettings`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// PostgreSQL schema to keep the tables in (created if missing); `None`: the server's
    /// default search path (`public`). Tests use a fresh schema each, so they do not collide.
    pub schema: Option<String>,
    /// The application name in query events and in `pg_stat_activity`.
    pub application: String,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { schema: None, application: "frontier".to_owned() }
    }
}

/// One stored close.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DailyClose {
    /// The symbol.
    pub symbol: String,
    /// The trading day.
    pub day: TradingDay,
    /// The closing price (> 0).
    pub close: f64,
}

/// Closes of several symbols on the days they all have, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlignedCloses {
    /// The common days, oldest first.
    pub days: Vec<TradingDay>,
    /// Each symbol's closes on exactly those days (symbols with no common day are absent).
    pub closes: BTreeMap<String, Vec<f64>>,
}

impl AlignedCloses {
    /// The closes of `symbol`; empty when it has none on the common days.
    pub fn closes_of(&self, symbol: &str) -> &[f64] {
        self.closes.get(symbol).map_or(&[], Vec::as_slice)
    }
}

/// How many rows one upsert wrote, per symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpsertCounts {
    /// Rows in the input.
    pub given: u64,
    /// Rows that were new or had a different close (the rest were already stored as given).
    pub changed: u64,
}
