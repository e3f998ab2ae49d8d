//! `db_query_event.avsc`: one database statement as it ran, on `frontier.db.query-events`.

use serde::{Deserialize, Serialize};

/// Outcome of a statement; serialized as the schema's symbols `ok`, `error`, `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryStatus {
    /// It ran.
    Ok,
    /// It failed; the event's `error` says why.
    Error,
    /// It was cancelled by a statement timeout, or no connection was free in time.
    Timeout,
}

/// One statement as it was run (`frontier.db.QueryEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryEvent {
    /// Unique event id (UUID v4).
    pub id: String,
    /// The statement text with placeholders; bound values are never included.
    pub sql: String,
    /// `crate::queries::fingerprint` of `sql`.
    pub fingerprint: Option<String>,
    /// Wall-clock time from sending the statement to having its last row, in milliseconds.
    pub duration_ms: f64,
    /// Rows returned (queries) or affected (writes); 0 when it failed.
    pub rows: i64,
    /// The database it ran against.
    pub database: String,
    /// The application that ran it (also its PostgreSQL `application_name`).
    pub application: String,
    /// Outcome.
    pub status: QueryStatus,
    /// The error when `status` is not ok.
    pub error: Option<String>,
    /// When the statement started (or, for `calls > 1`, the end of the interval), ms since the epoch.
    pub occurred_at: i64,
    /// Runs the event stands for: 1 for one statement, more for a collector's interval
    /// (`duration_ms` is then their mean, `rows` their sum).
    #[serde(default = "one")]
    pub calls: i64,
}

fn one() -> i64 {
    1
}
