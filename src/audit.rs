//! The audit trail: every authenticated change (keys, settings, purges, index applies, deploys,
//! rollbacks) as an [`AuditEvent`], published to `frontier.audit` and stored in PostgreSQL's
//! `audit_log`, where `frontier audit` reads it.
//!
//! An event is written to Kafka first (acknowledged by every in-sync replica), then to
//! PostgreSQL with its id as the key, so a retried write is harmless. Parameters are masked
//! before either sees them: a value under a name that holds secrets becomes `***`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use crate::bus::{CodecError, KafkaSettings, SchemaCatalog, kafka};
use crate::config::{InvalidSetting, PostgresSettings, topic_named};
use crate::records::{AuditEvent, AuditOutcome};

/// Parameter names (or parts of names) whose values are never written.
const SECRET_NAMES: [&str; 7] = ["secret", "password", "token", "key", "authorization", "credential", "private"];

/// What replaces a secret.
pub const MASK: &str = "***";

/// `[audit]`: where the trail goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Topic of the `AuditEvent`s.
    pub topic: String,
    /// PostgreSQL schema of `audit_log`; the connection's default `search_path` when unset.
    pub schema: Option<String>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { topic: "frontier.audit".into(), schema: None }
    }
}

impl AuditSettings {
    /// Checks what serde cannot; keys are relative to `[audit]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        topic_named("topic", &self.topic)
    }
}

/// Why the trail could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// PostgreSQL could not be reached or migrated.
    #[error("audit log: {0}")]
    Store(#[from] crate::db::ConnectError),
    /// A statement failed.
    #[error("audit log: {doing}: {source}")]
    Query {
        /// What was being done.
        doing: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The event could not be encoded.
    #[error("audit event: {0}")]
    Encode(#[from] CodecError),
    /// Kafka did not take the event.
    #[error("publishing the audit event to {topic}: {source} (is Kafka up? `ops/stack up`)")]
    Kafka {
        /// The topic.
        topic: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
}

/// Which events `frontier audit` shows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this action (`keys.create`).
    pub action: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// Writes and reads the trail. Cheap to clone.
#[derive(Clone)]
pub struct AuditTrail {
    producer: FutureProducer,
    topic: String,
    catalog: Arc<SchemaCatalog>,
    pool: PgPool,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// Connects to Kafka and PostgreSQL (migrating `audit_log` into `settings.schema`).
    pub async fn connect(
        kafka_settings: &KafkaSettings,
        postgres: &PostgresSettings,
        settings: &AuditSettings,
        catalog: Arc<SchemaCatalog>,
    ) -> Result<AuditTrail, AuditError> {
        let pool = crate::db::connect_migrated(postgres, settings.schema.as_deref(), "frontier-audit", 2).await?;
        let producer = kafka::producer(kafka_settings)
            .map_err(|source| AuditError::Kafka { topic: settings.topic.clone(), source })?;
        Ok(AuditTrail { producer, topic: settings.topic.clone(), catalog, pool })
    }

    /// Appends `event` to the topic, then to the table. An error means the event may be on
    /// the topic but not in the table (retrying with the same event fixes that).
    pub async fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let payload = self.catalog.encode_record(event)?;
        let record = FutureRecord::to(&self.topic).key(event.id.as_bytes()).payload(&payload);
        self.producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(source, _)| AuditError::Kafka { topic: self.topic.clone(), source })?;
        let parameters = serde_json::to_value(&event.parameters).unwrap_or_default();
        sqlx::query(
            "INSERT INTO audit_log (id, occurred_at, actor, role, tenant, action, target, parameters, outcome, detail, source) \
             VALUES ($1, to_timestamp($2::float8 / 1000), $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(event.occurred_at as f64)
        .bind(&event.actor)
        .bind(&event.role)
        .bind(&event.tenant)
        .bind(&event.action)
        .bind(&event.target)
        .bind(parameters)
        .bind(event.outcome.as_str())
        .bind(&event.detail)
        .bind(&event.source)
        .execute(&self.pool)
        .await
        .map_err(|source| AuditError::Query { doing: "storing the event", source })?;
        Ok(())
    }

    /// The newest events matching `filter`.
    pub async fn recent(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, AuditError> {
        let rows = sqlx::query(
            "SELECT id, (extract(epoch FROM occurred_at) * 1000)::float8 AS at, actor, role, tenant, action, target, \
                    parameters, outcome, detail, source \
             FROM audit_log \
             WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR action = $2) \
             ORDER BY occurred_at DESC, id LIMIT $3",
        )
        .bind(&filter.tenant)
        .bind(&filter.action)
        .bind(filter.limit.max(1))
        .fetch_all(&self.pool)
        .await
        .map_err(|source| AuditError::Query { doing: "reading the log", source })?;
        rows.iter()
            .map(|row| {
                let parameters: serde_json::Value = row.try_get("parameters")?;
                let outcome = match row.try_get::<String, _>("outcome")?.as_str() {
                    "ok" => AuditOutcome::Ok,
                    "refused" => AuditOutcome::Refused,
                    _ => AuditOutcome::Failed,
                };
                Ok(AuditEvent {
                    id: row.try_get("id")?,
                    occurred_at: row.try_get::<f64, _>("at")?.round() as i64,
                    actor: row.try_get("actor")?,
                    role: row.try_get("role")?,
                    tenant: row.try_get("tenant")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    parameters: serde_json::from_value(parameters).unwrap_or_default(),
                    outcome,
                    detail: row.try_get("detail")?,
                    source: row.try_get("source")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| AuditError::Query { doing: "reading an event", source })
    }

    /// The pool, for statements the trail does not offer (tests dropping their schema).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// An event of `action` by `actor` in `role`, now, with `parameters` masked.
pub fn event(
    actor: &str,
    role: &str,
    action: &str,
    parameters: BTreeMap<String, String>,
    outcome: AuditOutcome,
    source: &str,
) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::new_v4().to_string(),
        occurred_at: crate::clock::now_millis(),
        actor: actor.into(),
        role: role.into(),
        tenant: None,
        action: action.into(),
        target: None,
        parameters: mask(parameters),
        outcome,
        detail: None,
        source: source.into(),
    }
}

/// `parameters` with the value of every name that holds a secret replaced by [`MASK`].
pub fn mask(parameters: BTreeMap<String, String>) -> BTreeMap<String, String> {
    parameters
        .into_iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let secret = SECRET_NAMES.iter().any(|part| lower.contains(part));
            (name, if secret { MASK.to_owned() } else { value })
        })
        .collect()
}

/// Who acts from the command line: `cli:<user>@<host>`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        let masked = mask(BTreeMap::from([
            ("api_key".to_owned(), "frk_x_y".to_owned()),
            ("db_password".to_owned(), "hunter2".to_owned()),
            ("role".to_owned(), "viewer".to_owned()),
        ]));
        assert_eq!(masked["api_key"], MASK);
        assert_eq!(masked["db_password"], MASK);
        assert_eq!(masked["role"], "viewer");
    }

    #[test]
    fn an_event_is_masked_when_made() {
        let event = event(
            "cli:a@b",
            "admin",
            "keys.create",
            BTreeMap::from([("token".into(), "t".into())]),
            AuditOutcome::Ok,
            "cli",
        );
        assert_eq!(event.parameters["token"], MASK);
    }
}
