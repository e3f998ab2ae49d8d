//! `frontier run query-analyzer`: finds slow statements in the query events and works out which
//! indexes fix them.
//!
//! Every query event (`frontier.db.query-events`) is fingerprinted by a SQL parser and counted
//! into an event-time window of its database and fingerprint ([`crate::queries::detect`]). Each
//! tick judges the windows that closed (their end plus the allowed lateness has passed): slow
//! (PgHero's rule), heavy (share of the database's time) or regressed (against the fingerprint's
//! own baseline) statements go to `frontier.db.slow-queries`. Every `advise_interval` the
//! advisor ([`crate::queries::advise`]) plans the advised database's workload
//! (`pg_stat_statements` plus statements seen only in events) with hypothetical indexes, and
//! changed advice goes to the compacted `frontier.db.index-recommendations` and to the
//! recommendations table in Frontier's database ([`crate::queries::store`]). An index applied
//! with `frontier queries apply` is judged on the first window after it: its statements' mean
//! must drop by `payoff_min_gain`, else the index is advised for dropping.
//!
//! An advice run that fails (the database restarting, unreachable, missing HypoPG) is logged
//! and counted and tried again next interval; the windows go on. Window state is in memory: a
//! restart loses the counts of the windows still open (their events were committed), so a
//! restart can miss one window's finding, never report a wrong one.

mod metric;
mod settings;
mod worker;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use self::settings::QueryAnalyzerSettings;
pub use self::worker::QueryAnalyzer;
use super::{Shared, WorkerConfig};
use crate::bus::{BusError, ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog};

/// `frontier run query-analyzer`: analyses until `shutdown`.
pub async fn run(
    shared: &Shared,
    settings: &QueryAnalyzerSettings,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
) -> Result<LoopReport, BusError> {
    let database_url = settings.database_url.clone().unwrap_or_else(|| shared.postgres.url.clone());
    let store_url = settings.store_url.as_deref().unwrap_or(&shared.postgres.url);
    let analyzer = Arc::new(QueryAnalyzer::new(settings.clone(), database_url, store_url, catalog.clone()));
    let options = LoopOptions::new(&shared.bus, shared.group_id(settings), settings.input_topics());
    ConsumerLoop::new(&shared.kafka, options, analyzer, catalog)?.run(shutdown).await
}
