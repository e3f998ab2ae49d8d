//! `frontier keys create|revoke|list`: the gateway's API keys in PostgreSQL, every change on
//! the audit trail.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::audit::{cli_event, ended, open_trail, record};
use crate::audit::AuditTrail;
use crate::gateway::keys::{ApiKeyStore, KeyError, Role};
use crate::records::AuditOutcome;
use crate::settings::Settings;

/// What to do with keys.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key; it is printed once, as JSON, and never shown again.
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// What the key may do.
        #[arg(long, value_enum)]
        role: Role,
        /// What the key is for (shown by `list`).
        #[arg(long)]
        name: String,
    },
    /// Revoke a key by its id; every gateway refuses it within `gateway.auth.key_cache_ttl`.
    Revoke {
        /// The key's id (the 12 hex characters after `frk_`).
        id: String,
    },
    /// Every key, newest first, without secrets.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn keys(settings: &Settings, action: KeysAction) -> anyhow::Result<ExitCode> {
    let store = ApiKeyStore::connect(&settings.postgres, settings.gateway.auth.schema.as_deref())
        .await
        .context("opening the key store")?;
    match action {
        KeysAction::List { json } => list(&store, json).await,
        KeysAction::Create { tenant, role, name } => {
            create(&store, &open_trail(settings).await?, &tenant, role, &name).await
        }
        KeysAction::Revoke { id } => revoke(&store, &open_trail(settings).await?, &id).await,
    }
}

async fn create(
    store: &ApiKeyStore,
    trail: &AuditTrail,
    tenant: &str,
    role: Role,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let parameters = BTreeMap::from([("role".to_owned(), role.to_string()), ("name".to_owned(), name.to_owned())]);
    let mut event = cli_event("keys.create", parameters);
    event.tenant = Some(tenant.to_owned());
    match store.create(tenant, role, name).await {
        Ok(created) => {
            event.target = Some(created.id.clone());
            record(trail, &event).await?;
            println!("{}", serde_json::to_string(&created)?);
            eprintln!("keep the key now: only its hash is stored, it cannot be shown again");
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ KeyError::InvalidInput { .. }) => {
            record(trail, &ended(event, AuditOutcome::Refused, error.to_string())).await?;
            eprintln!("{error}");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            record(trail, &ended(event, AuditOutcome::Failed, error.to_string())).await?;
            Err(error.into())
        }
    }
}

async fn revoke(store: &ApiKeyStore, trail: &AuditTrail, id: &str) -> anyhow::Result<ExitCode> {
    let mut event = cli_event("keys.revoke", BTreeMap::new());
    event.target = Some(id.to_owned());
    match store.revoke(id).await {
        Ok(Some(tenant)) => {
            event.tenant = Some(tenant);
            record(trail, &event).await?;
            eprintln!("key {id} revoked");
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            let why = format!("no live key has the id `{}`", id.escape_debug());
            record(trail, &ended(event, AuditOutcome::Refused, why.clone())).await?;
            eprintln!("{why} (frontier keys list shows them)");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            record(trail, &ended(event, AuditOutcome::Failed, error.to_string())).await?;
            Err(error.into())
        }
    }
}

async fn list(store: &ApiKeyStore, json: bool) -> anyhow::Result<ExitCode> {
    let keys = store.list().await?;
    if json {
        for key in &keys {
            println!("{}", serde_json::to_string(key)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<12}  {:<16}  {:<8}  {:<20}  {:<20}  name", "id", "tenant", "role", "created", "revoked");
    for key in &keys {
        let revoked = key.revoked_at.as_deref().unwrap_or("-");
        println!(
            "{:<12}  {:<16}  {:<8}  {:<20}  {:<20}  {}",
            key.id, key.tenant, key.role, key.created_at, revoked, key.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
