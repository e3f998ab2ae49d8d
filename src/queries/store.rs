//! Index recommendations in PostgreSQL (Frontier's own database, never the advised one): the
//! latest advice per id, when it was applied, and whether it paid off. The topic
//! `frontier.db.index-recommendations` carries the same advice for tools; this table is what
//! `frontier queries apply` and the analyzer's pay-off check read and write.

use std::collections::BTreeMap;

use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;

use crate::db::MeteredPool;

use crate::records::{IndexAction, IndexRecommendation};

/// The table, created on first use (idempotent).
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS frontier_index_recommendations (
    id                    TEXT PRIMARY KEY,
    database              TEXT NOT NULL,
    table_name            TEXT NOT NULL,
    columns               TEXT[] NOT NULL,
    action                TEXT NOT NULL CHECK (action IN ('create', 'drop')),
    ddl                   TEXT NOT NULL,
    estimated_cost_before FLOAT8 NOT NULL,
    estimated_cost_after  FLOAT8 NOT NULL,
    size_bytes            INT8 NOT NULL,
    time_saved_ms         FLOAT8 NOT NULL,
    write_overhead_ms     FLOAT8 NOT NULL,
    evidence              TEXT NOT NULL,
    -- fingerprint -> mean ms per run when the advice was made: the pay-off check's before
    baseline_ms           JSONB NOT NULL DEFAULT '{}',
    advised_at            TIMESTAMPTZ NOT NULL,
    applied_at            TIMESTAMPTZ,
    paid_off              BOOLEAN,
    verdict               TEXT
)";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("index recommendations table: {operation}: {source}")]
pub struct StoreError {
    operation: &'static str,
    #[source]
    source: sqlx::Error,
}

fn failed(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError { operation, source }
}

async fn table_exists(pool: &PgPool) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT to_regclass('frontier_index_recommendations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(failed("looking for the table"))
}

/// A recommendation as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredRecommendation {
    pub id: String,
    pub database: String,
    pub table_name: String,
    pub columns: Vec<String>,
    pub action: String,
    pub ddl: String,
    pub estimated_cost_before: f64,
    pub estimated_cost_after: f64,
    pub size_bytes: i64,
    pub time_saved_ms: f64,
    pub evidence: String,
    pub baseline_ms: sqlx::types::Json<BTreeMap<String, f64>>,
    /// Milliseconds since the epoch.
    pub advised_at_ms: i64,
    pub applied_at_ms: Option<i64>,
    pub paid_off: Option<bool>,
    pub verdict: Option<String>,
}

impl StoredRecommendation {
    /// The index name in a `CREATE INDEX ... IF NOT EXISTS <name> ON` or `DROP INDEX ... IF
    /// EXISTS <name>` statement the advisor wrote.
    pub fn index_name(&self) -> Option<&str> {
        let after = self.ddl.split_once(" IF NOT EXISTS ").or_else(|| self.ddl.split_once(" IF EXISTS "))?.1;
        Some(after.split_once(" ON ").map_or(after, |(name, _)| name).trim())
    }
}

const SELECT: &str = "SELECT id, database, table_name, columns, action, ddl, estimated_cost_before, \
     estimated_cost_after, size_bytes, time_saved_ms, evidence, baseline_ms, \
     (extract(epoch FROM advised_at) * 1000)::int8 AS advised_at_ms, \
     (extract(epoch FROM applied_at) * 1000)::int8 AS applied_at_ms, paid_off, verdict \
     FROM frontier_index_recommendations";

/// The name of the recommendations table's pool on `/metrics`.
pub const POOL_NAME: &str = "recommendations";

/// The recommendations table.
#[derive(Debug, Clone)]
pub struct RecommendationStore {
    pool: MeteredPool,
}

impl RecommendationStore {
    /// A store over `pool`; the table is created if missing.
    pub async fn open(pool: PgPool) -> Result<Self, StoreError> {
        // Asked first: `CREATE TABLE IF NOT EXISTS` on an existing table logs a notice per run.
        if !table_exists(&pool).await?
            && let Err(error) = sqlx::query(CREATE_TABLE).execute(&pool).await
            // Two processes creating it at once: one loses the race on the catalog, and the
            // table is there all the same.
            && !table_exists(&pool).await?
        {
            return Err(failed("creating the table")(error));
        }
        Ok(RecommendationStore { pool: MeteredPool::new(POOL_NAME, pool) })
    }

    /// A pooled connection (measured on `/metrics`) for one statement about `operation`.
    async fn connection(&self, operation: &'static str) -> Result<PoolConnection<Postgres>, StoreError> {
        self.pool.acquire().await.map_err(failed(operation))
    }

    /// Inserts or refreshes advice. What is known of its application is kept, unless the
    /// advice was made after it was applied: the index is missing again (dropped, or a failed
    /// build), and its life starts over.
    pub async fn upsert(
        &self,
        advice: &IndexRecommendation,
        baseline_ms: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection("storing a recommendation").await?;
        let action = if advice.action == IndexAction::Create { "create" } else { "drop" };
        sqlx::query(
            "INSERT INTO frontier_index_recommendations (id, database, table_name, columns, action, ddl, \
               estimated_cost_before, estimated_cost_after, size_bytes, time_saved_ms, write_overhead_ms, evidence, \
               baseline_ms, advised_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, to_timestamp($14 / 1000.0)) \
             ON CONFLICT (id) DO UPDATE SET ddl = EXCLUDED.ddl, \
               estimated_cost_before = EXCLUDED.estimated_cost_before, \
               estimated_cost_after = EXCLUDED.estimated_cost_after, size_bytes = EXCLUDED.size_bytes, \
               time_saved_ms = EXCLUDED.time_saved_ms, write_overhead_ms = EXCLUDED.write_overhead_ms, \
               evidence = EXCLUDED.evidence, advised_at = EXCLUDED.advised_at, \
               baseline_ms = CASE WHEN frontier_index_recommendations.applied_at IS NULL \
                                    OR frontier_index_recommendations.applied_at < EXCLUDED.advised_at \
                                  THEN EXCLUDED.baseline_ms ELSE frontier_index_recommendations.baseline_ms END, \
               paid_off = CASE WHEN frontier_index_recommendations.applied_at < EXCLUDED.advised_at \
                               THEN NULL ELSE frontier_index_recommendations.paid_off END, \
               verdict = CASE WHEN frontier_index_recommendations.applied_at < EXCLUDED.advised_at \
                              THEN NULL ELSE frontier_index_recommendations.verdict END, \
               applied_at = CASE WHEN frontier_index_recommendations.applied_at < EXCLUDED.advised_at \
                                 THEN NULL ELSE frontier_index_recommendations.applied_at END",
        )
        .bind(&advice.id)
        .bind(&advice.database)
        .bind(&advice.table_name)
        .bind(&advice.columns)
        .bind(action)
        .bind(&advice.create_statement)
        .bind(advice.estimated_cost_before)
        .bind(advice.estimated_cost_after)
        .bind(advice.size_bytes)
        .bind(advice.time_saved_ms)
        .bind(advice.write_overhead_ms)
        .bind(&advice.evidence)
        .bind(sqlx::types::Json(baseline_ms))
        .bind(advice.created_at as f64)
        .execute(&mut *connection)
        .await
        .map_err(failed("storing a recommendation"))?;
        Ok(())
    }

    /// One recommendation by id.
    pub async fn get(&self, id: &str) -> Result<Option<StoredRecommendation>, StoreError> {
        let mut connection = self.connection("reading a recommendation").await?;
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *connection)
            .await
            .map_err(failed("reading a recommendation"))
    }

    /// Every recommendation, the most time saved first.
    pub async fn all(&self) -> Result<Vec<StoredRecommendation>, StoreError> {
        let mut connection = self.connection("reading recommendations").await?;
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY time_saved_ms DESC, id")))
            .fetch_all(&mut *connection)
            .await
            .map_err(failed("reading recommendations"))
    }

    /// Applied creations whose pay-off is not judged yet.
    pub async fn awaiting_verdict(&self) -> Result<Vec<StoredRecommendation>, StoreError> {
        let mut connection = self.connection("reading applied recommendations").await?;
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE action = 'create' AND applied_at IS NOT NULL AND paid_off IS NULL ORDER BY id"
        )))
        .fetch_all(&mut *connection)
        .await
        .map_err(failed("reading applied recommendations"))
    }

    /// Records that the advice was carried out now.
    pub async fn mark_applied(&self, id: &str) -> Result<(), StoreError> {
        let mut connection = self.connection("recording an application").await?;
        sqlx::query("UPDATE frontier_index_recommendations SET applied_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *connection)
            .await
            .map_err(failed("recording an application"))?;
        Ok(())
    }

    /// Records whether an applied index paid off, and why.
    pub async fn set_verdict(&self, id: &str, paid_off: bool, verdict: &str) -> Result<(), StoreError> {
        let mut connection = self.connection("recording a verdict").await?;
        sqlx::query("UPDATE frontier_index_recommendations SET paid_off = $2, verdict = $3 WHERE id = $1")
            .bind(id)
            .bind(paid_off)
            .bind(verdict)
            .execute(&mut *connection)
            .await
            .map_err(failed("recording a verdict"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(ddl: &str) -> StoredRecommendation {
        StoredRecommendation {
            id: "i".into(),
            database: "d".into(),
            table_name: "public.t".into(),
            columns: vec!["a".into()],
            action: "create".into(),
            ddl: ddl.into(),
            estimated_cost_before: 1.0,
            estimated_cost_after: 1.0,
            size_bytes: 1,
            time_saved_ms: 1.0,
            evidence: String::new(),
            baseline_ms: sqlx::types::Json(BTreeMap::new()),
            advised_at_ms: 0,
            applied_at_ms: None,
            paid_off: None,
            verdict: None,
        }
    }

    #[test]
    fn the_index_name_is_read_from_the_advised_ddl() {
        let create = stored("CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx ON public.t USING btree (a)");
        assert_eq!(create.index_name(), Some("t_a_idx"));
        let drop = stored("DROP INDEX CONCURRENTLY IF EXISTS public.t_b_idx");
        assert_eq!(drop.index_name(), Some("public.t_b_idx"));
    }
}
