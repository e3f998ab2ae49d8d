//! `frontier model-serve`: this process as one instance of the embedding model, behind the
//! OpenAI-compatible API of [`crate::inference::serve`], until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::inference::model::{DEFAULT_MODEL_DIR, EmbeddingModel};
use crate::inference::serve::{ServeState, serve};
use crate::{shutdown, telemetry};

/// `frontier model-serve` options.
#[derive(Debug, Args)]
pub struct ModelServeArgs {
    /// Address of the embeddings API.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Folder of the model files (`ops/models` fetches them).
    #[arg(long, default_value = DEFAULT_MODEL_DIR)]
    pub model_dir: PathBuf,
    /// The name requests give in `model` (matched without regard to case).
    #[arg(long, default_value = "all-MiniLM-L6-v2")]
    pub model_name: String,
    /// Other names requests may give, listed by `/v1/models`; repeat for several.
    #[arg(long = "alias", default_values = ["sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"])]
    pub aliases: Vec<String>,
    /// How this process names itself in `/health` and logs; `model-serve@<listen>` by default.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Address of `/metrics`; unset turns it off (the configured `metrics.listen` belongs to
    /// `frontier run`, and several instances on one machine each need a port).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// How long requests in progress may take to finish after SIGTERM.
    #[arg(long, default_value = "30s", value_parser = crate::cli::duration_arg)]
    pub shutdown_timeout: Duration,
}

pub async fn model_serve(args: ModelServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(listen) = args.metrics_listen {
        telemetry::serve_metrics(listen).with_context(|| format!("serving /metrics on {listen}"))?;
    }
    // Listen before loading, so a taken port fails at once and `/health` says "loading".
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {} for the embeddings API", args.listen))?;
    let instance_id = args.instance_id.clone().unwrap_or_else(|| format!("model-serve@{}", args.listen));
    let state = ServeState::loading(args.model_name.clone(), instance_id).with_aliases(args.aliases.clone());
    let token = CancellationToken::new();
    shutdown::cancel_on_signal(token.clone());
    let server = tokio::spawn(serve(listener, state.clone(), token.clone()));

    let model_dir = args.model_dir.clone();
    let loading = tokio::task::spawn_blocking(move || EmbeddingModel::load(&model_dir));
    let loaded = tokio::select! {
        () = token.cancelled() => None,
        loaded = loading => Some(loaded),
    };
    if let Some(loaded) = loaded {
        match loaded.context("loading the model ended abnormally")? {
            Ok(model) => {
                state.set_model(Arc::new(model));
                tracing::info!(model = %args.model_name, dir = %args.model_dir.display(), "model loaded: ready");
            }
            Err(error) => {
                token.cancel();
                return Err(error).with_context(|| format!("loading the model from {}", args.model_dir.display()));
            }
        }
    }

    let mut server = server;
    tokio::select! {
        () = token.cancelled() => {}
        // Serving can only end by itself on an accept error; report it rather than wait.
        finished = &mut server => {
            finished.context("the server task ended abnormally")??;
            return Ok(ExitCode::FAILURE);
        }
    }
    match tokio::time::timeout(args.shutdown_timeout, server).await {
        Ok(finished) => finished.context("the server task ended abnormally")??,
        Err(_) => {
            tracing::warn!(timeout = ?args.shutdown_timeout, "requests still in progress at the deadline: leaving")
        }
    }
    tracing::info!("model server stopped");
    Ok(ExitCode::SUCCESS)
}
