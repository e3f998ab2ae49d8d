//! The HTTP gateway in front of the optimization layer (`frontier run gateway`): callers with
//! an API key post analysis requests and inference jobs; the gateway publishes them to Kafka
//! with its own reply topic as `reply_to` and answers with what the workers send back.
//!
//! ```text
//! POST /v1/analysis/{kind}          operator   publish, wait up to the deadline, answer
//! POST /v1/inference/{embed|classify} operator   the same for inference jobs
//!      ?async=true                             202 at once, with the result's URL
//! GET  /v1/results/{id}             viewer     the answer, or 202 while pending
//! GET  /v1/results/{id}/events      viewer     the answer as one server-sent event
//! GET  /health                      anyone     liveness for load balancers
//! GET|PUT|DELETE /v1/admin/batching/... operator batch settings while running (`admin`)
//! GET  /optimization/performance/dashboard[/...] the live dashboard (`dashboard`; its events: viewer)
//! ```
//!
//! Every other route needs a key (`auth`), every admitted call is charged to its tenant's and
//! key's quotas (`ratelimit`), and many instances run side by side (`replies`).

pub mod admin;
pub mod auth;
pub mod body;
pub mod dashboard;
pub mod error;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod ratelimit;
pub mod render;
pub mod replies;
pub mod routes;
pub mod settings;
pub mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use rdkafka::producer::Producer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::{ApiError, GatewayError};
pub use settings::{AuthSettings, GatewaySettings};

use self::admin::BatchingControl;
use self::dashboard::DashboardFeed;
use self::jwt::JwtVerifier;
use self::keys::{ApiKeyStore, KeyVerifier};
use self::ratelimit::RateLimiter;
use self::replies::PendingAnswers;
use self::routes::GatewayState;
use crate::audit::AuditTrail;
use crate::bus::SchemaCatalog;
use crate::bus::compacted;
use crate::settings::Settings;

/// How long a stopping gateway lets open connections finish (a waiting request is answered 503
/// at once; this bounds slow clients and event streams).
const DRAIN: Duration = Duration::from_secs(10);

/// How long a starting gateway waits to read the batch settings overridden so far.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(30);

/// Runs one gateway instance on `listener` until `shutdown`: creates its reply topic, starts
/// reading it, connects the key store and the rate limiter, then serves. On shutdown, waiting
/// requests are answered 503, connections drain, the producer flushes and the reply topic is
/// deleted (if configured).
///
/// It reads `[gateway]`, and beside it the shared services, `[audit]` and the inference
/// batcher's models and control topic (which its admin routes change).
pub async fn run(
    all: &Settings,
    catalog: Arc<SchemaCatalog>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    metrics::describe();
    let (shared, settings) = (&all.shared(), &all.gateway);
    // The certificate first: a bad one stops the start before any topic is created.
    let tls = settings.tls.as_ref().map(tls::server_config).transpose()?;
    let reply_topic = settings.reply_topic();
    replies::create_reply_topic(&shared.kafka, &reply_topic, settings.reply_topic_retention).await?;
    let capacity = usize::try_from(settings.max_pending).unwrap_or(usize::MAX);
    let pending = Arc::new(PendingAnswers::new(capacity, settings.result_retention));
    let tracker = TaskTracker::new();
    replies::start_reader(&shared.kafka, &reply_topic, catalog.clone(), pending.clone(), &tracker, shutdown.clone())
        .await?;
    tracker.spawn(sweep(pending.clone(), shutdown.clone()));

    let kafka = crate::bus::KafkaSettings { linger: settings.request_linger, ..shared.kafka.clone() };
    let producer = crate::bus::kafka::producer(&kafka)
        .map_err(|source| GatewayError::Kafka { context: "creating the producer".into(), source })?;
    let store = ApiKeyStore::connect(&shared.postgres, settings.auth.schema.as_deref()).await?;
    let verifier = KeyVerifier::new(store, settings.auth.key_cache_ttl, settings.auth.key_cache_capacity);
    let tokens = JwtVerifier::connect(&settings.auth.jwt).await?;
    let limiter = RateLimiter::connect(&shared.redis, settings.rate_limits.clone(), shutdown.clone()).await?;
    let audit = AuditTrail::connect(&shared.kafka, &shared.postgres, &all.audit, catalog.clone()).await?;
    let inference = &all.workers.inference;
    let batching = match &inference.overrides_topic {
        Some(topic) => Some(BatchingControl {
            topic: topic.clone(),
            overrides: compacted::follow(&shared.kafka, topic, &tracker, shutdown.clone(), FOLLOW_PATIENCE).await?,
            configured: inference.models.iter().map(|(name, model)| (name.clone(), model.batching.clone())).collect(),
        }),
        None => None,
    };

    let dashboard = DashboardFeed::start(&settings.dashboard, &tracker, shutdown.clone())
        .map_err(|source| GatewayError::Dashboard { source })?;

    let state = Arc::new(GatewayState {
        settings: settings.clone(),
        reply_topic: reply_topic.clone(),
        catalog,
        producer: producer.clone(),
        pending,
        verifier,
        tokens,
        limiter,
        shutdown: shutdown.clone(),
        audit,
        batching,
        dashboard,
    });
    let app = router(state, settings.max_body_bytes);
    let listen = listener.local_addr().map_err(|source| GatewayError::Listen { listen: settings.listen, source })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%listen, scheme, reply_topic, "gateway serving");

    let serve = serve(listener, app, tls, shutdown.clone());
    let drained = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::select! {
        served = serve => served.map_err(|source| GatewayError::Listen { listen, source })?,
        () = drained => tracing::warn!("connections still open after {DRAIN:?}; closing them"),
    }

    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.is_err() {
        tracing::warn!("the reply reader did not stop within 5 s");
    }
    if let Err(error) = producer.flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "requests still unsent at stop");
    }
    if settings.delete_reply_topic_on_stop {
        replies::delete_reply_topic(&shared.kafka, &reply_topic).await;
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`, then lets open
/// connections finish.
async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    };
    let handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stopper.graceful_shutdown(Some(DRAIN));
    });
    let acceptor =
        axum_server::tls_rustls::RustlsAcceptor::new(axum_server::tls_rustls::RustlsConfig::from_config(tls));
    axum_server::Server::from_listener(listener).acceptor(acceptor).handle(handle).serve(app.into_make_service()).await
}

/// The routes, the body limit and the per-route metrics.
fn router(state: Arc<GatewayState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/analysis/{kind}", post(routes::analysis))
        .route("/v1/inference/{task}", post(routes::inference))
        .route("/v1/results/{id}", get(routes::result))
        .route("/v1/results/{id}/events", get(routes::result_events))
        .route("/health", get(routes::health))
        .route("/v1/admin/batching", get(admin::batching))
        .route("/v1/admin/batching/{model}", put(admin::update_batching).delete(admin::reset_batching))
        .route(dashboard::PAGE, get(dashboard::page))
        .route(&format!("{}/assets/{{file}}", dashboard::PAGE), get(dashboard::assets))
        .route(&format!("{}/events", dashboard::PAGE), get(dashboard::events))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(measure))
        .with_state(state)
}

/// Counts and times every answer by its route's template (never the raw path: ids would make
/// a label per request).
async fn measure(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |path| path.as_str()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::request_answered(&route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// Forgets answers past their retention, once a second.
async fn sweep(pending: Arc<PendingAnswers>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = every.tick() => pending.sweep(Instant::now()),
        }
    }
}
