//! `DeploymentStore`: the `deployments` table (migration `..._deployments.sql`), beside the
//! audit log in `[audit] schema`: one row per deploy or rollback, with what a rollback needs to
//! restore.

use serde::Serialize;
use sqlx::PgPool;
use sqlx::types::Json;

use crate::config::PostgresSettings;
use crate::db::{ConnectError, connect_migrated};
use crate::topics::TopicSpec;

/// One recorded deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentRecord {
    /// Its id (UUID v4).
    pub id: String,
    /// The environment (`development`, `staging`, `production`).
    pub environment: String,
    /// `deploy` or `rollback`.
    pub kind: String,
    /// The binary's version.
    pub version: String,
    /// SHA-256 of the effective configuration.
    pub config_hash: String,
    /// The environment's configuration file as deployed.
    pub config_file: String,
    /// The topic definitions as deployed.
    pub topics: Vec<TopicSpec>,
    /// Migration versions applied when it finished.
    pub migrations: Vec<i64>,
    /// Who deployed.
    pub actor: String,
    /// When, ms since the epoch.
    pub deployed_at_ms: i64,
    /// For a rollback: the deployment it restored.
    pub restores: Option<String>,
}

/// The deployments table.
#[derive(Debug, Clone)]
pub struct DeploymentStore {
    pool: PgPool,
}

type Row =
    (String, String, String, String, String, String, Json<Vec<TopicSpec>>, Json<Vec<i64>>, String, i64, Option<String>);

const COLUMNS: &str = "id, environment, kind, version, config_hash, config_file, topic_configs, migrations, actor, \
                       (extract(epoch from deployed_at) * 1000)::bigint, restores";

impl DeploymentStore {
    /// Connects (migrations applied) in `schema`, or the search path's default.
    pub async fn connect(settings: &PostgresSettings, schema: Option<&str>) -> Result<DeploymentStore, ConnectError> {
        Ok(DeploymentStore { pool: connect_migrated(settings, schema, "frontier-deploy", 2).await? })
    }

    /// Appends `record`.
    pub async fn record(&self, record: &DeploymentRecord) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO deployments (id, environment, kind, version, config_hash, config_file, topic_configs, \
             migrations, actor, deployed_at, restores) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10::double precision / 1000), $11)",
        )
        .bind(&record.id)
        .bind(&record.environment)
        .bind(&record.kind)
        .bind(&record.version)
        .bind(&record.config_hash)
        .bind(&record.config_file)
        .bind(Json(&record.topics))
        .bind(Json(&record.migrations))
        .bind(&record.actor)
        .bind(record.deployed_at_ms)
        .bind(&record.restores)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` deployments of `environment`, newest first.
    pub async fn history(&self, environment: &str, limit: i64) -> Result<Vec<DeploymentRecord>, sqlx::Error> {
        let statement = format!(
            "SELECT {COLUMNS} FROM deployments WHERE environment = $1 ORDER BY deployed_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<Row> =
            sqlx::query_as(sqlx::AssertSqlSafe(statement)).bind(environment).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// One deployment by id.
    pub async fn get(&self, id: &str) -> Result<Option<DeploymentRecord>, sqlx::Error> {
        let statement = format!("SELECT {COLUMNS} FROM deployments WHERE id = $1");
        let row: Option<Row> =
            sqlx::query_as(sqlx::AssertSqlSafe(statement)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(from_row))
    }

    /// The pool (tests drop their schema through it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn from_row(row: Row) -> DeploymentRecord {
    let (id, environment, kind, version, config_hash, config_file, topics, migrations, actor, at, restores) = row;
    DeploymentRecord {
        id,
        environment,
        kind,
        version,
        config_hash,
        config_file,
        topics: topics.0,
        migrations: migrations.0,
        actor,
        deployed_at_ms: at,
        restores,
    }
}
