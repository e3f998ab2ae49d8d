//! `frontier audit`: the audit trail, newest first, from PostgreSQL's `audit_log`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::audit::{AuditFilter, AuditTrail, cli_actor};
use crate::bus::SchemaCatalog;
use crate::gateway::keys::Role;
use crate::records::{AuditEvent, AuditOutcome};
use crate::settings::Settings;

/// `frontier audit` options.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this tenant's changes.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this action (`keys.create`, `keys.revoke`, ...).
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// JSON lines (the events as on `frontier.audit`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn audit(settings: &Settings, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
    let trail = AuditTrail::connect(&settings.kafka, &settings.postgres, &settings.audit, catalog)
        .await
        .context("opening the audit log")?;
    let filter = AuditFilter { tenant: args.tenant, action: args.action, limit: args.limit };
    let events = trail.recent(&filter).await?;
    for event in &events {
        if args.json {
            println!("{}", serde_json::to_string(event)?);
            continue;
        }
        let when = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.occurred_at.max(0).unsigned_abs()),
        );
        let parameters: Vec<String> = event.parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{when}  {:<8} {:<16} {} ({}) tenant={} target={} [{}]{}",
            event.outcome.as_str(),
            event.action,
            event.actor,
            event.role,
            event.tenant.as_deref().unwrap_or("-"),
            event.target.as_deref().unwrap_or("-"),
            parameters.join(" "),
            event.detail.as_deref().map(|d| format!(" {d}")).unwrap_or_default(),
        );
    }
    if events.is_empty() {
        eprintln!("no audit events match");
    }
    Ok(ExitCode::SUCCESS)
}

/// Every change made from the command line (keys, deploys, rollbacks) goes on the audit trail,
/// made, refused or failed. The trail is opened before the change, so none is made unrecorded because Kafka
/// or the table could not be reached.
pub(super) async fn open_trail(settings: &Settings) -> anyhow::Result<AuditTrail> {
    let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
    AuditTrail::connect(&settings.kafka, &settings.postgres, &settings.audit, catalog)
        .await
        .context("opening the audit trail")
}

/// Appends `event` to the trail.
pub(super) async fn record(trail: &AuditTrail, event: &AuditEvent) -> anyhow::Result<()> {
    trail.record(event).await.context("recording the change on the audit trail")
}

/// An event of `action` by whoever runs the command line: admin, since it holds the
/// database credentials.
pub(super) fn cli_event(action: &str, parameters: BTreeMap<String, String>) -> AuditEvent {
    crate::audit::event(&cli_actor(), Role::Admin.as_str(), action, parameters, AuditOutcome::Ok, "cli")
}

/// `event`, which ended as `outcome` for the reason `detail`.
pub(super) fn ended(mut event: AuditEvent, outcome: AuditOutcome, detail: String) -> AuditEvent {
    event.outcome = outcome;
    event.detail = Some(detail);
    event
}
