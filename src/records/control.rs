//! `batching_override.avsc`: batch settings changed while running, on `frontier.control.batching`.

use serde::{Deserialize, Serialize};

/// Batch settings of one model over its configured ones (`frontier.control.BatchingOverride`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchingOverride {
    /// The model (also the record's key).
    pub model: String,
    /// A JSON object of the batching fields that differ from the configuration.
    pub settings: String,
    /// Who made the change.
    pub changed_by: String,
    /// When, ms since the epoch.
    pub changed_at: i64,
    /// The change's audit event id.
    pub audit_id: String,
}
