//! `frontier deploy` and `frontier rollback`: the release of `config/<environment>.toml` and
//! `topics/` to the running platform, recorded and audited, with a rolling restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use super::audit::{cli_event, ended, open_trail, record};
use crate::audit::{AuditTrail, cli_actor};
use crate::config::Environment;
use crate::deploy::{self, DeploymentRecord, DeploymentStore, Preflight, Release, rollout, short};
use crate::records::{AuditEvent, AuditOutcome};
use crate::settings::Settings;
use crate::workers::autoscaler::{ActuatorKind, KubernetesDeployments};

/// How the workers pick the release up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartMode {
    /// The instances the autoscaler's local actuator recorded, one at a time.
    Local,
    /// Each worker's Deployment, by its rolling strategy.
    Kubernetes,
    /// No restart (the next start reads the release).
    None,
}

/// Options shared by deploy and rollback.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// How to restart the workers; defaults to `workers.autoscaler.actuator`.
    #[arg(long, value_enum)]
    pub restart: Option<RestartMode>,
    /// Restart only these workers (repeatable); all groups when absent.
    #[arg(long = "only", value_name = "WORKER")]
    pub only: Vec<String>,
    /// How long a replacement instance may take to join its group.
    #[arg(long, default_value = "120s", value_parser = super::duration_arg)]
    pub join_timeout: Duration,
}

/// `frontier deploy` options (the environment is the global `--environment`).
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Run the preflight, print the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

/// `frontier rollback` options.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Restore this deployment instead of the one before the latest.
    #[arg(long)]
    pub to: Option<String>,
    /// Print what would be restored, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

pub async fn deploy(
    settings: &Settings,
    environment: Environment,
    config_dir: &Path,
    args: DeployArgs,
) -> anyhow::Result<ExitCode> {
    let release = Release::read(settings, environment, config_dir)?;
    println!("deploying {environment}: frontier {}, config {}", env!("CARGO_PKG_VERSION"), short(&release.config_hash));
    let preflight = deploy::preflight(settings, &release, settings.kafka.request_timeout).await;
    print_preflight(&preflight);
    let mut event = cli_event("deploy", parameters(environment, &release.config_hash));
    event.target = Some(environment.to_string());
    if !preflight.passed() {
        let why = preflight.failures().join("; ");
        eprintln!("preflight FAILED, nothing changed: {why}");
        // The trail may be what is down: say so, but the refusal is the answer.
        match open_trail(settings).await {
            Ok(trail) => record(&trail, &ended(event, AuditOutcome::Refused, why)).await?,
            Err(error) => eprintln!("(not audited: {error:#})"),
        }
        return Ok(ExitCode::FAILURE);
    }
    if args.dry_run {
        println!("preflight passed (dry run: nothing changed)");
        return Ok(ExitCode::SUCCESS);
    }

    let trail = open_trail(settings).await?;
    let applied = async {
        deploy::apply_topics(settings, &preflight.topic_plan).await?;
        let migrations = deploy::apply_migrations(settings).await?;
        let store = DeploymentStore::connect(&settings.postgres, settings.audit.schema.as_deref()).await?;
        let record = DeploymentRecord {
            id: uuid::Uuid::new_v4().to_string(),
            environment: environment.to_string(),
            kind: "deploy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_hash: release.config_hash.clone(),
            config_file: release.config_file.clone(),
            topics: release.topics.clone(),
            migrations,
            actor: cli_actor(),
            deployed_at_ms: crate::clock::now_millis(),
            restores: None,
        };
        store.record(&record).await?;
        Ok::<_, deploy::DeployError>(record)
    }
    .await;
    let record_id = match applied {
        Ok(deployment) => {
            event.parameters.insert("deployment".into(), deployment.id.clone());
            event.parameters.insert("topic_changes".into(), preflight.topic_plan.changes.len().to_string());
            println!(
                "applied: {} topic change(s), migrations current; recorded deployment {}",
                preflight.topic_plan.changes.len(),
                deployment.id
            );
            deployment.id
        }
        Err(error) => {
            record(&trail, &ended(event, AuditOutcome::Failed, error.to_string())).await?;
            return Err(error).context("applying the release");
        }
    };
    restart(settings, environment, config_dir, &release.config_hash, &args.rollout, &trail, event, &record_id).await
}

pub async fn rollback(
    settings: &Settings,
    environment: Environment,
    config_dir: &Path,
    args: RollbackArgs,
) -> anyhow::Result<ExitCode> {
    let trail = open_trail(settings).await?;
    let store = DeploymentStore::connect(&settings.postgres, settings.audit.schema.as_deref()).await?;
    let history = store.history(&environment.to_string(), 50).await?;
    let mut event = cli_event("rollback", BTreeMap::from([("environment".to_owned(), environment.to_string())]));
    event.target = Some(environment.to_string());
    let refuse = |event: AuditEvent, why: String| async {
        eprintln!("rollback refused, nothing changed: {why}");
        record(&trail, &ended(event, AuditOutcome::Refused, why)).await.map(|()| ExitCode::FAILURE)
    };
    let Some(latest) = history.first() else {
        return refuse(event, format!("no deployment of {environment} is recorded")).await;
    };
    let target = match &args.to {
        Some(id) => history.iter().find(|d| &d.id == id).cloned(),
        None => history.get(1).cloned(),
    };
    let Some(target) = target else {
        let why = match &args.to {
            Some(id) => format!("no recorded deployment of {environment} has the id {id}"),
            None => format!("{} is the only recorded deployment of {environment}", latest.id),
        };
        return refuse(event, why).await;
    };
    event.parameters.insert("restores".into(), target.id.clone());
    let config_path = config_dir.join(format!("{environment}.toml"));
    let current =
        std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    if current != latest.config_file {
        let why = format!(
            "{} differs from the latest deployment {} (deploy it, or put it back, first)",
            config_path.display(),
            latest.id
        );
        return refuse(event, why).await;
    }
    let restored = validate_config(&target.config_file, environment, config_dir)
        .with_context(|| format!("the configuration of deployment {} no longer loads", target.id))?;
    let plan = deploy::topic_plan(settings, &target.topics).await?;
    println!(
        "rolling {environment} back from {} to {} (deployed {} by {})",
        latest.id,
        target.id,
        when(target.deployed_at_ms),
        target.actor
    );
    print!("{plan}");
    let added: Vec<&str> = latest
        .topics
        .iter()
        .filter(|topic| !target.topics.iter().any(|t| t.name == topic.name))
        .map(|topic| topic.name.as_str())
        .collect();
    if !added.is_empty() {
        println!("kept: {} (created since; deleting a topic deletes its data: do it by hand)", added.join(", "));
    }
    if !plan.refused().is_empty() {
        let reasons: Vec<String> = plan.refusals().into_iter().map(|refusal| format!("topic {refusal}")).collect();
        return refuse(event, format!("Kafka cannot undo: {}", reasons.join("; "))).await;
    }
    if args.dry_run {
        println!("dry run: nothing changed");
        return Ok(ExitCode::SUCCESS);
    }

    let config_hash = deploy::config_hash(&restored);
    event.parameters.insert("config_hash".into(), config_hash.clone());
    let applied = async {
        write_atomically(&config_path, &target.config_file)?;
        deploy::apply_topics(settings, &plan).await?;
        let record = DeploymentRecord {
            id: uuid::Uuid::new_v4().to_string(),
            environment: environment.to_string(),
            kind: "rollback".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_hash: config_hash.clone(),
            config_file: target.config_file.clone(),
            topics: target.topics.clone(),
            migrations: target.migrations.clone(),
            actor: cli_actor(),
            deployed_at_ms: crate::clock::now_millis(),
            restores: Some(target.id.clone()),
        };
        store.record(&record).await?;
        Ok::<_, deploy::DeployError>(record.id)
    }
    .await;
    let record_id = match applied {
        Ok(id) => id,
        Err(error) => {
            record(&trail, &ended(event, AuditOutcome::Failed, error.to_string())).await?;
            return Err(error).context("restoring the previous deployment");
        }
    };
    println!(
        "restored {} and {} topic change(s); recorded rollback {record_id}",
        config_path.display(),
        plan.changes.len()
    );
    // Migrations are never run backwards: a schema change stays (they only add).
    restart(&restored, environment, config_dir, &config_hash, &args.rollout, &trail, event, &record_id).await
}

/// Restarts the workers the way `args` (or the autoscaler's actuator) says, and audits the
/// whole change once it is over, made or failed.
#[allow(clippy::too_many_arguments, reason = "the two commands' shared tail; a struct would only rename them")]
async fn restart(
    settings: &Settings,
    environment: Environment,
    config_dir: &Path,
    config_hash: &str,
    args: &RolloutArgs,
    trail: &AuditTrail,
    mut event: AuditEvent,
    deployment: &str,
) -> anyhow::Result<ExitCode> {
    let mode = args.restart.unwrap_or(match settings.workers.autoscaler.actuator {
        ActuatorKind::Local => RestartMode::Local,
        ActuatorKind::Kubernetes => RestartMode::Kubernetes,
    });
    event.parameters.insert("restart".into(), format!("{mode:?}").to_lowercase());
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    let outcome = match mode {
        RestartMode::None => Ok("no restart asked for".to_owned()),
        RestartMode::Local => {
            let program = std::env::current_exe().context("finding the frontier binary")?;
            // The replacements read the same environment and configuration folder.
            let env = vec![
                ("FRONTIER_ENV".to_owned(), environment.to_string()),
                ("FRONTIER_CONFIG_DIR".to_owned(), absolute(config_dir).display().to_string()),
            ];
            rollout::restart_local(settings, program, env, &args.only, args.join_timeout, &shutdown).await.map(
                |replaced| {
                    for r in &replaced {
                        println!(
                            "restarted {:<16} {} -> {} (joined in {} ms, old drained in {} ms)",
                            r.worker, r.old, r.new, r.joined_ms, r.drained_ms
                        );
                    }
                    format!("{} instance(s) replaced one at a time", replaced.len())
                },
            )
        }
        RestartMode::Kubernetes => {
            let kubernetes = KubernetesDeployments::connect(&settings.workers.autoscaler.kubernetes).await?;
            rollout::restart_kubernetes(&kubernetes, &settings.worker_groups(), &args.only, config_hash).await.map(
                |workers| {
                    format!(
                        "Deployments restarted: {}",
                        if workers.is_empty() { "none".into() } else { workers.join(", ") }
                    )
                },
            )
        }
    };
    match outcome {
        Ok(summary) => {
            event.detail = Some(summary.clone());
            record(trail, &event).await?;
            println!("{summary}; deployment {deployment} done");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            record(trail, &ended(event, AuditOutcome::Failed, error.to_string())).await?;
            Err(error).context(format!("deployment {deployment} is recorded and applied, but the restart failed"))
        }
    }
}

fn print_preflight(preflight: &Preflight) {
    for check in &preflight.checks {
        match &check.result {
            Ok(detail) => println!("  {:<11} ok      {detail}", check.name),
            Err(reason) => println!("  {:<11} FAILED  {reason}", check.name),
        }
    }
    for line in preflight.topic_plan.to_string().lines() {
        println!("  topics      {line}");
    }
    for schema in &preflight.migrations {
        if schema.pending.is_empty() {
            println!("  migrations  {}: current", schema.schema);
        } else {
            println!("  migrations  {}: pending {}", schema.schema, schema.pending.join(", "));
        }
    }
}

fn parameters(environment: Environment, config_hash: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("environment".to_owned(), environment.to_string()),
        ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ("config_hash".to_owned(), config_hash.to_owned()),
    ])
}

/// The settings `text` gives as `config/<environment>.toml` (with today's `FRONTIER_*`
/// variables and defaults), checked in a scratch folder beside the real one.
fn validate_config(text: &str, environment: Environment, config_dir: &Path) -> anyhow::Result<Settings> {
    let scratch = config_dir.join(format!(".rollback-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let written = std::fs::write(scratch.join(format!("{environment}.toml")), text);
    let loaded = written.map_err(anyhow::Error::from).and_then(|()| Ok(Settings::load(environment, &scratch)?));
    let _ = std::fs::remove_dir_all(&scratch);
    loaded
}

/// Replaces `path` with `text` in one rename, so a reader sees the old file or the new one.
fn write_atomically(path: &Path, text: &str) -> Result<(), deploy::DeployError> {
    let temporary = path.with_extension(format!("toml.{}", uuid::Uuid::new_v4().simple()));
    let file = |action, source| deploy::DeployError::File { action, path: path.to_owned(), source };
    std::fs::write(&temporary, text).map_err(|e| file("writing", e))?;
    std::fs::rename(&temporary, path).map_err(|e| file("replacing", e))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn when(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}
