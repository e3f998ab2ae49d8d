//! The records of the consumer groups still to come: `asset_change.avsc`, `cdn_purge_result.avsc`
//! (CDN purging) and `index_recommendation.avsc` (query analysis). Typed now so the wire
//! contract has one Rust type per schema from the start.

use serde::{Deserialize, Serialize};

/// A static asset that changed (`frontier.cdn.AssetChange`), on `frontier.assets.changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetChange {
    /// Unique change id: purges are idempotent by it.
    pub id: String,
    /// Path of the asset at the origin, e.g. `/static/app.css`.
    pub asset_path: String,
    /// Full URL at the edge, when known.
    pub asset_url: Option<String>,
    /// What happened to it.
    pub change: ChangeType,
    /// Hash of the new content; `None` when deleted.
    pub content_hash: Option<String>,
    /// Surrogate keys (cache tags) the asset carries at the edge.
    pub surrogate_keys: Vec<String>,
    /// For a deploy: the manifest now live (`sha256:<32 hex>`).
    pub manifest_id: Option<String>,
    /// For a deploy: the manifest it replaced; `None` for a site's first deploy.
    pub previous_manifest_id: Option<String>,
    /// When it changed, ms since the epoch.
    pub changed_at: i64,
}

/// What happened to an asset (the `ChangeType` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    /// A new asset.
    Created,
    /// New content under the same path.
    Updated,
    /// Gone from the origin.
    Deleted,
}

/// The outcome of one purge request to one CDN (`frontier.cdn.PurgeResult`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeResult {
    /// The `AssetChange` it purges for.
    pub change_id: String,
    /// The CDN or edge purged (`varnish`, `fastly`, ...).
    pub target: String,
    /// How it purged.
    pub method: PurgeMethod,
    /// The URLs, surrogate keys or ban expressions sent.
    pub keys: Vec<String>,
    /// How it went.
    pub status: PurgeStatus,
    /// The CDN's HTTP status, when it answered.
    pub http_status: Option<i32>,
    /// Why, when not ok.
    pub error: Option<String>,
    /// Requests made, retries included.
    pub attempts: i32,
    /// Milliseconds from the first attempt to the outcome.
    pub latency_ms: f64,
    /// When it finished, ms since the epoch.
    pub purged_at: i64,
}

/// How a purge addressed content (the `PurgeMethod` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeMethod {
    /// By URL.
    Url,
    /// By surrogate key (cache tag).
    SurrogateKey,
    /// By ban expression.
    Ban,
}

/// How a purge went (the `PurgeStatus` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PurgeStatus {
    /// The CDN accepted it.
    Ok,
    /// It failed after its retries.
    Error,
    /// Nothing to purge (already purged for this change, or nothing cached).
    Skipped,
}

/// What an index recommendation advises; serialized as the schema's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexAction {
    /// Build the index.
    Create,
    /// Remove an existing index.
    Drop,
}

/// An index the query analyzer recommends (`frontier.db.IndexRecommendation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRecommendation {
    /// Unique recommendation id.
    pub id: String,
    /// The database it is for.
    pub database: String,
    /// The table to index.
    pub table_name: String,
    /// Its columns, in index order.
    pub columns: Vec<String>,
    /// Access method, e.g. `btree`.
    pub index_type: String,
    /// The DDL that creates it.
    pub create_statement: String,
    /// Fingerprints of the statements it serves.
    pub query_fingerprints: Vec<String>,
    /// Planner cost of those statements without it.
    pub estimated_cost_before: f64,
    /// Planner cost with it (hypothetical).
    pub estimated_cost_after: f64,
    /// `estimated_cost_before / estimated_cost_after`.
    pub improvement_ratio: f64,
    /// Create the index, or drop an existing one.
    pub action: IndexAction,
    /// Estimated index size in bytes.
    pub size_bytes: i64,
    /// Estimated statement time saved over the observed workload, ms.
    pub time_saved_ms: f64,
    /// Estimated time added to the table's writes over the same workload, ms.
    pub write_overhead_ms: f64,
    /// Why, in words.
    pub evidence: String,
    /// When it was made, ms since the epoch.
    pub created_at: i64,
}
