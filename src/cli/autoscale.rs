//! `frontier autoscale ...`: the autoscaler's view of the consumer groups from the command line.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::autoscale::{GroupSample, partition_health};
use crate::bus::SchemaCatalog;
use crate::settings::Settings;
use crate::workers::autoscaler::{ActuatorKind, KubernetesDeployments, plan, status};

/// `frontier autoscale ...`
#[derive(Debug, Subcommand)]
pub enum AutoscaleAction {
    /// Per group in `[workers.autoscaler.groups]`: the instances the controller runs, the
    /// group's lag and members now, and the controller's latest decision and why.
    Status,
    /// What the policy would do now for every group in `[workers.autoscaler.groups]`, from
    /// two samples of its lag and rates; changes nothing.
    Plan {
        /// Time between the two samples the rates are measured over.
        #[arg(long, default_value = "5s", value_parser = crate::cli::duration_arg)]
        interval: Duration,
    },
}

pub async fn autoscale(settings: &Settings, action: AutoscaleAction) -> anyhow::Result<ExitCode> {
    let interval = match action {
        AutoscaleAction::Status => return print_status(settings).await,
        AutoscaleAction::Plan { interval } => interval,
    };
    if settings.workers.autoscaler.groups.is_empty() {
        println!("{NO_GROUPS}");
        return Ok(ExitCode::SUCCESS);
    }
    let (kafka, autoscaler, groups) =
        (settings.kafka.clone(), settings.workers.autoscaler.clone(), settings.worker_groups());
    let planned = tokio::task::spawn_blocking(move || plan(&kafka, &autoscaler, &groups, interval))
        .await
        .context("the sampling thread")?
        .context("creating the lag sampler")?;
    let mut failed = false;
    for (group, outcome) in planned {
        let topics = group.topics.join(", ");
        println!("{} ({}) on {topics}", group.group_id, group.worker);
        match outcome {
            Ok(planned) => {
                let (seen, verdict) = (&planned.observation, &planned.verdict);
                let waited = planned.sample.lag_seconds().map_or("?".to_owned(), |s| format!("{s:.1} s"));
                let rate = |rate: Option<f64>| rate.map_or("?".to_owned(), |r| format!("{r:.0}"));
                println!(
                    "  {} member(s), {} partition(s), {} waiting (oldest {waited}), {} msg/s in, {} msg/s done, {}",
                    seen.instances,
                    seen.partitions,
                    seen.backlog,
                    rate(seen.arrival_rate),
                    rate(seen.commit_rate),
                    seen.health.as_str()
                );
                let (min, max) = verdict.bounds;
                let action = verdict.action.as_str();
                println!("  -> {action} to {} (bounds {min}..{max}): {}", verdict.desired, verdict.reason);
            }
            Err(error) => {
                failed = true;
                println!("  cannot be sampled: {error}");
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// What both commands say when nothing is listed.
const NO_GROUPS: &str =
    "no group is sized: list workers under [workers.autoscaler.groups.<worker>] (see the README's Autoscaling section)";

/// One line for where a group stands: members, backlog, lag in time, worst partition health.
fn standing(sample: &GroupSample) -> String {
    let waited = sample.lag_seconds().map_or("?".to_owned(), |s| format!("{s:.1} s"));
    let health = sample
        .partitions
        .iter()
        .map(|p| partition_health(&[p.offsets], p.start, sample.members))
        .max()
        .map_or("OK", |health| health.as_str());
    format!(
        "{} member(s) ({}), {} partition(s), {} waiting (oldest {waited}), now {health}",
        sample.members,
        sample.state,
        sample.partitions.len(),
        sample.backlog()
    )
}

async fn print_status(settings: &Settings) -> anyhow::Result<ExitCode> {
    if settings.workers.autoscaler.groups.is_empty() {
        println!("{NO_GROUPS}");
        return Ok(ExitCode::SUCCESS);
    }
    let catalog = SchemaCatalog::load_dir(&settings.paths.schemas)
        .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?;
    let (kafka, autoscaler, groups) =
        (settings.kafka.clone(), settings.workers.autoscaler.clone(), settings.worker_groups());
    let statuses = tokio::task::spawn_blocking(move || status(&kafka, &autoscaler, &groups, &catalog))
        .await
        .context("the sampling thread")?
        .context("reading the groups and the decisions topic")?;
    let cluster = match settings.workers.autoscaler.actuator {
        ActuatorKind::Local => None,
        ActuatorKind::Kubernetes => Some(
            KubernetesDeployments::connect(&settings.workers.autoscaler.kubernetes)
                .await
                .context("connecting to the cluster")?,
        ),
    };
    let now = crate::clock::now_millis();
    let mut failed = false;
    for group in statuses {
        println!("{} ({}) on {}", group.group.group_id, group.group.worker, group.group.topics.join(", "));
        if let Some(cluster) = &cluster {
            let deployment = format!("{}/{}", cluster.namespace(), cluster.deployment_of(group.group.worker));
            match cluster.replicas_of(group.group.worker).await {
                Ok(replicas) => println!(
                    "  Deployment {deployment}: {} replica(s) asked for, {} pod(s) exist",
                    replicas.desired, replicas.current
                ),
                Err(error) => {
                    failed = true;
                    println!("  Deployment {deployment}: {error}");
                }
            }
        } else {
            let ports: Vec<String> = group.instances.iter().map(|i| format!("{}:{}", i.pid, i.port)).collect();
            println!(
                "  {} instance(s) run by the controller (pid:metrics port {})",
                group.instances.len(),
                ports.join(" ")
            );
        }
        match &group.sample {
            Ok(sample) => println!("  {}", standing(sample)),
            Err(error) => {
                failed = true;
                println!("  cannot be sampled: {error}");
            }
        }
        match &group.last_decision {
            Some(decision) => {
                println!(
                    "  last decision {:.0} s ago: {} {} -> {} (bounds {}..{}): {}",
                    (now - decision.decided_at) as f64 / 1000.0,
                    decision.action.as_str(),
                    decision.current_instances,
                    decision.desired_instances,
                    decision.min_instances,
                    decision.max_instances,
                    decision.reason
                );
            }
            None => println!(
                "  no decision on {} yet (is `frontier run autoscaler` running?)",
                settings.workers.autoscaler.decisions_topic
            ),
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
