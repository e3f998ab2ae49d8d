//! The price store: daily closes in PostgreSQL, every statement timed and reported to a
//! [`QueryEventSink`].

mod aligned;
mod checks;
mod error;
mod latest;
mod rows;
pub mod sql;
mod statements;

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Row};

pub use checks::{MAXIMUM_SYMBOL_LEN, check_symbol};
pub use error::StoreError;
pub use latest::READS_PER_STATEMENT;
pub use rows::{AlignedCloses, DailyClose, StoreOptions, UpsertCounts};
pub use statements::{ADMISSION_WINDOW, STATEMENT_READS, symbol_tag, table_tag};

use super::day::TradingDay;
use super::events::QueryEventSink;
use crate::cache::TieredCache;
use crate::config::PostgresSettings;
use crate::db::MeteredPool;
use crate::records::{QueryEvent, QueryStatus};
use checks::{check_row, check_schema_name};
use statements::{Statement, StatementCache};

/// Rows per bulk-insert statement: three arrays of this length stay well under PostgreSQL's
/// 1 GB parameter limit and keep each statement (and its query event) around a second.
pub const INSERT_BATCH_ROWS: usize = 20_000;

/// The price store pool's name on `/metrics` (the `pool` label of [`crate::db`]'s metrics).
pub const POOL_NAME: &str = "prices";

/// Daily closes in PostgreSQL. Cheap to clone (the pool and the sink are shared).
#[derive(Clone)]
pub struct PriceStore {
    pool: MeteredPool,
    sink: Arc<dyn QueryEventSink>,
    database: String,
    application: String,
    schema: Option<String>,
    latest: Arc<latest::LatestReads>,
    /// Frequent identical reads answered from the tiered cache; `None` runs every read.
    statements: Option<StatementCache>,
}

impl std::fmt::Debug for PriceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PriceStore").field("database", &self.database).field("application", &self.application).finish()
    }
}

impl PriceStore {
    /// Connects a pool with `settings`, creates `options.schema` if needed and applies the
    /// migrations (idempotent: applied ones are skipped). Query events go to `sink`.
    pub async fn connect(
        settings: &PostgresSettings,
        options: StoreOptions,
        sink: Arc<dyn QueryEventSink>,
    ) -> Result<Self, StoreError> {
        let shown_url = crate::health::redact(&settings.url);
        let mut connect_options = PgConnectOptions::from_str(&settings.url)
            .map_err(|source| StoreError::InvalidUrl { url: shown_url.clone(), source })?
            .application_name(&options.application);
        if let Some(schema) = &options.schema {
            check_schema_name(schema)?;
            connect_options = connect_options.options([("search_path", schema.as_str())]);
        }
        // Without a database in the URL, PostgreSQL connects to the one named like the user.
        let database = connect_options.get_database().unwrap_or(connect_options.get_username()).to_owned();
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            // A request waiting longer than this for a connection is better answered with
            // store_unavailable (and retried) than left hanging.
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(connect_options)
            .await
            .map_err(|source| StoreError::Connect { url: shown_url, source })?;
        // As many latest-closes statements at once as the pool has connections: a read waits
        // (and then goes out with others) only when it would have waited for a connection
        // anyway. With half the pool, reads waited behind each other on a CPU-bound cold start
        // and the first 5 s of `bench serve` got slower (p99 1.7 s against 0.3-0.4 s).
        let latest = Arc::new(latest::LatestReads::new(settings.max_connections as usize));
        let pool = MeteredPool::new(POOL_NAME, pool);
        let store = Self {
            pool,
            sink,
            database,
            application: options.application,
            schema: options.schema,
            latest,
            statements: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations in `migrations/` (creating the store's schema first, if it has
    /// one). Safe to run concurrently (sqlx holds an advisory lock) and repeatedly.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!();
        if let Some(schema) = &self.schema {
            migrator.create_schema(schema.clone());
        }
        migrator.run(self.pool.pool()).await?;
        Ok(())
    }

    /// The store, answering its frequent identical read statements from `cache` (see
    /// `statements.rs`): the latest closes, aligned closes and symbol lookups.
    #[must_use]
    pub fn with_statement_cache(mut self, cache: TieredCache) -> Self {
        self.statements = Some(StatementCache::new(cache, &self.database, self.schema.as_deref()));
        self
    }

    /// Opens the pool's connections up to its `max_connections`, all at once, and returns how
    /// many it holds. A serving instance does this before it takes partitions: the pool opens
    /// connections only when a statement finds none idle, so the first burst of misses after a
    /// start also waited for connections to be opened (5.8 ms each on this project's idle
    /// 2-core machine, `pgbench -C`; longer while the burst holds the cores). One that fails to
    /// open is no error here: the pool opens it on demand later, as it would have.
    pub async fn open_connections(&self) -> u32 {
        let pool = self.pool.pool();
        let max = pool.options().get_max_connections();
        // Held together until all are open, so each acquire opens a connection of its own
        // rather than taking the one another just gave back.
        let opened = futures::future::join_all((0..max).map(|_| pool.acquire())).await;
        if let Some(Err(error)) = opened.iter().find(|c| c.is_err()) {
            tracing::warn!(%error, "a price store connection did not open at start; the pool opens it when needed");
        }
        drop(opened);
        pool.size()
    }

    /// The pool, for callers that need a statement the store does not offer.
    pub fn pool(&self) -> &PgPool {
        self.pool.pool()
    }

    /// The database name query events carry.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Waits up to `timeout` for the sink to pass on the events taken so far.
    pub fn flush_events(&self, timeout: std::time::Duration) {
        self.sink.flush(timeout);
    }

    /// The latest `count` closes of `symbol`, oldest first; empty for an unknown symbol. While
    /// the database is busy, reads asked meanwhile share one statement (see `latest.rs`).
    pub async fn latest_closes(&self, symbol: &str, count: usize) -> Result<Vec<DailyClose>, StoreError> {
        let closes = self.latest_closes_cached(symbol, count).await?;
        let row = |(day, close)| DailyClose { symbol: symbol.to_owned(), day: TradingDay(day), close };
        Ok(closes.into_iter().map(row).collect())
    }

    /// [`Self::latest_closes`] as (day, close), from the statement cache when there is one.
    async fn latest_closes_cached(&self, symbol: &str, count: usize) -> Result<latest::Closes, StoreError> {
        match &self.statements {
            Some(statements) => {
                let statement = Statement {
                    kind: "sql.prices.latest",
                    sql: sql::LATEST_CLOSES,
                    binds: serde_json::json!([symbol, count]),
                    tags: vec![table_tag("prices"), symbol_tag(symbol)],
                };
                let (store, owned) = (self.clone(), symbol.to_owned());
                statements.read(statement, async move { store.read_latest(&owned, count).await }).await
            }
            None => self.read_latest(symbol, count).await,
        }
    }

    /// [`Self::latest_closes`] from PostgreSQL.
    async fn read_latest(&self, symbol: &str, count: usize) -> Result<latest::Closes, StoreError> {
        match self.latest.read(self, symbol, count).await {
            Some(closes) => Ok(closes),
            // The shared statement failed: this read alone says why.
            None => {
                let found = self.latest_closes_of(&[(symbol, count)]).await.map_err(|source| StoreError::Query {
                    operation: format!("reading the latest closes of {symbol}"),
                    source,
                })?;
                Ok(found.into_values().next().unwrap_or_default())
            }
        }
    }

    /// The latest closes of each symbol of `wanted`, as many as asked, oldest first, in one
    /// statement; a symbol without closes is absent.
    async fn latest_closes_of(&self, wanted: &[(&str, usize)]) -> Result<HashMap<String, latest::Closes>, sqlx::Error> {
        let limit = |count: usize| i64::try_from(count).unwrap_or(i64::MAX);
        let rows = if let [(symbol, count)] = wanted {
            // One symbol: the plain statement, whose plan is a single index scan.
            self.timed(
                sql::LATEST_CLOSES,
                |rows: &Vec<_>| rows.len(),
                async |connection| {
                    sqlx::query(sql::LATEST_CLOSES).bind(symbol).bind(limit(*count)).fetch_all(connection).await
                },
            )
            .await?
        } else {
            let symbols: Vec<&str> = wanted.iter().map(|(symbol, _)| *symbol).collect();
            let counts: Vec<i64> = wanted.iter().map(|(_, count)| limit(*count)).collect();
            self.timed(
                sql::LATEST_CLOSES_OF_MANY,
                |rows: &Vec<_>| rows.len(),
                async |connection| {
                    sqlx::query(sql::LATEST_CLOSES_OF_MANY).bind(&symbols).bind(&counts).fetch_all(connection).await
                },
            )
            .await?
        };
        let mut found: HashMap<String, latest::Closes> = HashMap::new();
        for row in &rows {
            // The plain statement has no symbol column: its rows are the one symbol's.
            let symbol = match wanted {
                [(symbol, _)] => (*symbol).to_owned(),
                _ => row.try_get("symbol")?,
            };
            found.entry(symbol).or_default().push((row.try_get("day")?, row.try_get("close")?));
        }
        Ok(found)
    }

    /// The closes of `symbols` on the latest `count` days that all of them have, oldest first.
    /// A symbol without prices leaves no common day, so the result is then empty.
    ///
    /// Read as each symbol's latest closes, aligned here (see `aligned.rs` for why); only when
    /// their calendars differ too much to tell from those does the aligned statement run.
    pub async fn aligned_closes(&self, symbols: &[&str], count: usize) -> Result<AlignedCloses, StoreError> {
        let mut distinct: Vec<String> = symbols.iter().map(|symbol| (*symbol).to_owned()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let depth = aligned::depth(count);
        let reads = distinct.iter().map(|symbol| self.latest_closes_cached(symbol, depth));
        let histories = futures::future::try_join_all(reads).await?;
        if let Some(aligned) = aligned::align(&distinct, &histories, count, depth) {
            return Ok(aligned);
        }
        let rows = match &self.statements {
            Some(statements) => {
                let mut tags = vec![table_tag("prices")];
                tags.extend(distinct.iter().map(|symbol| symbol_tag(symbol)));
                let statement = Statement {
                    kind: "sql.prices.aligned",
                    sql: sql::ALIGNED_CLOSES,
                    binds: serde_json::json!([distinct, count]),
                    tags,
                };
                let store = self.clone();
                statements.read(statement, async move { store.read_aligned(&distinct, count).await }).await?
            }
            None => self.read_aligned(&distinct, count).await?,
        };
        let mut aligned = AlignedCloses::default();
        let mut first_symbol: Option<String> = None;
        for (symbol, day, close) in rows {
            // Rows come ordered by symbol then day, and every symbol has every common day, so
            // the first symbol's days are the days.
            let first = first_symbol.get_or_insert_with(|| symbol.clone());
            if *first == symbol {
                aligned.days.push(TradingDay(day));
            }
            aligned.closes.entry(symbol).or_default().push(close);
        }
        Ok(aligned)
    }

    /// The rows of [`Self::aligned_closes`] from PostgreSQL: (symbol, day, close) by symbol
    /// and day, for sorted distinct `symbols`.
    async fn read_aligned(&self, symbols: &[String], count: usize) -> Result<Vec<(String, i32, f64)>, StoreError> {
        let symbol_count = i64::try_from(symbols.len()).unwrap_or(i64::MAX);
        let limit = i64::try_from(count).unwrap_or(i64::MAX);
        self.timed(
            sql::ALIGNED_CLOSES,
            |rows: &Vec<_>| rows.len(),
            async |connection| {
                sqlx::query_as(sql::ALIGNED_CLOSES)
                    .bind(symbols)
                    .bind(symbol_count)
                    .bind(limit)
                    .fetch_all(connection)
                    .await
            },
        )
        .await
        .map_err(|source| StoreError::Query {
            operation: format!("reading the aligned closes of {}", symbols.join(", ")),
            source,
        })
    }

    /// Every symbol with a row in `symbols`, sorted.
    pub async fn known_symbols(&self) -> Result<Vec<String>, StoreError> {
        self.timed(sql::KNOWN_SYMBOLS, Vec::len, async |connection| {
            sqlx::query_scalar(sql::KNOWN_SYMBOLS).fetch_all(connection).await
        })
        .await
        .map_err(|source| StoreError::Query { operation: "listing the known symbols".to_owned(), source })
    }

    /// Which of `symbols` are known, sorted.
    pub async fn existing_symbols(&self, symbols: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut distinct: Vec<String> = symbols.iter().map(|symbol| (*symbol).to_owned()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        match &self.statements {
            Some(statements) => {
                let statement = Statement {
                    kind: "sql.symbols.existing",
                    sql: sql::EXISTING_SYMBOLS,
                    binds: serde_json::json!([distinct]),
                    tags: vec![table_tag("symbols")],
                };
                let store = self.clone();
                statements.read(statement, async move { store.read_existing(&distinct).await }).await
            }
            None => self.read_existing(&distinct).await,
        }
    }

    /// [`Self::existing_symbols`] from PostgreSQL.
    async fn read_existing(&self, symbols: &[String]) -> Result<Vec<String>, StoreError> {
        self.timed(sql::EXISTING_SYMBOLS, Vec::len, async |connection| {
            sqlx::query_scalar(sql::EXISTING_SYMBOLS).bind(symbols).fetch_all(connection).await
        })
        .await
        .map_err(|source| StoreError::Query { operation: "looking up symbols".to_owned(), source })
    }

    /// Registers `symbols` (from `source`, e.g. `frontier seed`); known ones are left as they are.
    pub async fn add_symbols(&self, symbols: &[&str], source: &str) -> Result<u64, StoreError> {
        for symbol in symbols {
            check_symbol(symbol).map_err(|reason| StoreError::InvalidRow {
                symbol: (*symbol).to_owned(),
                day: TradingDay(0),
                reason,
            })?;
        }
        self.timed(
            sql::INSERT_SYMBOLS,
            |&affected: &u64| affected as usize,
            async |connection| {
                sqlx::query(sql::INSERT_SYMBOLS)
                    .bind(symbols)
                    .bind(source)
                    .execute(connection)
                    .await
                    .map(|done| done.rows_affected())
            },
        )
        .await
        .map_err(|source| StoreError::Query { operation: "registering symbols".to_owned(), source })
    }

    /// Inserts or replaces `rows` (one statement, UNNEST of three arrays; each symbol and day at
    /// most once per call; callers batch by
    /// [`INSERT_BATCH_ROWS`]). Their symbols must be registered. Returns per symbol how many
    /// rows were given and how many were new or changed.
    pub async fn upsert_closes(&self, rows: &[DailyClose]) -> Result<BTreeMap<String, UpsertCounts>, StoreError> {
        let mut counts: BTreeMap<String, UpsertCounts> = BTreeMap::new();
        let mut symbols = Vec::with_capacity(rows.len());
        let mut days = Vec::with_capacity(rows.len());
        let mut closes = Vec::with_capacity(rows.len());
        for row in rows {
            check_row(row)?;
            counts.entry(row.symbol.clone()).or_default().given += 1;
            symbols.push(row.symbol.as_str());
            days.push(row.day.0);
            closes.push(row.close);
        }
        let changed: Vec<(String, i64)> = self
            .timed(
                sql::UPSERT_CLOSES,
                |changed: &Vec<(String, i64)>| changed.iter().map(|(_, n)| *n as usize).sum(),
                async |connection| {
                    sqlx::query_as(sql::UPSERT_CLOSES)
                        .bind(&symbols)
                        .bind(&days)
                        .bind(&closes)
                        .fetch_all(connection)
                        .await
                },
            )
            .await
            .map_err(|source| StoreError::Query { operation: format!("writing {} closes", rows.len()), source })?;
        for (symbol, changed) in changed {
            counts.entry(symbol).or_default().changed = u64::try_from(changed).unwrap_or_default();
        }
        Ok(counts)
    }

    /// How many closes are stored for `symbols`.
    pub async fn count_closes(&self, symbols: &[&str]) -> Result<u64, StoreError> {
        let count: i64 = self
            .timed(
                sql::COUNT_CLOSES,
                |_| 1,
                async |connection| sqlx::query_scalar(sql::COUNT_CLOSES).bind(symbols).fetch_one(connection).await,
            )
            .await
            .map_err(|source| StoreError::Query { operation: "counting closes".to_owned(), source })?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Runs `statement` on a pooled connection, the wait for the connection measured apart
    /// from the statement (by [`MeteredPool`]), and reports a query event for `sql`
    /// with the statement's own time and the rows `rows_of` counts (affected rows for writes).
    /// A connection that does not come in time is reported as the statement's failure.
    async fn timed<T>(
        &self,
        sql: &'static str,
        rows_of: impl FnOnce(&T) -> usize,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let occurred_at = crate::clock::now_millis();
        let acquired = self.pool.acquire().await;
        let started = Instant::now();
        let result = match acquired {
            Ok(mut connection) => statement(&mut connection).await,
            Err(error) => Err(error),
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (rows, status, error) = match &result {
            Ok(value) => (i64::try_from(rows_of(value)).unwrap_or(i64::MAX), QueryStatus::Ok, None),
            Err(error) => (0, status_of(error), Some(error.to_string())),
        };
        self.sink.record(QueryEvent {
            id: uuid::Uuid::new_v4().to_string(),
            sql: sql.to_owned(),
            fingerprint: Some(crate::queries::static_fingerprint(sql)),
            duration_ms,
            rows,
            database: self.database.clone(),
            application: self.application.clone(),
            status,
            error,
            occurred_at,
            calls: 1,
        });
        result
    }
}

/// `timeout` for a statement cancelled by `statement_timeout` (SQLSTATE 57014) or a pool that
/// had no connection in time; `error` for everything else.
fn status_of(error: &sqlx::Error) -> QueryStatus {
    match error {
        sqlx::Error::PoolTimedOut => QueryStatus::Timeout,
        sqlx::Error::Database(database) if database.code().as_deref() == Some("57014") => QueryStatus::Timeout,
        _ => QueryStatus::Error,
    }
}
