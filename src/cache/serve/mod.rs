//! `frontier run serve`: the request-serving path. Each process runs two consumer loops on one
//! shutdown token, tracked by one `TaskTracker`:
//!
//! - the **request loop** ([`ServeWorker`], group `<prefix>.serve`, shared by every instance):
//!   a request whose deadline passed is answered `timeout` uncomputed; kind and params are
//!   parsed (`error` answers with the error's code otherwise); the answer comes from the tiered
//!   cache or is computed over the price store, and its response (to `reply_to` or
//!   `frontier.responses`, keyed by request id) and request-completed event (to
//!   `frontier.metrics`, keyed by service) are both outputs, so the offset is stored only once
//!   both are in Kafka. PostgreSQL being down is a transient failure the bus retries;
//! - the **invalidation loop** ([`InvalidationWorker`], a group unique to the process, so every
//!   instance sees every order), versioning each order by its partition and offset.
//!
//! The recipe of every computed key is stored sealed in the cache ([`recipe`]) so the cache
//! warmer can recompute hot keys.

pub mod invalidations;
pub mod metric;
pub mod recipe;
pub mod result;
pub mod settings;
pub mod wire;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

pub use self::invalidations::InvalidationWorker;
pub use self::settings::ServeSettings;
pub use self::worker::{Answer, DEADLINE_EXCEEDED, ServeWorker, ServeWorkerError, computation, jittered};
use crate::bus::{BusError, CodecError, ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog, Worker};
use crate::cache::{CacheError, TieredCache};
use crate::config::Settings;
use crate::market::{DiscardQueryEvents, KafkaQueryEvents, PriceStore, QueryEventSink, StoreError, StoreOptions};

/// Why a serving process could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The schemas could not be loaded.
    #[error("loading schemas: {0}")]
    Schema(#[from] CodecError),
    /// The query event producer could not be created.
    #[error("creating the DB query event producer: {0}")]
    QueryEvents(#[from] crate::market::events::QueryEventSinkError),
    /// PostgreSQL could not be reached or migrated.
    #[error("opening the price store: {0}")]
    Store(#[from] StoreError),
    /// The cache could not start (settings, keys, disk folder).
    #[error("starting the cache: {0}")]
    Cache(#[from] CacheError),
    /// The worker could not be built.
    #[error(transparent)]
    Worker(#[from] ServeWorkerError),
    /// A consumer loop failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A consumer loop's task panicked or was aborted.
    #[error("the {0} loop did not finish: {1}")]
    Join(&'static str, String),
}

/// Connects the price store the way serving processes do: `application` names them in
/// PostgreSQL and in the query events, which go to `serve.query_events_topic` if set.
pub async fn connect_store(settings: &Settings, catalog: &SchemaCatalog, application: &str) -> Result<PriceStore, ServeError> {
    let serve = &settings.workers.serve;
    let sink: Arc<dyn QueryEventSink> = match &serve.query_events_topic {
        Some(topic) => Arc::new(KafkaQueryEvents::from_catalog(&settings.kafka, catalog, topic)?),
        None => Arc::new(DiscardQueryEvents),
    };
    let options = StoreOptions { schema: serve.store_schema.clone(), application: application.to_owned() };
    Ok(PriceStore::connect(&settings.postgres, options, sink).await?)
}

/// The two consumer loops of one serving process.
pub struct ServingLoops {
    requests: ConsumerLoop<ServeWorker>,
    invalidations: ConsumerLoop<InvalidationWorker>,
}

impl ServingLoops {
    /// Subscribes both loops: requests in the shared group, invalidations in this process's own.
    pub fn new(settings: &Settings, worker: Arc<ServeWorker>, catalog: Arc<SchemaCatalog>) -> Result<ServingLoops, ServeError> {
        let serve = &settings.workers.serve;
        let group = serve.group_id.clone().unwrap_or_else(|| settings.group_id("serve"));
        let invalidation_group = serve
            .invalidations_group_id
            .clone()
            .unwrap_or_else(|| settings.group_id(&format!("serve.invalidations.{}", worker.instance())));
        let invalidations = invalidation_loop(settings, worker.cache().clone(), catalog.clone(), invalidation_group)?;
        let request_options = LoopOptions::new(&settings.bus, group, vec![serve.input_topic.clone()]);
        Ok(ServingLoops { requests: ConsumerLoop::new(&settings.kafka, request_options, worker, catalog)?, invalidations })
    }

    /// Runs both loops until `shutdown` is cancelled (both drain and commit) or one fails (then
    /// the other is stopped too). Returns the request loop's report.
    pub async fn run(self, shutdown: CancellationToken) -> Result<LoopReport, ServeError> {
        run_beside_invalidations(self.requests, self.invalidations, shutdown).await
    }
}

/// The loop applying `serve.invalidations_topic` to `cache`, in consumer group `group` (which
/// must be unique to the process). Every process that writes to the cache runs one: Redis
/// refuses a write computed under a watermark older than its tags' invalidations.
pub fn invalidation_loop(
    settings: &Settings,
    cache: TieredCache,
    catalog: Arc<SchemaCatalog>,
    group: String,
) -> Result<ConsumerLoop<InvalidationWorker>, ServeError> {
    let schema = catalog.by_file("cache_invalidation.avsc")?.name.clone();
    let worker = Arc::new(InvalidationWorker::new(cache, schema));
    let options = LoopOptions::new(&settings.bus, group, vec![settings.workers.serve.invalidations_topic.clone()]);
    Ok(ConsumerLoop::new(&settings.kafka, options, worker, catalog)?)
}

/// Runs `main` and `invalidations` on one shutdown token in one `TaskTracker`, until `shutdown`
/// is cancelled (both drain) or one fails (the other is stopped too). Returns `main`'s report.
pub async fn run_beside_invalidations<W: Worker>(
    main: ConsumerLoop<W>,
    invalidations: ConsumerLoop<InvalidationWorker>,
    shutdown: CancellationToken,
) -> Result<LoopReport, ServeError> {
    // A failing loop cancels this child token, stopping its sibling, not the caller's token.
    let both = shutdown.child_token();
    let tracker = TaskTracker::new();
    let main = tracker.spawn(stop_sibling_on_error(main.run(both.clone()), both.clone()));
    let invalidations = tracker.spawn(stop_sibling_on_error(invalidations.run(both.clone()), both.clone()));
    tracker.close();
    tracker.wait().await;
    let main = main.await.map_err(|e| ServeError::Join("main", e.to_string()))?;
    let invalidations = invalidations.await.map_err(|e| ServeError::Join("invalidation", e.to_string()))?;
    invalidations?;
    Ok(main?)
}

async fn stop_sibling_on_error(
    run: impl Future<Output = Result<LoopReport, BusError>>,
    both: CancellationToken,
) -> Result<LoopReport, BusError> {
    let result = run.await;
    if let Err(error) = &result {
        error!(%error, "a consumer loop failed; stopping the other");
        both.cancel();
    }
    result
}

/// `frontier run serve`: connects the price store and the cache, then runs both loops until
/// `shutdown`.
pub async fn run(settings: &Settings, catalog: Arc<SchemaCatalog>, shutdown: CancellationToken) -> Result<LoopReport, ServeError> {
    let store = connect_store(settings, &catalog, "frontier serve").await?;
    let cache = TieredCache::connect(&settings.cache, Some(&settings.redis.url)).await?;
    let worker = Arc::new(ServeWorker::new(&settings.workers.serve, cache, store, &catalog)?);
    ServingLoops::new(settings, worker, catalog)?.run(shutdown).await
}
