//! `frontier run <worker>`: one consumer-group member, until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::bus::SchemaCatalog;
use crate::cdn::origin::{self, Origin};
use crate::cdn::{AssetStore, AssetsSettings};
use crate::settings::Settings;
use crate::workers::{
    autoscaler, cache_warmer, cdn_purger, inference_batcher, passthrough, query_analyzer, serve, sla_monitor,
};
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
    /// results topic. Batch settings change while running through the gateway
    /// (`PUT /v1/admin/batching/{model}`), which every batcher follows.
    InferenceBatcher,
    /// Analysis requests answered from the tiered cache (memory, Redis, disk) or computed over
    /// the price store; responses to `reply_to`, events to the metrics topic. Also applies every
    /// cache invalidation (a consumer group of its own per process).
    Serve,
    /// Hot cache keys (from the serving workers' events) recomputed before they expire, within
    /// a concurrency limit and a budget of refreshes per second.
    CacheWarmer,
    /// Slow, heavy and regressed statements from the DB query events, per window, and index
    /// advice for the database proven with HypoPG.
    QueryAnalyzer,
    /// Sizes the other workers' consumer groups from their lag, rates, CPU and memory, and
    /// starts and stops their instances (local processes or Kubernetes Deployments); decisions to
    /// the decisions topic.
    Autoscaler,
    /// Asset changes purged at every configured CDN and edge (Varnish, Fastly, Cloudflare,
    /// Akamai), re-warmed and verified through the edge; results to the purges topic.
    CdnPurger,
    /// The asset origin behind the edge (no consumer group): serves the live build from the
    /// asset store with precompressed variants, ETags, lifetimes and surrogate keys.
    AssetOrigin,
    /// The HTTP gateway (no consumer group): API-key callers' analysis requests and inference
    /// jobs published to Kafka and answered from the gateway's own reply topic, within quotas.
    Gateway,
}

pub async fn run(settings: &Settings, args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(listen) = settings.metrics.listen {
        telemetry::serve_metrics(listen).with_context(|| format!("serving /metrics on {listen}"))?;
        if let Some(name) = args.worker.to_possible_value() {
            telemetry::announce_worker(name.get_name());
        }
    }
    let catalog = Arc::new(
        SchemaCatalog::load_dir(&settings.paths.schemas)
            .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?
            .with_limits(settings.bus.decode_limits()),
    );
    let token = CancellationToken::new();
    shutdown::cancel_on_signal(token.clone());

    // The one table of workers: each takes the shared settings, its own table, the schemas and
    // the shutdown token.
    let (shared, workers) = (settings.shared(), &settings.workers);
    let report = match args.worker {
        WorkerKind::Passthrough => passthrough::run(&shared, &workers.passthrough, catalog, token).await?,
        WorkerKind::SlaMonitor => sla_monitor::run(&shared, &workers.sla, catalog, token).await?,
        WorkerKind::InferenceBatcher => inference_batcher::run(&shared, &workers.inference, catalog, token).await?,
        WorkerKind::Serve => serve::run(&shared, &workers.serve, catalog, token).await?,
        WorkerKind::CacheWarmer => {
            // Nobody waits for anything a warmer does: on a machine it shares with serving
            // instances, all of it (consuming, reads, sealing, Redis writes, not only the
            // analyses) takes the cores after live requests.
            let nice = workers.cache_warmer.refresh_nice;
            if let Err(error) = crate::process::set_process_nice(nice) {
                // Lowering a nice value the process was started with needs a privilege.
                tracing::warn!(nice, %error, "the warmer keeps the nice value it was started with");
            }
            cache_warmer::run(&shared, &workers.cache_warmer, catalog, token).await?
        }
        WorkerKind::QueryAnalyzer => query_analyzer::run(&shared, &workers.query_analyzer, catalog, token).await?,
        WorkerKind::CdnPurger => cdn_purger::run(&shared, &workers.cdn_purger, catalog, token).await?,
        WorkerKind::AssetOrigin => return asset_origin(&settings.assets, token).await,
        WorkerKind::Gateway => return gateway(settings, catalog, token).await,
        WorkerKind::Autoscaler => {
            autoscaler::run(&shared, &workers.autoscaler, settings.worker_groups(), catalog, token).await?
        }
    };
    tracing::info!(?report, "worker stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// The gateway is an HTTP server, not a consumer-group member: it has no loop report.
async fn gateway(
    settings: &Settings,
    catalog: Arc<SchemaCatalog>,
    token: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let listen = settings.gateway.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} for the gateway (gateway.listen)"))?;
    crate::gateway::run(settings, catalog, listener, token).await?;
    Ok(ExitCode::SUCCESS)
}

/// The origin is an HTTP server, not a consumer-group member: it has no loop report.
async fn asset_origin(settings: &AssetsSettings, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let store = AssetStore::open(&settings.store)?;
    let listen = settings.origin.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} for the asset origin (assets.origin.listen)"))?;
    origin::serve(listener, Origin::new(store, settings), shutdown).await?;
    tracing::info!("asset origin stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
