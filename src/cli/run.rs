//! `frontier run <worker>`: one consumer-group member, until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::bus::{ConsumerLoop, LoopOptions, SchemaCatalog};
use crate::config::Settings;
use crate::passthrough::Passthrough;
use crate::inference::worker::{self as inference, InferenceWorker};
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
    /// Inference jobs batched onto model instances by priority and deadline; results to the
    /// results topic. Batch settings change while running via `PUT /admin/batching`.
    InferenceBatcher,
    /// Analysis requests answered from the tiered cache (memory, Redis, disk) or computed over
    /// the price store; responses to `reply_to`, events to the metrics topic. Also applies every
    /// cache invalidation (a consumer group of its own per process).
    Serve,
    /// Hot cache keys (from the serving workers' events) recomputed before they expire, within
    /// a concurrency limit and a budget of refreshes per second.
    CacheWarmer,
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
        WorkerKind::Serve => crate::cache::serve::run(settings, catalog, token).await?,
        WorkerKind::CacheWarmer => crate::cache::warmer::run(settings, catalog, token).await?,
        WorkerKind::InferenceBatcher => {
            let config = &settings.workers.inference;
            let group = config.group_id.clone().unwrap_or_else(|| settings.group_id("inference-batcher"));
            let local_model = {
                let config = config.clone();
                tokio::task::spawn_blocking(move || inference::load_local_model(&config))
                    .await
                    .context("loading the model")??
            };
            // The batcher outlives the consumer loop's shutdown: jobs in flight when SIGTERM
            // arrives still get their results (within bus.shutdown_timeout) before it stops.
            let batcher_token = CancellationToken::new();
            let batcher = inference::start_batcher(config, local_model, batcher_token.clone())?;
            if let Some(listen) = config.admin_listen {
                let (batcher, token) = (batcher.clone(), batcher_token.clone());
                tokio::spawn(async move {
                    if let Err(error) = inference::admin::serve(listen, batcher, token).await {
                        tracing::error!(%listen, %error, "the batch settings admin endpoint stopped");
                    }
                });
            }
            let worker = Arc::new(InferenceWorker::new(config, &catalog, batcher)?);
            let options = LoopOptions::new(&settings.bus, group, vec![config.input_topic.clone()]);
            let report = ConsumerLoop::new(&settings.kafka, options, worker, catalog)?.run(token).await;
            batcher_token.cancel();
            report?
        }
    };
    tracing::info!(?report, "worker stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
