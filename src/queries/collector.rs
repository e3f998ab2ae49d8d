//! A `pg_stat_statements` collector: what every statement shape of a database did between two
//! reads, as query events, so statements of applications that publish no events of their own
//! are analysed too.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::workload::WorkloadError;
use crate::records::{QueryEvent, QueryStatus};

/// One statement shape's cumulative counters at one read.
#[derive(Debug, Clone, PartialEq)]
struct Counters {
    query: String,
    role: String,
    calls: i64,
    total_ms: f64,
    rows: i64,
}

/// Reads `pg_stat_statements` of the connected database and turns the difference since the
/// last read into query events.
#[derive(Debug, Default)]
pub struct StatCollector {
    /// (queryid, userid) -> counters at the last read; `None` before the first read.
    last: Option<HashMap<(i64, i64), Counters>>,
}

impl StatCollector {
    /// A collector whose first read only sets the starting point: the counters since the
    /// statistics were reset are history, not this interval.
    pub fn new() -> Self {
        StatCollector::default()
    }

    /// Reads the counters and returns one event per shape that ran since the last read
    /// (`calls` runs, `duration_ms` their mean), dated `now_ms`.
    pub async fn poll(&mut self, conn: &mut PgConnection, now_ms: i64) -> Result<Vec<QueryEvent>, WorkloadError> {
        let database: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| WorkloadError::Query { operation: "reading the database name", source })?;
        let rows: Vec<(i64, i64, String, String, i64, f64, i64)> = sqlx::query_as(
            "SELECT s.queryid, s.userid::int8, s.query, coalesce(r.rolname::text, ''), s.calls, s.total_exec_time, s.rows \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             LEFT JOIN pg_roles r ON r.oid = s.userid \
             WHERE d.datname = current_database() AND s.toplevel AND s.queryid IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|source| super::workload::stat_statements_error(source, &database))?;
        let now: HashMap<(i64, i64), Counters> = rows
            .into_iter()
            .map(|(queryid, userid, query, role, calls, total_ms, rows)| {
                ((queryid, userid), Counters { query, role, calls, total_ms, rows })
            })
            .collect();
        let Some(last) = self.last.replace(now) else { return Ok(Vec::new()) };
        let mut events = Vec::new();
        for (key, counters) in self.last.iter().flatten() {
            // Missing before, or counters that went down (a reset or an evicted entry): all of
            // it is new.
            let (calls, total_ms, rows) = match last.get(key) {
                Some(before) if before.calls <= counters.calls => {
                    (counters.calls - before.calls, counters.total_ms - before.total_ms, counters.rows - before.rows)
                }
                _ => (counters.calls, counters.total_ms, counters.rows),
            };
            if calls <= 0 {
                continue;
            }
            events.push(QueryEvent {
                id: uuid::Uuid::new_v4().to_string(),
                sql: counters.query.clone(),
                // Also the Kafka key: a shape's intervals land on the partition its single
                // runs (keyed by the same fingerprint) land on, so one analyzer owns the shape.
                fingerprint: Some(super::fingerprint(&counters.query)),
                duration_ms: (total_ms / calls as f64).max(0.0),
                rows: rows.max(0),
                database: database.clone(),
                application: if counters.role.is_empty() {
                    "pg_stat_statements".into()
                } else {
                    format!("role:{}", counters.role)
                },
                status: QueryStatus::Ok,
                error: None,
                occurred_at: now_ms,
                calls,
            });
        }
        events.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
        Ok(events)
    }
}
