//! `slow_query_finding.avsc`: a statement shape slow, heavy or regressed in one window, on
//! `frontier.db.slow-queries`.

use serde::{Deserialize, Serialize};

/// Which rule a window met; serialized as the schema's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowQueryKind {
    /// Mean over the slow threshold on enough calls.
    Slow,
    /// A large share of the database's time.
    Heavy,
    /// Several times its own baseline.
    Regressed,
}

/// One finding (`frontier.db.SlowQueryFinding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowQueryFinding {
    /// Hash of database, fingerprint and window start.
    pub id: String,
    pub kind: SlowQueryKind,
    pub database: String,
    pub fingerprint: String,
    /// One statement text of the shape.
    pub sql: String,
    /// Whether the SQL parser understood it.
    pub parsed: bool,
    /// Window start and end, ms since the epoch.
    pub window_start: i64,
    pub window_end: i64,
    pub calls: i64,
    pub errors: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub rows: i64,
    /// Share of the database's statement time in the window.
    pub time_share: f64,
    /// Baseline mean before the window, if the shape had one.
    pub baseline_mean_ms: Option<f64>,
    /// Findings for the database in the same window.
    pub window_findings: i32,
    /// When the window closed, ms since the epoch.
    pub detected_at: i64,
}
