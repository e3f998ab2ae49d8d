//! The statements to advise on, with what they cost: from `pg_stat_statements` of any database
//! (so applications that are not ours are analysed too), or from query events.

use sqlx::PgConnection;

use super::shape::Constant;

/// One statement shape with its observed load.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StatementLoad {
    /// Text to plan: `pg_stat_statements`' normalized text (`$n` for constants), or an event's.
    pub sql: String,
    /// Runs observed.
    pub calls: u64,
    /// Time of all those runs, in milliseconds.
    pub total_ms: f64,
    /// Rows returned or affected, over all runs.
    pub rows: u64,
    /// `column = literal` comparisons every run seen had (known from events with literals;
    /// `pg_stat_statements` texts have none): the predicates of partial-index candidates.
    pub constants: Vec<Constant>,
}

impl StatementLoad {
    /// Mean time per run in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { self.total_ms / self.calls as f64 }
    }
}

/// The statements of one database, heaviest first.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Workload {
    /// The database they ran against.
    pub database: String,
    pub statements: Vec<StatementLoad>,
}

/// Why a workload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// An extension the analysis needs is missing in this database.
    #[error("{extension} is not available in database `{database}`: {hint}")]
    MissingExtension { extension: &'static str, database: String, hint: String },
    /// A catalog query failed.
    #[error("{operation}: {source}")]
    Query {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// What to install for `pg_stat_statements`, said where it is missing.
const STAT_STATEMENTS_HINT: &str = "add it to shared_preload_libraries in postgresql.conf, restart PostgreSQL, then run \
     CREATE EXTENSION pg_stat_statements; in this database (package postgresql-contrib; ops/stack up does all of it)";

/// A failed read of `pg_stat_statements`, naming what to install where that is the cause.
pub(crate) fn stat_statements_error(source: sqlx::Error, database: &str) -> WorkloadError {
    let message = source.as_database_error().map(|e| e.message().to_owned());
    match message {
        // Created but not preloaded: the view exists and refuses to be read.
        Some(message) if message.contains("shared_preload_libraries") => WorkloadError::MissingExtension {
            extension: "pg_stat_statements",
            database: database.to_owned(),
            hint: format!("{message}; {STAT_STATEMENTS_HINT}"),
        },
        // Never created in this database.
        Some(message) if message.contains("pg_stat_statements") && message.contains("does not exist") => {
            WorkloadError::MissingExtension {
                extension: "pg_stat_statements",
                database: database.to_owned(),
                hint: STAT_STATEMENTS_HINT.to_owned(),
            }
        }
        _ => WorkloadError::Query { operation: "reading pg_stat_statements", source },
    }
}

impl Workload {
    /// The `limit` statements of the connected database with the most total execution time,
    /// summed over users, top-level statements only (a function's inner statements are planned
    /// with their caller), queries and writes only (DDL, SET, EXPLAIN... take no slot).
    pub async fn from_stat_statements(conn: &mut PgConnection, limit: usize) -> Result<Workload, WorkloadError> {
        let database: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| WorkloadError::Query { operation: "reading the database name", source })?;
        let installed: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")
                .fetch_one(&mut *conn)
                .await
                .map_err(|source| WorkloadError::Query { operation: "looking for pg_stat_statements", source })?;
        if !installed {
            return Err(WorkloadError::MissingExtension {
                extension: "pg_stat_statements",
                database,
                hint: STAT_STATEMENTS_HINT.to_owned(),
            });
        }
        let rows: Vec<(String, i64, f64, i64)> = sqlx::query_as(
            "SELECT s.query, sum(s.calls)::int8, sum(s.total_exec_time)::float8, sum(s.rows)::int8 \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = current_database() AND s.toplevel \
               AND s.query ~* '^\\s*(with|select|insert|update|delete|merge|table|values)\\y' \
             GROUP BY s.query ORDER BY 3 DESC LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(|source| stat_statements_error(source, &database))?;
        let statements = rows
            .into_iter()
            .map(|(sql, calls, total_ms, rows)| StatementLoad {
                sql,
                calls: u64::try_from(calls).unwrap_or(0),
                total_ms,
                rows: u64::try_from(rows).unwrap_or(0),
                constants: Vec::new(),
            })
            .collect();
        Ok(Workload { database, statements })
    }
}
