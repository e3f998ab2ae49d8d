//! Deploying a configuration to an environment, and undoing it (`frontier deploy`,
//! `frontier rollback`).
//!
//! A deploy is: a preflight that changes nothing (the configuration validates, Kafka, Redis and
//! PostgreSQL answer, the topic plan has no change Kafka refuses, the pending migrations are
//! listed); then the topics and migrations applied; then the release recorded in the
//! `deployments` table and on the audit trail; then every worker instance restarted one at a
//! time, each replacement in its group before the instance it replaces leaves (`rollout`).
//!
//! A rollback restores the previous recorded deployment: its configuration file, its topic
//! configs (refusing, with the reason, what Kafka cannot undo, such as fewer partitions), and
//! records itself as a deployment of kind `rollback`.

pub mod rollout;
pub mod store;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use self::store::{DeploymentRecord, DeploymentStore};
use crate::config::Environment;
use crate::settings::Settings;
use crate::topics::{self, Plan, TopicSpec};

/// Why a deploy or rollback stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    File {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The topic files or the cluster's topics could not be read or changed.
    #[error("topics: {0}")]
    Topics(#[from] topics::TopicsError),
    /// A Kafka client could not be made.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// PostgreSQL could not be reached or migrated.
    #[error("{0}")]
    Connect(#[from] crate::db::ConnectError),
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
    /// Restarting the workers failed.
    #[error("restarting workers: {0}")]
    Rollout(String),
}

/// What is about to be deployed: the environment's file, its effective configuration and the
/// topic definitions.
#[derive(Debug, Clone)]
pub struct Release {
    /// The environment.
    pub environment: Environment,
    /// `config/<environment>.toml`.
    pub config_path: PathBuf,
    /// Its text.
    pub config_file: String,
    /// SHA-256 (hex) of the effective configuration: the file, `FRONTIER_*` variables and
    /// defaults, as the workers will read them.
    pub config_hash: String,
    /// The topic definitions, overrides applied.
    pub topics: Vec<TopicSpec>,
}

impl Release {
    /// The release `settings` (loaded and validated from `config_dir`) describe.
    pub fn read(settings: &Settings, environment: Environment, config_dir: &Path) -> Result<Release, DeployError> {
        let config_path = config_dir.join(format!("{environment}.toml"));
        let config_file = std::fs::read_to_string(&config_path).map_err(|source| DeployError::File {
            action: "reading",
            path: config_path.clone(),
            source,
        })?;
        let topics = topics::load_dir(&settings.paths.topics, &settings.topics)?;
        Ok(Release { environment, config_path, config_file, config_hash: config_hash(settings), topics })
    }
}

/// SHA-256 (hex) of `settings` as JSON: equal for equal effective configurations.
pub fn config_hash(settings: &Settings) -> String {
    // Settings serialize to JSON without fail (they came from TOML through serde).
    let json = serde_json::to_vec(settings).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// One preflight check: what was seen, or why it failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// What was seen (`Ok`) or what is wrong (`Err`).
    #[serde(serialize_with = "crate::health::workers::verdict")]
    pub result: Result<String, String>,
}

/// Migrations not yet applied in one schema.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingMigrations {
    /// The schema (`public` when the search path's default).
    pub schema: String,
    /// `version description` of each, in order.
    pub pending: Vec<String>,
}

/// What the preflight found.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// Configuration and services.
    pub checks: Vec<Check>,
    /// The topic changes the release needs (empty when Kafka was unreachable).
    pub topic_plan: Plan,
    /// Per schema, the migrations to apply.
    pub migrations: Vec<PendingMigrations>,
}

impl Preflight {
    /// True when the deploy may go on: every check passed and no topic change is refused.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.result.is_ok()) && self.topic_plan.refused().is_empty()
    }

    /// The reasons it did not pass.
    pub fn failures(&self) -> Vec<String> {
        let checks =
            self.checks.iter().filter_map(|check| check.result.as_ref().err().map(|e| format!("{}: {e}", check.name)));
        let refused = self.topic_plan.refusals().into_iter().map(|refusal| format!("topic {refusal}"));
        checks.chain(refused).collect()
    }
}

/// Checks `release` against the running services without changing anything.
pub async fn preflight(settings: &Settings, release: &Release, timeout: std::time::Duration) -> Preflight {
    let mut checks = vec![Check {
        name: "config".into(),
        result: Ok(format!("{} valid ({})", release.config_path.display(), short(&release.config_hash))),
    }];
    let services = crate::health::run_checks(settings, timeout).await;
    // Topics are what the deploy creates: their absence is the plan's business, not a failure.
    checks.extend(
        services
            .into_iter()
            .filter(|check| check.name != "topics")
            .map(|check| Check { name: check.name.into(), result: check.result }),
    );
    let topic_plan = match topic_plan(settings, &release.topics).await {
        Ok(plan) => plan,
        Err(error) => {
            checks.push(Check { name: "topics".into(), result: Err(error.to_string()) });
            Plan::default()
        }
    };
    let migrations = match pending_migrations(settings).await {
        Ok(pending) => pending,
        Err(error) => {
            checks.push(Check { name: "migrations".into(), result: Err(error.to_string()) });
            Vec::new()
        }
    };
    Preflight { checks, topic_plan, migrations }
}

/// How the cluster differs from `specs`.
pub async fn topic_plan(settings: &Settings, specs: &[TopicSpec]) -> Result<Plan, DeployError> {
    let admin = crate::bus::kafka::admin(&settings.kafka)?;
    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    let cluster = topics::describe(&admin, &names, settings.kafka.request_timeout).await?;
    Ok(topics::plan(specs, &cluster))
}

/// Applies `plan` (refusing it whole if any change is refused).
pub async fn apply_topics(settings: &Settings, plan: &Plan) -> Result<(), DeployError> {
    if plan.is_empty() {
        return Ok(());
    }
    let admin = crate::bus::kafka::admin(&settings.kafka)?;
    topics::apply(&admin, plan, settings.kafka.request_timeout).await?;
    Ok(())
}

/// The schemas the platform's stores migrate: the price store's, the key store's, the audit
/// log's (the search path's default, `public`, for those that name none).
fn schemas(settings: &Settings) -> BTreeSet<String> {
    [settings.prices.schema.as_deref(), settings.gateway.auth.schema.as_deref(), settings.audit.schema.as_deref()]
        .into_iter()
        .map(|schema| schema.unwrap_or("public").to_owned())
        .collect()
}

/// Per schema, the embedded migrations its `_sqlx_migrations` table does not list as applied.
pub async fn pending_migrations(settings: &Settings) -> Result<Vec<PendingMigrations>, DeployError> {
    let pool = crate::db::connect(&settings.postgres, None, "frontier-deploy", 1).await?;
    let migrator = sqlx::migrate!();
    let mut all = Vec::new();
    for schema in schemas(settings) {
        // Settings validation already requires plain names; the statement below quotes none.
        if !crate::db::is_plain_schema_name(&schema) {
            return Err(crate::db::ConnectError::Invalid(format!("schema `{schema}` is not a plain name")).into());
        }
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(format!("{schema}._sqlx_migrations"))
            .fetch_one(&pool)
            .await?;
        let applied: Vec<i64> = match exists {
            Some(_) => {
                let statement = format!("SELECT version FROM {schema}._sqlx_migrations WHERE success ORDER BY version");
                sqlx::query_scalar(sqlx::AssertSqlSafe(statement)).fetch_all(&pool).await?
            }
            None => Vec::new(),
        };
        let pending = migrator
            .iter()
            .filter(|migration| !applied.contains(&migration.version))
            .map(|migration| format!("{} {}", migration.version, migration.description))
            .collect();
        all.push(PendingMigrations { schema, pending });
    }
    Ok(all)
}

/// Applies the migrations in every schema; returns the versions now applied.
pub async fn apply_migrations(settings: &Settings) -> Result<Vec<i64>, DeployError> {
    for schema in schemas(settings) {
        let schema = (schema != "public").then_some(schema);
        crate::db::connect_migrated(&settings.postgres, schema.as_deref(), "frontier-deploy", 1).await?.close().await;
    }
    Ok(sqlx::migrate!().iter().map(|migration| migration.version).collect())
}

/// The first twelve characters of a hash, for people.
pub fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
