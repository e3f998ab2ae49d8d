//! `[prices]`: where the price store keeps its tables and sends its query events, and the one
//! way every process connects to it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::events::{DiscardQueryEvents, KafkaQueryEvents, QUERY_EVENTS_TOPIC, QueryEventSink, QueryEventSinkError};
use super::store::{PriceStore, StoreError, StoreOptions};
use crate::bus::{KafkaSettings, SchemaCatalog};
use crate::cache::TieredCache;
use crate::config::PostgresSettings;

/// `[prices]`: the price store in PostgreSQL, shared by the serving worker, the cache warmer and
/// `frontier seed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceStoreSettings {
    /// PostgreSQL schema of the price tables (created if missing); unset uses the server's
    /// search path.
    pub schema: Option<String>,
    /// Topic of the DB query event of every statement the store runs; unset discards them.
    pub query_events_topic: Option<String>,
    /// Whether the store answers its frequent identical read statements (latest closes,
    /// aligned closes, symbol lookups) from the request cache, tagged `table:<table>` and
    /// `symbol:<symbol>` and invalidated with the results that depend on them. Their
    /// lifetimes are the cache's `kinds."sql.prices.latest"`, `"sql.prices.aligned"` and
    /// `"sql.symbols.existing"` (else its defaults). Off runs every read on PostgreSQL.
    pub cache_statements: bool,
}

impl Default for PriceStoreSettings {
    fn default() -> Self {
        PriceStoreSettings { schema: None, query_events_topic: Some(QUERY_EVENTS_TOPIC.into()), cache_statements: true }
    }
}

/// Why the price store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectStoreError {
    /// The query event producer could not be created.
    #[error("creating the DB query event producer: {0}")]
    QueryEvents(#[from] QueryEventSinkError),
    /// PostgreSQL could not be reached or migrated.
    #[error("opening the price store: {0}")]
    Store(#[from] StoreError),
}

/// Connects the price store as `application` (its name in PostgreSQL and in the query events),
/// caching its frequent reads in `cache` when `prices.cache_statements` is on.
pub async fn connect_store(
    postgres: &PostgresSettings,
    prices: &PriceStoreSettings,
    kafka: &KafkaSettings,
    catalog: &SchemaCatalog,
    application: &str,
    cache: &TieredCache,
) -> Result<PriceStore, ConnectStoreError> {
    let sink: Arc<dyn QueryEventSink> = match &prices.query_events_topic {
        Some(topic) => Arc::new(KafkaQueryEvents::from_catalog(kafka, catalog, topic)?),
        None => Arc::new(DiscardQueryEvents),
    };
    let options = StoreOptions { schema: prices.schema.clone(), application: application.to_owned() };
    let store = PriceStore::connect(postgres, options, sink).await?;
    Ok(if prices.cache_statements { store.with_statement_cache(cache.clone()) } else { store })
}
