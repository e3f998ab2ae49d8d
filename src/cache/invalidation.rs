//! The invalidation loop: applies every order of `cache.invalidations_topic` to this process's
//! cache. Every process that writes to the cache runs one ([`InvalidationWorker`]) beside its
//! main loop ([`run_beside_invalidations`]), in a consumer group of its own, so every instance
//! sees every order and Redis accepts its writes; the order's position (partition, offset) is
//! its version, which makes replays and late deliveries harmless.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

use super::metric;
use crate::bus::{
    BusError, BusSettings, ConsumerLoop, HandlerError, Inbound, KafkaSettings, LoopOptions, LoopReport, Outbound,
    SchemaCatalog, Worker,
};
use crate::cache::watermark::InvalidationVersion;
use crate::cache::{CacheKey, TieredCache};
use crate::records::CacheInvalidation;

/// Applies invalidation orders to one cache.
pub struct InvalidationWorker {
    cache: TieredCache,
}

impl InvalidationWorker {
    /// A worker invalidating `cache`.
    pub fn new(cache: TieredCache) -> InvalidationWorker {
        InvalidationWorker { cache }
    }
}

impl Worker for InvalidationWorker {
    fn name(&self) -> &'static str {
        "cache-invalidations"
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let order: CacheInvalidation = message.record()?;
        let version = InvalidationVersion::new(message.partition, message.offset);
        if !order.tags.is_empty() {
            let outcome = self.cache.invalidate(&order.tags, version).await;
            debug!(id = %order.id, tags = ?order.tags, ?outcome, "tags invalidated");
        }
        if !order.keys.is_empty() {
            let mut keys = Vec::with_capacity(order.keys.len());
            for text in &order.keys {
                match CacheKey::parse(text) {
                    Some(key) => keys.push(key),
                    None => {
                        ::metrics::counter!(metric::INVALID_KEYS).increment(1);
                        warn!(id = %order.id, key = %text, "ignoring an invalidation key that is not a cache key");
                    }
                }
            }
            if !keys.is_empty() {
                let outcome = self.cache.remove(&keys).await;
                debug!(id = %order.id, keys = keys.len(), ?outcome, "keys invalidated");
            }
        }
        Ok(Vec::new())
    }
}

/// The loop applying `topic` to `cache`, in consumer group `group` (which must be unique to the
/// process).
pub fn invalidation_loop(
    kafka: &KafkaSettings,
    bus: &BusSettings,
    topic: &str,
    cache: TieredCache,
    catalog: Arc<SchemaCatalog>,
    group: String,
) -> Result<ConsumerLoop<InvalidationWorker>, BusError> {
    let options = LoopOptions::new(bus, group, vec![topic.to_owned()]);
    ConsumerLoop::new(kafka, options, Arc::new(InvalidationWorker::new(cache)), catalog)
}

/// Why two loops run side by side did not both finish cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SideBySideError {
    /// One of the loops failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A loop's task panicked or was aborted.
    #[error("the {0} loop did not finish: {1}")]
    Join(&'static str, String),
}

/// Runs `main` and `invalidations` on one shutdown token in one `TaskTracker`, until `shutdown`
/// is cancelled (both drain) or one fails (the other is stopped too). Returns `main`'s report.
pub async fn run_beside_invalidations<W: Worker>(
    main: ConsumerLoop<W>,
    invalidations: ConsumerLoop<InvalidationWorker>,
    shutdown: CancellationToken,
) -> Result<LoopReport, SideBySideError> {
    // A failing loop cancels this child token, stopping its sibling, not the caller's token.
    let both = shutdown.child_token();
    let tracker = TaskTracker::new();
    let main = tracker.spawn(stop_sibling_on_error(main.run(both.clone()), both.clone()));
    let invalidations = tracker.spawn(stop_sibling_on_error(invalidations.run(both.clone()), both.clone()));
    tracker.close();
    tracker.wait().await;
    let main = main.await.map_err(|e| SideBySideError::Join("main", e.to_string()))?;
    let invalidations = invalidations.await.map_err(|e| SideBySideError::Join("invalidation", e.to_string()))?;
    invalidations?;
    Ok(main?)
}

async fn stop_sibling_on_error(
    run: impl Future<Output = Result<LoopReport, BusError>>,
    both: CancellationToken,
) -> Result<LoopReport, BusError> {
    // Armed until the loop returns: a loop that panics stops its sibling too, so the process
    // ends with the join error instead of running on half deaf.
    let stop_on_panic = both.clone().drop_guard();
    let result = run.await;
    stop_on_panic.disarm();
    if let Err(error) = &result {
        error!(%error, "a consumer loop failed; stopping the other");
        both.cancel();
    }
    result
}
