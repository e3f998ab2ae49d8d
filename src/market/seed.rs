//! `frontier seed`: deterministic synthetic closes (geometric Brownian motion, see
//! [`crate::analytics::synthetic`]) written to the price store, and the cache invalidations that
//! announce which symbols changed.

use std::collections::BTreeMap;

use super::day::{TradingDay, synthetic_trading_days};
pub use super::store::symbol_tag;
use super::store::{DailyClose, INSERT_BATCH_ROWS, PriceStore, StoreError, UpsertCounts, check_symbol, table_tag};
use crate::analytics::AnalyticsError;
use crate::analytics::synthetic::{SyntheticConfig, SyntheticSeries, generate_synthetic_market};
use crate::records::CacheInvalidation;

/// Most rows one seed run writes: the whole market is generated in memory first (16 bytes a
/// close plus the row), so this bounds the process at a few GB.
pub const MAXIMUM_SEED_ROWS: usize = 50_000_000;

/// The `source` of symbols that `frontier seed` registers.
pub const SEED_SOURCE: &str = "frontier seed";

/// What to seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedPlan {
    /// Symbols to generate: `SYN0001`, `SYN0002`, ... unless `names` renames them.
    pub symbols: usize,
    /// Names for the first generated symbols in order (`AAPL`, `MSFT`: the first two series
    /// get these names, the rest keep `SYN0003`...). Renaming changes no close.
    pub names: Vec<String>,
    /// Closes per symbol, on consecutive weekdays from 2000-01-03.
    pub days: usize,
    /// Generator seed: the same seed writes the same closes.
    pub seed: u64,
    /// Also store the market factor's series under this symbol, as a benchmark for beta.
    pub benchmark: Option<String>,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The generator refused the plan (too many symbols or days, too few days).
    #[error("generating synthetic prices: {0}")]
    Generate(#[from] AnalyticsError),
    /// The plan asks for more rows than one run may hold in memory.
    #[error("{symbols} symbols x {days} days is {rows} rows; at most {maximum} per run", maximum = MAXIMUM_SEED_ROWS)]
    TooManyRows {
        /// Symbols asked for (benchmark included).
        symbols: usize,
        /// Days asked for.
        days: usize,
        /// Their product.
        rows: usize,
    },
    /// The benchmark symbol is not usable.
    #[error("benchmark `{symbol}`: {reason}")]
    InvalidBenchmark {
        /// The symbol given.
        symbol: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A name in the plan's `names` is not usable.
    #[error("symbol name `{symbol}`: {reason}")]
    InvalidName {
        /// The name given.
        symbol: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// Writing to PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a seed run wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedReport {
    /// Every symbol written (benchmark last), with its row counts.
    pub symbols: BTreeMap<String, UpsertCounts>,
    /// Closes per symbol.
    pub days: usize,
    /// First day written.
    pub first_day: Option<TradingDay>,
    /// Last day written.
    pub last_day: Option<TradingDay>,
    /// Symbols registered by this run (not known before).
    pub registered: u64,
}

impl SeedReport {
    /// Rows written (inserted, replaced or already equal).
    pub fn rows_written(&self) -> u64 {
        self.symbols.values().map(|counts| counts.given).sum()
    }

    /// Rows that were new or had a different close.
    pub fn rows_changed(&self) -> u64 {
        self.symbols.values().map(|counts| counts.changed).sum()
    }

    /// The symbols with at least one new or changed row: those whose cached results are stale.
    pub fn changed_symbols(&self) -> Vec<&str> {
        self.symbols.iter().filter(|(_, counts)| counts.changed > 0).map(|(symbol, _)| symbol.as_str()).collect()
    }
}

/// The series a plan generates, benchmark (if any) last, without touching the database.
pub fn generate_seed_series(plan: &SeedPlan) -> Result<Vec<SyntheticSeries>, SeedError> {
    let stored_symbols = plan.symbols + usize::from(plan.benchmark.is_some());
    let rows = stored_symbols.saturating_mul(plan.days);
    if rows > MAXIMUM_SEED_ROWS {
        return Err(SeedError::TooManyRows { symbols: stored_symbols, days: plan.days, rows });
    }
    let market = generate_synthetic_market(&SyntheticConfig {
        seed: plan.seed,
        symbols: plan.symbols,
        days: plan.days,
        // Always on, so the symbols' closes do not depend on whether a benchmark is stored.
        with_market_factor: true,
    })?;
    let mut series = market.symbols;
    if plan.names.len() > series.len() {
        return Err(SeedError::InvalidName {
            symbol: plan.names[series.len()].clone(),
            reason: "more names than symbols",
        });
    }
    for (index, name) in plan.names.iter().enumerate() {
        check_symbol(name).map_err(|reason| SeedError::InvalidName { symbol: name.clone(), reason })?;
        series[index].symbol = name.clone();
    }
    for (index, generated) in series.iter().enumerate() {
        if series[..index].iter().any(|earlier| earlier.symbol == generated.symbol) {
            return Err(SeedError::InvalidName {
                symbol: generated.symbol.clone(),
                reason: "two symbols would have this name",
            });
        }
    }
    if let Some(benchmark) = &plan.benchmark {
        check_symbol(benchmark).map_err(|reason| SeedError::InvalidBenchmark { symbol: benchmark.clone(), reason })?;
        if series.iter().any(|generated| generated.symbol == *benchmark) {
            return Err(SeedError::InvalidBenchmark {
                symbol: benchmark.clone(),
                reason: "it is also the name of a generated symbol",
            });
        }
        let mut market_series = market.market;
        market_series.symbol = benchmark.clone();
        series.push(market_series);
    }
    Ok(series)
}

/// Generates the plan's closes and writes them in batches of [`INSERT_BATCH_ROWS`], replacing
/// any stored close of the same symbol and day (so a re-run with the same plan changes
/// nothing). `progress(rows_done, rows_total)` is called after each batch.
///
/// Each batch commits on its own: an interrupted run leaves some rows written, and running the
/// same plan again completes it (rows already there count as unchanged).
pub async fn seed_prices(
    store: &PriceStore,
    plan: &SeedPlan,
    mut progress: impl FnMut(u64, u64),
) -> Result<SeedReport, SeedError> {
    let series = generate_seed_series(plan)?;
    let days = synthetic_trading_days(plan.days);
    let symbols: Vec<&str> = series.iter().map(|generated| generated.symbol.as_str()).collect();
    let registered = store.add_symbols(&symbols, SEED_SOURCE).await?;

    let total = (series.len() * days.len()) as u64;
    let mut report = SeedReport {
        symbols: BTreeMap::new(),
        days: days.len(),
        first_day: days.first().copied(),
        last_day: days.last().copied(),
        registered,
    };
    let mut done = 0u64;
    progress(done, total);
    let rows = series.iter().flat_map(|generated| {
        days.iter().zip(&generated.closes).map(|(&day, &close)| DailyClose {
            symbol: generated.symbol.clone(),
            day,
            close,
        })
    });
    let mut batch = Vec::with_capacity(INSERT_BATCH_ROWS);
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        batch.clear();
        batch.extend(rows.by_ref().take(INSERT_BATCH_ROWS));
        for (symbol, counts) in store.upsert_closes(&batch).await? {
            let total_counts = report.symbols.entry(symbol).or_default();
            total_counts.given += counts.given;
            total_counts.changed += counts.changed;
        }
        done += batch.len() as u64;
        progress(done, total);
    }
    Ok(report)
}

/// The invalidation announcing that `registered` symbols were added to the `symbols` table, for
/// the cached statements that looked symbols up.
pub fn symbols_table_invalidation(registered: u64, seed: u64) -> CacheInvalidation {
    CacheInvalidation {
        id: uuid::Uuid::new_v4().to_string(),
        tags: vec![table_tag("symbols")],
        keys: Vec::new(),
        reason: format!("frontier seed (seed {seed}) registered {registered} new symbol(s)"),
        source: SEED_SOURCE.to_owned(),
        issued_at: crate::clock::now_millis(),
    }
}

/// The invalidation announcing that `symbol`'s closes changed (`changed` rows of them).
pub fn symbol_invalidation(symbol: &str, changed: u64, seed: u64) -> CacheInvalidation {
    CacheInvalidation {
        id: uuid::Uuid::new_v4().to_string(),
        tags: vec![symbol_tag(symbol)],
        keys: Vec::new(),
        reason: format!("frontier seed (seed {seed}) wrote {changed} new or changed close(s) of {symbol}"),
        source: SEED_SOURCE.to_owned(),
        issued_at: crate::clock::now_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(names: &[&str], benchmark: Option<&str>) -> SeedPlan {
        SeedPlan {
            symbols: 3,
            days: 10,
            seed: 4,
            names: names.iter().map(|name| (*name).to_owned()).collect(),
            benchmark: benchmark.map(str::to_owned),
        }
    }

    #[test]
    fn names_rename_the_first_symbols_without_changing_their_closes() {
        let plain = generate_seed_series(&plan(&[], Some("MKT"))).unwrap();
        let named = generate_seed_series(&plan(&["AAPL", "MSFT"], Some("MKT"))).unwrap();
        let symbols: Vec<&str> = named.iter().map(|series| series.symbol.as_str()).collect();
        assert_eq!(symbols, ["AAPL", "MSFT", "SYN0003", "MKT"]);
        for (plain, named) in plain.iter().zip(&named) {
            assert_eq!(plain.closes, named.closes);
        }
    }

    #[test]
    fn clashing_or_extra_names_are_refused() {
        for (names, benchmark) in [
            (&["AAPL", "AAPL"][..], None),
            (&["SYN0003"][..], None),
            (&["A", "B", "C", "D"][..], None),
            (&["bad name"][..], None),
            (&["AAPL"][..], Some("AAPL")),
        ] {
            assert!(generate_seed_series(&plan(names, benchmark)).is_err(), "{names:?} {benchmark:?}");
        }
    }
}
