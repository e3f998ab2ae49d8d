//! Frequent identical read statements of the price store, answered from the tiered cache.
//!
//! Why: requests that differ only where a statement does not look run the same statement with
//! the same binds: every strike of an option on AAPL reads AAPL's latest 253 closes, every
//! weighting of a portfolio reads the same aligned closes, and a refresh of a cached result
//! reads what the result was computed from. The request cache cannot share those reads (the
//! requests differ); this cache does, across requests, processes (Redis) and restarts (disk).
//!
//! Freshness: an entry is tagged with the tables it read (`table:prices`, `table:symbols`) and
//! the symbols whose rows it read (`symbol:AAPL`), the tags writers invalidate: `frontier seed`
//! announces every symbol whose closes changed and `table:symbols` when it registered symbols,
//! and a bulk load from elsewhere announces `table:prices`. Those orders reach the statements
//! through the same invalidation loop and watermark as the cached results, so a statement read
//! before a write can never be cached after the write's invalidation was applied.
//!
//! Admission: a statement goes through the cache from its second sighting in this process
//! within [`ADMISSION_WINDOW`] of the one before (a doorkeeper, like TinyLFU's). A one-off read then costs
//! nothing more than the statement; without the doorkeeper, a cold burst of distinct reads
//! paid a Redis lookup and a write-through each for entries nobody read again.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::StoreError;
use crate::cache::metric::STATEMENT_KIND_PREFIX;
use crate::cache::{CacheKey, CacheLayer, ComputeError, TieredCache};

/// How long a statement's last sighting is remembered: the next one within it goes through
/// the cache. Long enough for a refresh cycle of the results (their ttl is seconds to
/// minutes), short enough that the doorkeeper forgets a read that came once.
pub const ADMISSION_WINDOW: Duration = Duration::from_secs(300);

/// Distinct statements remembered for admission at most (a key of ~80 bytes each).
const ADMISSION_CAPACITY: u64 = 100_000;

/// Read statements answered through the statement cache, by `outcome`: `cached` (a cache
/// layer had it), `computed` (it ran, and its answer was cached), `first_seen` (it ran
/// without the cache: its first sighting).
pub const STATEMENT_READS: &str = "frontier_db_cached_statement_reads_total";

/// The cache tag of a symbol's results and of the statements that read its rows: `symbol:XYZ`.
pub fn symbol_tag(symbol: &str) -> String {
    format!("symbol:{symbol}")
}

/// The cache tag of every statement that read `table`: `table:prices`.
pub fn table_tag(table: &str) -> String {
    format!("table:{table}")
}

/// One read statement: what names its answer (kind, text, binds) and what invalidates it.
pub(super) struct Statement {
    /// The key's readable kind, `sql.<table>.<what>`.
    pub kind: &'static str,
    /// The SQL text: part of the key, so a changed statement never reads an old answer.
    pub sql: &'static str,
    /// The binds, as JSON.
    pub binds: Value,
    /// Table and row tags.
    pub tags: Vec<String>,
}

/// The statement cache of one price store (one database and schema).
#[derive(Clone)]
pub(super) struct StatementCache {
    cache: TieredCache,
    /// Keys seen once within [`ADMISSION_WINDOW`].
    seen: moka::future::Cache<CacheKey, ()>,
    /// The database and schema, in every key: two stores never share answers.
    scope: String,
}

impl StatementCache {
    /// Statements of the store on `database` (and `schema`) cached in `cache`.
    pub(super) fn new(cache: TieredCache, database: &str, schema: Option<&str>) -> StatementCache {
        ::metrics::describe_counter!(
            STATEMENT_READS,
            "Price store read statements asked of the statement cache, by outcome (cached, computed, first_seen)."
        );
        let seen = moka::future::Cache::builder()
            .max_capacity(ADMISSION_CAPACITY)
            // Idle, not live: a statement read at least once per window stays admitted.
            .time_to_idle(ADMISSION_WINDOW)
            .build();
        StatementCache { cache, seen, scope: format!("{database}/{}", schema.unwrap_or_default()) }
    }

    /// The answer of `statement`: from the cache when a layer holds it; otherwise `run` runs
    /// it (through the cache from its second sighting, so identical reads share it).
    pub(super) async fn read<T, F>(&self, statement: Statement, run: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        debug_assert!(statement.kind.starts_with(STATEMENT_KIND_PREFIX));
        let key = CacheKey::for_request(
            statement.kind,
            &serde_json::json!({ "sql": statement.sql, "binds": statement.binds }),
            &self.scope,
            &[],
        );
        if self.seen.get(&key).await.is_none() {
            self.seen.insert(key, ()).await;
            count("first_seen");
            return Box::pin(run).await;
        }
        let operation = statement.kind;
        let compute = async move {
            let answer = run.await.map_err(|error| ComputeError::transient("store_unavailable", error.to_string()))?;
            serde_json::to_vec(&answer).map_err(|error| ComputeError::new("internal_error", error.to_string()))
        };
        let policy = self.cache.policy_for(statement.kind);
        // Boxed: a cache lookup is a large future, and this one runs inside another (the
        // request's own lookup); unboxed, the nesting overflowed a 2 MiB stack in debug builds.
        let cached = Box::pin(self.cache.get_or_compute(&key, &statement.tags, policy, Box::pin(compute)))
            .await
            .map_err(|error| StoreError::Shared { operation: operation.to_owned(), message: error.message })?;
        count(if cached.layer == CacheLayer::None { "computed" } else { "cached" });
        serde_json::from_slice(&cached.value).map_err(|error| StoreError::Shared {
            operation: operation.to_owned(),
            message: format!("a cached answer does not decode: {error}"),
        })
    }
}

fn count(outcome: &'static str) {
    ::metrics::counter!(STATEMENT_READS, "outcome" => outcome).increment(1);
}
