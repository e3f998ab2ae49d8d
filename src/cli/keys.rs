//! `frontier keys create|revoke|list`: the gateway's API keys in PostgreSQL.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::gateway::keys::{ApiKeyStore, Role};
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
        KeysAction::Create { tenant, role, name } => {
            let created = store.create(&tenant, role, &name).await?;
            println!("{}", serde_json::to_string(&created)?);
            eprintln!("keep the key now: only its hash is stored, it cannot be shown again");
        }
        KeysAction::Revoke { id } => {
            if !store.revoke(&id).await? {
                eprintln!("no live key has the id `{id}` (frontier keys list shows them)");
                return Ok(ExitCode::FAILURE);
            }
            eprintln!("key {id} revoked");
        }
        KeysAction::List { json } => {
            let keys = store.list().await?;
            if json {
                for key in &keys {
                    println!("{}", serde_json::to_string(key)?);
                }
            } else {
                println!("{:<12}  {:<16}  {:<8}  {:<20}  {:<20}  name", "id", "tenant", "role", "created", "revoked");
                for key in &keys {
                    let revoked = key.revoked_at.as_deref().unwrap_or("-");
                    println!(
                        "{:<12}  {:<16}  {:<8}  {:<20}  {:<20}  {}",
                        key.id, key.tenant, key.role, key.created_at, revoked, key.name
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
