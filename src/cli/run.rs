//! `frontier run <worker>`: one consumer-group member, until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::bus::{ConsumerLoop, LoopOptions, SchemaCatalog};
use crate::config::Settings;
use crate::passthrough::Passthrough;
use crate::sla::SlaMonitorWorker;
use crate::{shutdown, telemetry};

/// `frontier run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which worker to run.
    pub worker: WorkerKind,
}

/// The workers this build has.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WorkerKind {
    /// Re-produce one topic to another unchanged (measures the bus).
    Passthrough,
    /// SLIs, rules and SLO burn rates over request-completed events; alerts to the alerts topic.
    SlaMonitor,
}

pub async fn run(settings: &Settings, args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(listen) = settings.metrics.listen {
        telemetry::serve_metrics(listen).with_context(|| format!("serving /metrics on {listen}"))?;
    }
    let catalog = Arc::new(
        SchemaCatalog::load_dir(&settings.paths.schemas)
            .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?,
    );
    let token = CancellationToken::new();
    shutdown::cancel_on_signal(token.clone());

    let report = match args.worker {
        WorkerKind::Passthrough => {
            let config = &settings.workers.passthrough;
            let group = config.group_id.clone().unwrap_or_else(|| settings.group_id("passthrough"));
            let options = LoopOptions::new(&settings.bus, group, vec![config.input_topic.clone()]);
            let worker = Arc::new(Passthrough::new(&config.output_topic));
            ConsumerLoop::new(&settings.kafka, options, worker, catalog)?.run(token).await?
        }
        WorkerKind::SlaMonitor => {
            let config = &settings.workers.sla;
            let group = config.group_id.clone().unwrap_or_else(|| settings.group_id("sla-monitor"));
            let past = {
                let (kafka, config, catalog) = (settings.kafka.clone(), config.clone(), catalog.clone());
                tokio::task::spawn_blocking(move || SlaMonitorWorker::past_alerts(&kafka, &config, &catalog))
                    .await
                    .context("restoring alert state")??
            };
            let worker = Arc::new(SlaMonitorWorker::new(config, &catalog, past)?);
            let options = LoopOptions::new(&settings.bus, group, config.topics());
            ConsumerLoop::new(&settings.kafka, options, worker, catalog)?.run(token).await?
        }
    };
    tracing::info!(?report, "worker stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
