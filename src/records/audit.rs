//! `audit_event.avsc`: one authenticated change, on `frontier.audit` and in `audit_log`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One authenticated change (`frontier.audit.AuditEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique event id.
    pub id: String,
    /// When the change was made, ms since the epoch.
    pub occurred_at: i64,
    /// Who made it (`key:<id>`, `jwt:<subject>`, `cli:<user>@<host>`).
    pub actor: String,
    /// The actor's role when it acted.
    pub role: String,
    /// The tenant acted for or concerned; `None` for platform-wide changes.
    pub tenant: Option<String>,
    /// What was done (`keys.create`, `keys.revoke`, ...).
    pub action: String,
    /// What it was done to, if anything in particular.
    pub target: Option<String>,
    /// The change's parameters as text, secrets masked.
    pub parameters: BTreeMap<String, String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why it was refused or failed.
    pub detail: Option<String>,
    /// The component that made it.
    pub source: String,
}

/// How a change ended (the `AuditOutcome` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// Made.
    Ok,
    /// Not allowed or not valid.
    Refused,
    /// An error stopped it.
    Failed,
}

impl AuditOutcome {
    /// The symbol, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Failed => "failed",
        }
    }
}
