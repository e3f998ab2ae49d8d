//! The whole configuration of a `frontier` process: every section in one place, above the
//! parts that own them. The bus owns `[kafka]` and `[bus]`, the cache `[cache]`, the price store
//! `[prices]`, each worker its table under `[workers]`; [`crate::config`] loads and checks them
//! and owns the sections nobody else does.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::audit::AuditSettings;
use crate::bus::{BusSettings, KafkaSettings};
use crate::cache::CacheSettings;
use crate::cdn::AssetsSettings;
use crate::config::{
    self, ConfigError, Environment, InvalidSetting, LogSettings, MetricsSettings, PathSettings, PostgresSettings,
    RedisSettings, TopicOverrides,
};
use crate::gateway::GatewaySettings;
use crate::market::PriceStoreSettings;
use crate::workers::{
    AutoscalerSettings, CacheWarmerSettings, CdnPurgerSettings, InferenceBatcherSettings, PassthroughSettings,
    QueryAnalyzerSettings, ServeSettings, Shared, SlaMonitorSettings, WorkerConfig, WorkerGroup,
};

/// The whole configuration of a `frontier` process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Kafka connection and client settings shared by every worker and command.
    pub kafka: KafkaSettings,
    /// The consumer loop every worker runs on.
    pub bus: BusSettings,
    /// Redis, the shared cache layer.
    pub redis: RedisSettings,
    /// PostgreSQL, the system of record for analytics data.
    pub postgres: PostgresSettings,
    /// The price store in PostgreSQL: its schema, and where its query events go.
    pub prices: PriceStoreSettings,
    /// Where schemas and topic definitions live.
    pub paths: PathSettings,
    /// Environment-wide overrides of the topic files.
    pub topics: TopicOverrides,
    /// Prometheus exposition.
    pub metrics: MetricsSettings,
    /// Log output.
    pub log: LogSettings,
    /// The request cache of the serving worker and the cache warmer: sizes, lifetimes per
    /// kind, encryption keys, Redis behaviour, the invalidation topic.
    pub cache: CacheSettings,
    /// Published static sites: their store, public address and origin server (the asset
    /// pipeline, `frontier run asset-origin` and the CDN purger).
    pub assets: AssetsSettings,
    /// The audit trail of authenticated changes: its topic and table.
    pub audit: AuditSettings,
    /// The HTTP gateway in front of the workers (`frontier run gateway`): listener, topics,
    /// waits, API keys and quotas.
    pub gateway: GatewaySettings,
    /// Per-worker settings.
    pub workers: WorkerSettings,
}

/// Per-worker settings, one table each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// The passthrough worker, which measures the bus itself.
    pub passthrough: PassthroughSettings,
    /// The SLA monitor: SLIs, rules and SLOs over `frontier.metrics`, alerts to `frontier.alerts`.
    pub sla: SlaMonitorSettings,
    /// The inference batcher: jobs from `frontier.inference.jobs` batched onto model instances,
    /// results to `frontier.inference.results`.
    pub inference: InferenceBatcherSettings,
    /// The serving worker: requests from `frontier.requests` answered from the cache,
    /// responses to `frontier.responses`, events to `frontier.metrics`.
    pub serve: ServeSettings,
    /// The cache warmer: hot keys from `frontier.metrics` recomputed before they expire.
    pub cache_warmer: CacheWarmerSettings,
    /// The query analyzer: slow statements from `frontier.db.query-events` to
    /// `frontier.db.slow-queries`, index advice to `frontier.db.index-recommendations`.
    pub query_analyzer: QueryAnalyzerSettings,
    /// The autoscaler: every sized group's lag and rates, decisions to
    /// `frontier.autoscale.decisions`.
    pub autoscaler: AutoscalerSettings,
    /// The CDN purger: asset changes from `frontier.assets.changes` purged at every target,
    /// results to `frontier.cdn.purges`.
    pub cdn_purger: CdnPurgerSettings,
}

impl Settings {
    /// Loads `<config_dir>/<environment>.toml`, applies `FRONTIER_*` overrides and validates.
    pub fn load(environment: Environment, config_dir: &Path) -> Result<Settings, ConfigError> {
        let settings: Settings = config::load_file(environment, config_dir)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Defaults plus `FRONTIER_*` overrides, no file: for tests and tools.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let settings: Settings = config::load_env()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what the types alone cannot; the error names the full key to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate().map_err(|e| e.within("kafka"))?;
        self.bus.validate().map_err(|e| e.within("bus"))?;
        self.redis.validate().map_err(|e| e.within("redis"))?;
        self.postgres.validate().map_err(|e| e.within("postgres"))?;
        self.topics.validate().map_err(|e| e.within("topics"))?;
        self.cache.validate().map_err(|e| e.within("cache"))?;
        self.assets.validate().map_err(|e| e.within("assets"))?;
        self.gateway.validate().map_err(|e| e.within("gateway"))?;
        self.audit.validate().map_err(|e| e.within("audit"))?;
        let workers = &self.workers;
        worker(&workers.passthrough)?;
        worker(&workers.sla)?;
        worker(&workers.inference)?;
        worker(&workers.serve)?;
        worker(&workers.cache_warmer)?;
        worker(&workers.query_analyzer)?;
        worker(&workers.autoscaler)?;
        worker(&workers.cdn_purger)?;
        let known: Vec<&str> = self.worker_groups().iter().map(|group| group.worker).collect();
        for sized in workers.autoscaler.groups.keys() {
            if !known.contains(&sized.as_str()) {
                let key = format!("workers.autoscaler.groups.{sized}");
                let message = format!("is no worker with a consumer group; the workers are {}", known.join(", "));
                return Err(InvalidSetting::new(key, message).into());
            }
        }
        Ok(())
    }

    /// Every worker's consumer group that the autoscaler may size (not its own).
    pub fn worker_groups(&self) -> Vec<WorkerGroup> {
        let (shared, workers) = (self.shared(), &self.workers);
        vec![
            shared.worker_group(&workers.passthrough),
            shared.worker_group(&workers.sla),
            shared.worker_group(&workers.inference),
            shared.worker_group(&workers.serve),
            shared.worker_group(&workers.cache_warmer),
            shared.worker_group(&workers.query_analyzer),
            shared.worker_group(&workers.cdn_purger),
        ]
    }

    /// A copy safe to print: passwords in URLs and secret client settings are masked.
    pub fn redacted(&self) -> Settings {
        let mut copy = self.clone();
        copy.redis.url = crate::health::redact(&copy.redis.url);
        copy.postgres.url = crate::health::redact(&copy.postgres.url);
        let analyzer = &mut copy.workers.query_analyzer;
        for url in [&mut analyzer.database_url, &mut analyzer.store_url].into_iter().flatten() {
            *url = crate::health::redact(url);
        }
        copy.cache = copy.cache.redacted();
        for (key, value) in copy.kafka.client.iter_mut() {
            let key = key.to_lowercase();
            if ["password", "secret", "key", "token"].iter().any(|s| key.contains(s)) {
                *value = "***".into();
            }
        }
        copy
    }

    /// The consumer group id for a worker: `<group_prefix>.<worker>`.
    pub fn group_id(&self, worker: &str) -> String {
        self.kafka.group_id(worker)
    }

    /// What every worker is started with besides its own table.
    pub fn shared(&self) -> Shared {
        Shared {
            kafka: self.kafka.clone(),
            bus: self.bus.clone(),
            redis: self.redis.clone(),
            postgres: self.postgres.clone(),
            prices: self.prices.clone(),
            cache: self.cache.clone(),
            assets: self.assets.clone(),
        }
    }
}

fn worker<S: WorkerConfig>(settings: &S) -> Result<(), InvalidSetting> {
    settings.validate().map_err(|e| e.within(&format!("workers.{}", S::SECTION)))
}
