//! `InvalidationWorker`: applies every order of the invalidation topic to this instance's
//! cache. It runs in a consumer group of its own per process, so every instance sees every
//! order; the order's position (partition, offset) is its version, which makes replays and late
//! deliveries harmless.

use tracing::{debug, warn};

use super::metric;
use crate::bus::{HandlerError, Inbound, Outbound, Worker};
use crate::cache::watermark::InvalidationVersion;
use crate::cache::{CacheKey, TieredCache};
use crate::market::seed::CacheInvalidation;

/// Applies invalidation orders to one cache.
pub struct InvalidationWorker {
    cache: TieredCache,
    schema: String,
}

impl InvalidationWorker {
    /// A worker invalidating `cache`; `schema` is the full name of the invalidation record.
    pub fn new(cache: TieredCache, schema: String) -> InvalidationWorker {
        InvalidationWorker { cache, schema }
    }
}

impl Worker for InvalidationWorker {
    fn name(&self) -> &'static str {
        "serve-invalidations"
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        if message.schema.reader.name != self.schema {
            return Err(HandlerError::rejected(
                "unexpected_schema",
                format!("{} is not a {}", message.schema.reader.name, self.schema),
            ));
        }
        let order: CacheInvalidation = message.deserialize()?;
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
        ::metrics::counter!(metric::INVALIDATIONS_APPLIED).increment(1);
        Ok(Vec::new())
    }
}
