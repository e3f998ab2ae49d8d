//! What the advisor knows of a table: its columns and their distinct counts, row width, existing
//! indexes with their scans, and its write statistics.

use sqlx::PgConnection;

use super::AdviceError;

/// A column with the planner's statistics.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    /// Estimated distinct values (from `pg_stats.n_distinct`; 0 when never analysed).
    pub distinct: f64,
    /// Average width in bytes (`pg_stats.avg_width`; 8 when never analysed).
    pub width: f64,
}

/// An index that exists.
#[derive(Debug, Clone)]
pub struct ExistingIndex {
    /// Schema-qualified name, quoted where needed (`public.orders_customer_idx`).
    pub name: String,
    pub method: String,
    /// Key columns in order; `None` for an expression.
    pub columns: Vec<Option<String>>,
    pub unique: bool,
    /// It backs a constraint (primary key, unique, exclusion): never dropped by advice.
    pub constraint: bool,
    /// It has a `WHERE` predicate.
    pub partial: bool,
    /// Scans since statistics began.
    pub scans: i64,
    pub size_bytes: i64,
}

impl ExistingIndex {
    /// Key columns when every one is a plain column.
    pub fn plain_columns(&self) -> Option<Vec<&str>> {
        self.columns.iter().map(|c| c.as_deref()).collect()
    }
}

/// One row of the index query.
#[derive(sqlx::FromRow)]
struct IndexRow {
    name: String,
    method: String,
    columns: Vec<Option<String>>,
    unique: bool,
    constraint: bool,
    partial: bool,
    scans: i64,
    size_bytes: i64,
}

/// A table, resolved from a name as a statement wrote it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub oid: u32,
    /// `schema.table`, quoted where needed: what DDL uses.
    pub qualified: String,
    pub rows: f64,
    /// Average row width in bytes, including the tuple header.
    pub row_width: f64,
    pub columns: Vec<ColumnInfo>,
    pub indexes: Vec<ExistingIndex>,
    pub inserts: i64,
    pub updates: i64,
    pub hot_updates: i64,
    pub deletes: i64,
}

impl TableInfo {
    /// The column named `name`, if the table has it.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Share of updates that were HOT (no index touched); 0 without updates.
    pub fn hot_share(&self) -> f64 {
        if self.updates == 0 { 0.0 } else { self.hot_updates as f64 / self.updates as f64 }
    }

    /// Loads the table a statement calls `name`, as the database's search path resolves it;
    /// `None` when there is no such table (a temporary or dropped one) or it is a system
    /// catalog (monitoring tools, this advisor included, query those; they are not ours to index).
    pub async fn load(conn: &mut PgConnection, name: &str) -> Result<Option<TableInfo>, AdviceError> {
        let query = |operation: &'static str| move |source| AdviceError::Query { operation, source };
        let found: Option<(i64, String, f32)> = sqlx::query_as(
            "SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname), c.reltuples \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'",
        )
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(query("resolving a table name"))?;
        let Some((oid, qualified, reltuples)) = found else { return Ok(None) };
        let oid = u32::try_from(oid).unwrap_or_default();
        let columns: Vec<(String, Option<f32>, Option<i32>)> = sqlx::query_as(
            "SELECT a.attname::text, s.n_distinct, s.avg_width \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname \
             WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(i64::from(oid))
        .fetch_all(&mut *conn)
        .await
        .map_err(query("reading column statistics"))?;
        let rows = f64::from(reltuples.max(0.0));
        let columns: Vec<ColumnInfo> = columns
            .into_iter()
            .map(|(name, n_distinct, width)| {
                // Negative n_distinct is a share of the rows (-1: unique).
                let distinct = match n_distinct.map(f64::from) {
                    Some(n) if n < 0.0 => -n * rows,
                    Some(n) => n,
                    None => 0.0,
                };
                ColumnInfo { name, distinct, width: width.map_or(8.0, f64::from) }
            })
            .collect();
        let row_width = 24.0 + columns.iter().map(|c| c.width).sum::<f64>();
        let indexes: Vec<IndexRow> = sqlx::query_as(
            "SELECT i.indexrelid::regclass::text AS name, am.amname::text AS method, \
                    ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
                          LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                          WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) AS columns, \
                    i.indisunique AS unique, \
                    EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid) AS constraint, \
                    i.indpred IS NOT NULL AS partial, \
                    coalesce(st.idx_scan, 0)::int8 AS scans, pg_relation_size(i.indexrelid)::int8 AS size_bytes \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
             LEFT JOIN pg_stat_all_indexes st ON st.indexrelid = i.indexrelid \
             WHERE i.indrelid = $1::int8::oid ORDER BY 1",
        )
        .bind(i64::from(oid))
        .fetch_all(&mut *conn)
        .await
        .map_err(query("reading the table's indexes"))?;
        let indexes = indexes
            .into_iter()
            .map(|row| ExistingIndex {
                name: row.name,
                method: row.method,
                columns: row.columns,
                unique: row.unique,
                constraint: row.constraint,
                partial: row.partial,
                scans: row.scans,
                size_bytes: row.size_bytes,
            })
            .collect();
        let (inserts, updates, hot_updates, deletes): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(n_tup_ins), 0)::int8, coalesce(sum(n_tup_upd), 0)::int8, \
                    coalesce(sum(n_tup_hot_upd), 0)::int8, coalesce(sum(n_tup_del), 0)::int8 \
             FROM pg_stat_all_tables WHERE relid = $1::int8::oid",
        )
        .bind(i64::from(oid))
        .fetch_one(&mut *conn)
        .await
        .map_err(query("reading the table's write statistics"))?;
        Ok(Some(TableInfo {
            oid,
            qualified,
            rows,
            row_width,
            columns,
            indexes,
            inserts,
            updates,
            hot_updates,
            deletes,
        }))
    }
}
