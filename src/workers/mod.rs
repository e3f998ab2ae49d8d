//! The consumer groups, side by side. Each is a type implementing [`crate::bus::Worker`], with
//! a settings type of its own (its table under `[workers]`, implementing [`WorkerConfig`]) and
//! one entry point of the same shape:
//!
//! ```text
//! pub async fn run(shared: &Shared, settings: &OwnSettings, catalog: Arc<SchemaCatalog>,
//!                  shutdown: CancellationToken) -> Result<LoopReport, OwnError>
//! ```
//!
//! `frontier run <name>` dispatches on one table (`cli::run`). Workers build on the libraries
//! below them (bus, cache, market, inference, sla) and never on each other.

pub mod autoscaler;
pub mod cache_warmer;
pub mod cdn_purger;
pub mod inference_batcher;
pub mod passthrough;
pub mod query_analyzer;
pub mod serve;
pub mod sla_monitor;

pub use autoscaler::AutoscalerSettings;
pub use cache_warmer::CacheWarmerSettings;
pub use cdn_purger::CdnPurgerSettings;
pub use inference_batcher::InferenceBatcherSettings;
pub use passthrough::PassthroughSettings;
pub use query_analyzer::QueryAnalyzerSettings;
pub use serve::ServeSettings;
pub use sla_monitor::SlaMonitorSettings;

use crate::bus::{BusSettings, KafkaSettings};
use crate::cache::CacheSettings;
use crate::cdn::AssetsSettings;
use crate::config::{InvalidSetting, PostgresSettings, RedisSettings};
use crate::market::PriceStoreSettings;

/// A worker's own settings: its table under `[workers]`.
pub trait WorkerConfig {
    /// The table's name below `[workers]` (`serve`, `sla`, ...).
    const SECTION: &'static str;
    /// The worker's name in `frontier run`, metric labels and its default consumer group
    /// `<group_prefix>.<NAME>`.
    const NAME: &'static str;

    /// The consumer group id set in the table, if any.
    fn group_id(&self) -> Option<&str>;

    /// The topics the worker's consumer group reads (what its lag is measured on).
    fn input_topics(&self) -> Vec<String>;

    /// Checks what serde cannot; keys are relative to the table.
    fn validate(&self) -> Result<(), InvalidSetting>;
}

/// The settings every worker shares: how to reach Kafka and the stores, the consumer loop, the
/// cache. Cloned once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// `[kafka]`.
    pub kafka: KafkaSettings,
    /// `[bus]`.
    pub bus: BusSettings,
    /// `[redis]`.
    pub redis: RedisSettings,
    /// `[postgres]`.
    pub postgres: PostgresSettings,
    /// `[prices]`.
    pub prices: PriceStoreSettings,
    /// `[cache]`.
    pub cache: CacheSettings,
    /// `[assets]`.
    pub assets: AssetsSettings,
}

impl Shared {
    /// The consumer group of a worker: its table's `group_id`, else `<group_prefix>.<NAME>`.
    pub fn group_id<S: WorkerConfig>(&self, settings: &S) -> String {
        settings.group_id().map_or_else(|| self.kafka.group_id(S::NAME), str::to_owned)
    }

    /// A worker's consumer group as others see it from outside: name, group id, topics.
    pub fn worker_group<S: WorkerConfig>(&self, settings: &S) -> WorkerGroup {
        WorkerGroup { worker: S::NAME, group_id: self.group_id(settings), topics: settings.input_topics() }
    }
}

/// A worker's consumer group, for tools that watch it (the autoscaler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerGroup {
    /// The worker's name (`serve`), as `frontier run` takes it.
    pub worker: &'static str,
    /// Its consumer group id.
    pub group_id: String,
    /// The topics it reads.
    pub topics: Vec<String>,
}
