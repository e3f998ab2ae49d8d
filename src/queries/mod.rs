//! Slow-query analysis: statement shapes and fingerprints from a real SQL parser, and index
//! advice proven with hypothetical indexes (HypoPG) on the database itself.
//!
//! - [`shape`]: one fingerprint per query shape (literals and `IN` lists squashed), and the
//!   columns each statement filters, joins, sorts and groups on.
//! - [`advisor`]: the workload's statements planned with and without candidate indexes; the
//!   indexes chosen for the whole workload, weighted by time, under a storage budget, charged
//!   for their write cost; unused and duplicate indexes to drop.
//! - [`collector`]: `pg_stat_statements` deltas of any database as query events.
//! - [`detect`]: slow, heavy and regressed statements in event-time windows of query events.
//! - [`store`]: the recommendations table: advice, when it was applied, whether it paid off.
//! - [`workload`]: where statements come from (`pg_stat_statements` of any database).

pub mod advisor;
pub mod collector;
pub mod detect;
pub mod shape;
pub mod store;
mod text;
pub mod workload;

use std::sync::LazyLock;

use dashmap::DashMap;

pub use advisor::{
    Advice, AdviceError, AdvisorSettings, BaselineIndex, DropAdvice, DropKind, IndexAdvice, advice_id, advise, dexter,
};
pub use collector::StatCollector;
pub use detect::{Finding, FindingKind, QueryWindows, SlowRules, StatementRun, WindowSummary};
pub use shape::{ColumnRole, ColumnUse, Constant, Shape, StatementKind, TableRef, UnparsedSql, fingerprint};
pub use store::{RecommendationStore, StoredRecommendation};
pub use text::{normalize_text, repair_typed_literals};
pub use workload::{StatementLoad, Workload, WorkloadError};

/// A stable short id of `parts`: the first 16 hex digits (64 bits) of the SHA-256 of the parts
/// joined by U+001F (a separator no name contains), the same in every process and release.
/// Fingerprints, advice ids and finding ids are all made this way.
pub fn stable_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(parts.join("\u{1f}").as_bytes())[..8])
}

/// The fingerprint of a statement compiled into this program, parsed once per process: the
/// price store reports one with every query event, and its statements are a handful of
/// constants.
pub fn static_fingerprint(sql: &'static str) -> String {
    static KNOWN: LazyLock<DashMap<&'static str, String>> = LazyLock::new(DashMap::new);
    KNOWN.entry(sql).or_insert_with(|| fingerprint(sql)).clone()
}
