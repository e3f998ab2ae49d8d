//! `frontier autoscale ...`: the autoscaler's view of the consumer groups from the command line.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::settings::Settings;
use crate::workers::autoscaler::plan;

/// `frontier autoscale ...`
#[derive(Debug, Subcommand)]
pub enum AutoscaleAction {
    /// What the policy would do now for every group in `[workers.autoscaler.groups]`, from
    /// two samples of its lag and rates; changes nothing.
    Plan {
        /// Time between the two samples the rates are measured over.
        #[arg(long, default_value = "5s", value_parser = crate::cli::duration_arg)]
        interval: Duration,
    },
}

pub async fn autoscale(settings: &Settings, action: AutoscaleAction) -> anyhow::Result<ExitCode> {
    let AutoscaleAction::Plan { interval } = action;
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
                let action = serde_json::to_value(verdict.action)?;
                let action = action.as_str().unwrap_or("hold");
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
