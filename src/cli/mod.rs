//! The `frontier` command line.

mod alerts;
mod assets;
mod audit;
mod autoscale;
mod bench;
pub mod chaos;
mod deploy;
mod keys;
mod model_serve;
mod publish;
mod queries;
mod request;
mod run;
mod seed;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::bus::SchemaCatalog;
use crate::config::Environment;
use crate::settings::Settings;
use crate::{health, telemetry, topics};

/// Frontier Optimizer: the optimization layer of the Frontier platform, on Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "frontier", version, about)]
pub struct Cli {
    /// Which `config/<environment>.toml` to load (development, staging, production).
    #[arg(long, short = 'e', env = "FRONTIER_ENV", default_value = "development", global = true)]
    pub environment: Environment,
    /// Folder of the environment files.
    #[arg(long, env = "FRONTIER_CONFIG_DIR", default_value = "config", global = true)]
    pub config_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a worker (a consumer group member) until SIGTERM or SIGINT.
    Run(run::RunArgs),
    /// Compare the topic files with the cluster, or make the cluster match them.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Publish JSON lines (from a file or stdin) to a topic, encoded with its schema.
    Publish(publish::PublishArgs),
    /// Print a topic's messages as JSON lines.
    Tail(tail::TailArgs),
    /// Publish one analysis request, wait for its answer and print it with the round trip.
    Request(request::RequestArgs),
    /// The audit trail of authenticated changes, newest first.
    Audit(audit::AuditArgs),
    /// Release config/<environment>.toml and topics/ to the running platform: preflight, apply
    /// topics and migrations, record the deployment (audited), restart workers one at a time.
    Deploy(deploy::DeployArgs),
    /// Restore the previous recorded deployment's configuration and topic configs.
    Rollback(deploy::RollbackArgs),
    /// The live dashboard's panels for other tools.
    Dashboard {
        #[command(subcommand)]
        action: DashboardAction,
    },
    /// Create, revoke and list the gateway's API keys.
    Keys {
        #[command(subcommand)]
        action: keys::KeysAction,
    },
    /// Show alerts from the alerts topic, readably for a person on call.
    Alerts(alerts::AlertsArgs),
    /// Check Kafka, the topics, Redis and PostgreSQL; exit non-zero naming what failed.
    HealthCheck(HealthArgs),
    /// Print the effective configuration (file plus FRONTIER_* overrides) as TOML.
    Config,
    /// Measure a part of the pipeline against a baseline in the same run.
    Bench {
        #[command(subcommand)]
        target: bench::BenchTarget,
    },
    /// Faults injected into a loaded pipeline on the three-broker cluster (`ops/stack up
    /// --brokers 3`), with every request accounted for; `frontier chaos report` prints the last.
    Chaos(chaos::ChaosArgs),
    /// Load deterministic synthetic daily closes into PostgreSQL and invalidate their cache tags.
    Seed(seed::SeedArgs),
    /// Serve the embedding model over an OpenAI-compatible API, as one instance for the batcher.
    ModelServe(model_serve::ModelServeArgs),
    /// Slow-query analysis and index advice.
    Queries {
        #[command(subcommand)]
        action: queries::QueriesAction,
    },
    /// The autoscaler's view of the consumer groups.
    Autoscale {
        #[command(subcommand)]
        action: autoscale::AutoscaleAction,
    },
    /// A static site made ready for the CDN (`build`: minified, content-hashed, precompressed,
    /// with a manifest) and published to the asset store (`publish`).
    Assets {
        #[command(subcommand)]
        action: assets::AssetsCommand,
    },
}

/// `frontier topics ...`
#[derive(Debug, Subcommand)]
pub enum TopicsAction {
    /// Print the difference between the topic files and the cluster.
    Plan,
    /// Create missing topics, grow partitions and align configs with the files.
    Apply,
}

/// `frontier health-check` options.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// How long each check may take.
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    pub timeout: Duration,
    /// Only the services (Kafka, topics, Redis, PostgreSQL), not the worker groups: for
    /// readiness probes, where one group's trouble must not take every pod out of service.
    #[arg(long)]
    pub services_only: bool,
    /// `text` (a line per check) or `json` (one object, for scripts and deploy gates).
    #[arg(long, value_enum, default_value_t = HealthFormat::Text)]
    pub format: HealthFormat,
}

/// How `frontier health-check` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HealthFormat {
    /// A line per check.
    Text,
    /// One JSON object: `healthy`, `services`, `workers`.
    Json,
}

/// A duration on the command line: `10` is ten seconds, as every Kafka tool takes it; `500ms`,
/// `2m`, `1h30m` say their unit.
pub fn duration_arg(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"));
    }
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration like 10, 10s, 500ms or 2m: {e}"))
}

/// The nearest-rank `p`th percentile (0 to 100) of `sorted` (ascending); NaN when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `frontier dashboard ...`.
#[derive(Debug, Subcommand)]
pub enum DashboardAction {
    /// Print the gateway dashboard's panels as a Grafana dashboard (the source of
    /// ops/grafana/dashboards/frontier.json).
    Grafana,
}

impl Cli {
    /// Loads the configuration and runs the command.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        // The asset build reads no configuration: it runs in a site's CI, without the platform's
        // config folder.
        if let Command::Assets { action: assets::AssetsCommand::Build(args) } = self.command {
            return assets::build(args).await;
        }
        let settings = Settings::load(self.environment, &self.config_dir)
            .with_context(|| format!("loading the {} configuration", self.environment))?;
        telemetry::init_logging(&settings.log);
        match self.command {
            Command::Run(args) => run::run(&settings, args).await,
            Command::Topics { action } => topics_command(&settings, action).await,
            Command::Publish(args) => publish::publish(&settings, args).await,
            Command::Tail(args) => tail::tail(&settings, args).await,
            Command::Request(args) => request::request(&settings, args).await,
            Command::Keys { action } => keys::keys(&settings, action).await,
            Command::Audit(args) => audit::audit(&settings, args).await,
            Command::Deploy(args) => deploy::deploy(&settings, self.environment, &self.config_dir, args).await,
            Command::Rollback(args) => deploy::rollback(&settings, self.environment, &self.config_dir, args).await,
            Command::Dashboard { action: DashboardAction::Grafana } => {
                print!("{}", crate::gateway::dashboard::grafana::dashboard_json());
                Ok(ExitCode::SUCCESS)
            }
            Command::Alerts(args) => alerts::alerts(&settings, args).await,
            Command::HealthCheck(args) => health_check(&settings, args).await,
            Command::Config => {
                print!("{}", toml::to_string_pretty(&settings.redacted()).context("rendering the configuration")?);
                Ok(ExitCode::SUCCESS)
            }
            Command::Bench { target } => bench::bench(&settings, target).await,
            Command::Chaos(args) => chaos::chaos(&settings, args).await,
            Command::Seed(args) => seed::seed(&settings, args).await,
            Command::ModelServe(args) => model_serve::model_serve(args).await,
            Command::Queries { action } => queries::queries(&settings, action).await,
            Command::Autoscale { action } => autoscale::autoscale(&settings, action).await,
            Command::Assets { action } => assets::assets(&settings, action).await,
        }
    }
}

async fn topics_command(settings: &Settings, action: TopicsAction) -> anyhow::Result<ExitCode> {
    let specs = topics::load_dir(&settings.paths.topics, &settings.topics)?;
    let admin = crate::bus::kafka::admin(&settings.kafka)?;
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let timeout = settings.kafka.request_timeout;
    let cluster = topics::describe(&admin, &names, timeout).await.with_context(|| {
        format!("reading topics from {} (is Kafka up? `ops/stack up`)", settings.kafka.bootstrap_servers)
    })?;
    let plan = topics::plan(&specs, &cluster);
    print!("{plan}");
    match action {
        TopicsAction::Plan => Ok(if plan.refused().is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        TopicsAction::Apply => {
            if !plan.is_empty() {
                topics::apply(&admin, &plan, timeout).await?;
                println!("applied");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn health_check(settings: &Settings, args: HealthArgs) -> anyhow::Result<ExitCode> {
    let checks = health::run_checks(settings, args.timeout).await;
    // Worker groups are read from Kafka: without it there is nothing to read them from.
    let kafka_up = checks.iter().any(|check| check.name == "kafka" && check.result.is_ok());
    let workers = if kafka_up && !args.services_only {
        let catalog = SchemaCatalog::load_dir(&settings.paths.schemas)?;
        health::workers::check_workers(settings, &catalog, args.timeout).await
    } else {
        Vec::new()
    };
    let healthy = checks.iter().all(|check| check.result.is_ok()) && workers.iter().all(|w| w.result.is_ok());
    match args.format {
        HealthFormat::Json => {
            let report = serde_json::json!({ "healthy": healthy, "services": checks, "workers": workers });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        HealthFormat::Text => {
            for check in &checks {
                println!("{check}");
            }
            for worker in &workers {
                let (state, detail) = match &worker.result {
                    Ok(detail) => ("ok    ", detail),
                    Err(reason) => ("FAILED", reason),
                };
                println!("worker {:<17} {state}  {} ({})", worker.worker, detail, worker.group);
            }
        }
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::duration_arg;

    #[test]
    fn a_bare_number_on_the_command_line_is_seconds() {
        assert_eq!(duration_arg("10"), Ok(Duration::from_secs(10)));
        assert_eq!(duration_arg("0.5"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn a_duration_with_a_unit_is_taken_as_written() {
        assert_eq!(duration_arg("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration_arg("2m"), Ok(Duration::from_secs(120)));
        assert!(duration_arg("-1").is_err());
        assert!(duration_arg("soon").unwrap_err().contains("10s"));
    }
}
