//! The CDN purger (`frontier run cdn-purger`): purges what each `AssetChange` made stale at
//! every configured CDN and edge, re-warms it and checks the edge serves the new build.
//!
//! A deploy's change names its manifest and the one it replaced; the purge set is their
//! difference ([`crate::cdn::purge_set`]): the stable files that changed and the surrogate keys
//! only they carry. Hashed files are never purged. Results go to `frontier.cdn.purges`, one
//! per change, target and method; an edge still serving old content raises an alert.

mod edge;
pub mod metric;
mod plan;
mod settings;
mod worker;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use settings::{CdnPurgerSettings, TargetSettings};
pub use worker::{ALERT, CdnPurger};

use super::{Shared, WorkerConfig};
use crate::bus::{BusError, ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog};
use crate::cdn::provider::Provider;
use crate::cdn::purge::Target;
use crate::cdn::{AssetStore, StoreError};

/// Why the purger could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CdnPurgerError {
    /// A target's settings do not work (a provider's credentials missing, a bad URL).
    #[error("workers.cdn_purger.targets `{target}`: {reason}")]
    Target {
        /// The target's name.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The asset store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis, where purged batches are remembered, could not be reached.
    #[error("redis at {url}: {source} (start it with `ops/stack up`)")]
    Redis {
        /// Where.
        url: String,
        /// What failed.
        #[source]
        source: redis::RedisError,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The consumer loop failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// The purge targets of `settings`, each with its adapter; an adapter that cannot work stops
/// the start with what to fix.
pub fn targets(settings: &CdnPurgerSettings, client: &reqwest::Client) -> Result<Vec<Target>, CdnPurgerError> {
    settings
        .targets
        .iter()
        .map(|target| {
            let provider = Provider::new(client.clone(), &target.api)
                .map_err(|reason| CdnPurgerError::Target { target: target.name.clone(), reason })?;
            Ok(Target::new(target.name.clone(), provider, target.soft))
        })
        .collect()
}

/// Runs the purger until `shutdown`.
pub async fn run(
    shared: &Shared,
    settings: &CdnPurgerSettings,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
) -> Result<LoopReport, CdnPurgerError> {
    metric::describe();
    let http = reqwest::Client::builder().build()?;
    let targets = targets(settings, &http)?;
    let store = AssetStore::open(&shared.assets.store)?;
    let url = shared.redis.url.clone();
    let redis_error = |source| CdnPurgerError::Redis { url: url.clone(), source };
    let client = shared.redis.client().map_err(redis_error)?;
    let redis = redis::aio::ConnectionManager::new(client).await.map_err(redis_error)?;
    let purger = CdnPurger::new(
        settings.clone(),
        shared.assets.clone(),
        store,
        targets,
        redis,
        http,
        catalog.clone(),
        shutdown.clone(),
    );
    let options = LoopOptions::new(&shared.bus, shared.group_id(settings), settings.input_topics());
    Ok(ConsumerLoop::new(&shared.kafka, options, Arc::new(purger), catalog)?.run(shutdown).await?)
}
