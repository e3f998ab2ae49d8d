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
//! - the **invalidation loop** ([`crate::cache::invalidation`], a group unique to the process,
//!   so every instance sees every order).
//!
//! Before its first poll, a process loads the hottest entries (the cache warmer's hot set)
//! from Redis into its memory layer and opens its price store connections, so a restarted or
//! added instance starts warm. While live requests fill its analysis pool, it says so in Redis
//! ([`BUSY_MARK_TTL`]), and the cache warmers hold their refreshes back.
//!
//! The recipe of every computed key is stored sealed in the cache ([`crate::cache::recipe`]) so
//! the cache warmer can recompute hot keys.

pub mod metric;
mod settings;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use self::settings::ServeSettings;
pub use self::worker::{Answer, DEADLINE_EXCEEDED, SERVICE, ServeWorker, jittered};
use super::{Shared, WorkerConfig};
use crate::bus::kafka::Rebalancing;
use crate::bus::{BusError, ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog};
use crate::cache::invalidation::{InvalidationWorker, SideBySideError, invalidation_loop, run_beside_invalidations};
use crate::cache::{CacheError, TieredCache};
use crate::market::pool::AnalysisPool;
use crate::market::{ConnectStoreError, PriceStore, connect_store};

/// Why a serving process could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The price store could not be opened.
    #[error(transparent)]
    Store(#[from] ConnectStoreError),
    /// The cache could not start (settings, keys, disk folder).
    #[error("starting the cache: {0}")]
    Cache(#[from] CacheError),
    /// A consumer loop could not start.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A consumer loop failed or did not finish.
    #[error(transparent)]
    Loops(#[from] SideBySideError),
    /// A schema the worker reads or writes is missing.
    #[error("the serving worker's schemas: {0}")]
    Schema(#[from] crate::bus::CodecError),
}

/// The two consumer loops of one serving process.
pub struct ServingLoops {
    requests: ConsumerLoop<ServeWorker>,
    invalidations: ConsumerLoop<InvalidationWorker>,
    cache: TieredCache,
    pool: AnalysisPool,
    store: PriceStore,
    instance: String,
    warm_start_keys: usize,
    warm_start_timeout: Duration,
}

impl ServingLoops {
    /// Subscribes both loops: requests in the shared group, invalidations in this process's own.
    pub fn new(
        shared: &Shared,
        settings: &ServeSettings,
        worker: Arc<ServeWorker>,
        catalog: Arc<SchemaCatalog>,
    ) -> Result<ServingLoops, ServeError> {
        let invalidation_group = settings
            .invalidations_group_id
            .clone()
            .unwrap_or_else(|| shared.kafka.group_id(&format!("serve.invalidations.{}", worker.instance())));
        let invalidations = invalidation_loop(
            &shared.kafka,
            &shared.bus,
            &shared.cache.invalidations_topic,
            worker.cache().clone(),
            catalog.clone(),
            invalidation_group,
        )?;
        // Eager: an instance joining or restarting stopped the moved partitions for 0.5-1.7 s
        // with cooperative rounds, and the group's partitions for 12-119 ms in one eager round
        // (`frontier bench serve --start-seconds 20`, 2026-12-06, README). A request in flight
        // on a revoked partition is answered twice at worst, which a cached answer makes cheap.
        let options = LoopOptions {
            rebalancing: Rebalancing::Eager,
            linger: Some(settings.answer_linger),
            ..LoopOptions::new(&shared.bus, shared.group_id(settings), settings.input_topics())
        };
        let (cache, pool, store) = (worker.cache().clone(), worker.pool().clone(), worker.store().clone());
        let instance = worker.instance().to_owned();
        Ok(ServingLoops {
            requests: ConsumerLoop::new(&shared.kafka, options, worker, catalog)?,
            invalidations,
            cache,
            pool,
            store,
            instance,
            warm_start_keys: settings.warm_start_keys,
            warm_start_timeout: settings.warm_start_timeout,
        })
    }

    /// Warms the memory layer from the hot set (see [`ServeSettings::warm_start_keys`]) and
    /// opens the price store's connections, then runs both loops until `shutdown` is cancelled
    /// (both drain and commit) or one fails (then the other is stopped too). Returns the request
    /// loop's report.
    pub async fn run(self, shutdown: CancellationToken) -> Result<LoopReport, ServeError> {
        // The loops have subscribed but not polled yet, so no partition is ours before this
        // ends: the group's other instances keep serving meanwhile.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {}
            _ = async {
                tokio::join!(
                    warm_start(&self.cache, self.warm_start_keys, self.warm_start_timeout),
                    open_connections(&self.store, self.warm_start_timeout),
                )
            } => {}
        }
        let signal_stop = shutdown.child_token();
        let cache = self.cache.clone();
        let signal = tokio::spawn(signal_busy(self.pool, self.cache, self.instance, signal_stop.clone()));
        let report = run_beside_invalidations(self.requests, self.invalidations, shutdown).await;
        signal_stop.cancel();
        if let Err(error) = signal.await {
            warn!(%error, "the busy signal task ended abnormally");
        }
        // The disk layer writes behind the answers: what is queued goes to disk before the
        // process stops, so a restart on the same folder starts with it.
        if tokio::time::timeout(DISK_FLUSH_DEADLINE, cache.flush_disk()).await.is_err() {
            warn!(deadline = ?DISK_FLUSH_DEADLINE, "the disk layer's queue was not written in time; stopping without it");
        }
        Ok(report?)
    }
}

/// How long a stopping instance waits for the disk layer's queue to be written.
const DISK_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// How often the instance looks whether live work filled its pool.
const BUSY_SAMPLE: Duration = Duration::from_millis(500);

/// How long a busy mark lives: a few samples, so one slow Redis write does not let the warmer
/// in, and warmers resume within two seconds of the instance calming down.
pub const BUSY_MARK_TTL: Duration = Duration::from_secs(2);

/// Every [`BUSY_SAMPLE`], marks the instance busy in Redis if live work filled its pool since
/// the last look, until `stop`.
async fn signal_busy(pool: AnalysisPool, cache: TieredCache, instance: String, stop: CancellationToken) {
    let mut samples = tokio::time::interval(BUSY_SAMPLE);
    samples.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = samples.tick() => {}
        }
        if pool.take_busy() {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                marked = cache.mark_busy(&instance, BUSY_MARK_TTL) => if marked {
                    ::metrics::counter!(metric::BUSY_MARKS).increment(1);
                },
            }
        }
    }
}

/// Loads the hottest entries from Redis into memory, within `timeout`; logs and counts how it
/// went. A failure is not an error: the instance then starts cold, as it would have anyway.
async fn warm_start(cache: &TieredCache, keys: usize, timeout: Duration) {
    if keys == 0 {
        return;
    }
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, cache.warm_memory(keys)).await {
        Ok(Some(warm)) => {
            ::metrics::counter!(metric::WARM_START_KEYS).increment(warm.loaded as u64);
            info!(listed = warm.listed, loaded = warm.loaded, took = ?started.elapsed(), "memory layer warmed from the hot set");
            if warm.loaded == 0 { "empty" } else { "warmed" }
        }
        Ok(None) => {
            info!("starting cold: Redis is not available for a warm start");
            "no_redis"
        }
        Err(_) => {
            warn!(?timeout, "warming the memory layer took too long; taking partitions with what was loaded");
            "timed_out"
        }
    };
    ::metrics::counter!(metric::WARM_STARTS, "outcome" => outcome).increment(1);
    ::metrics::histogram!(metric::WARM_START_SECONDS).record(started.elapsed().as_secs_f64());
}

/// Opens the price store's connections (see [`PriceStore::open_connections`]) within
/// `timeout`; logs how it went. Those not open by then open on demand, as without it.
async fn open_connections(store: &PriceStore, timeout: Duration) {
    let started = Instant::now();
    match tokio::time::timeout(timeout, store.open_connections()).await {
        Ok(held) => info!(held, took = ?started.elapsed(), "price store connections opened"),
        Err(_) => {
            warn!(?timeout, "opening the price store's connections took too long; taking partitions without them")
        }
    }
}

/// `frontier run serve`: connects the price store and the cache, then runs both loops until
/// `shutdown`.
pub async fn run(
    shared: &Shared,
    settings: &ServeSettings,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
) -> Result<LoopReport, ServeError> {
    let cache = TieredCache::connect_to(&shared.cache, Some(&shared.redis)).await?;
    let store =
        connect_store(&shared.postgres, &shared.prices, &shared.kafka, &catalog, "frontier serve", &cache).await?;
    let worker = Arc::new(ServeWorker::new(settings, &shared.cache, cache, store, &catalog)?);
    ServingLoops::new(shared, settings, worker, catalog)?.run(shutdown).await
}
