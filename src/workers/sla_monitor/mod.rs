//! `frontier run sla-monitor`: the [`SlaMonitor`](crate::sla::SlaMonitor) as a consumer-group
//! worker. At start it replays the alerts topic to learn which alerts are firing and reads back
//! the SLO counters it checkpointed, then observes every event, evaluates the rules on the loop's
//! tick and checkpoints the counters that changed every `slo_checkpoint_interval`.

mod alert_json;
pub mod alertmanager;
pub mod metric;
mod owner;
mod settings;
pub mod webhook;
mod worker;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use self::owner::MonitorSnapshot;
pub use self::settings::SlaMonitorSettings;
pub use self::worker::{RestoredState, SlaMonitorWorker, SlaWorkerError};
use super::{Shared, WorkerConfig};
use crate::bus::{ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog};

/// `frontier run sla-monitor`: restores alert state and SLO counters, then monitors until
/// `shutdown`.
pub async fn run(
    shared: &Shared,
    settings: &SlaMonitorSettings,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
) -> Result<LoopReport, SlaWorkerError> {
    let restored = {
        let (kafka, settings, catalog) = (shared.kafka.clone(), settings.clone(), catalog.clone());
        tokio::task::spawn_blocking(move || SlaMonitorWorker::restore(&kafka, &settings, &catalog))
            .await
            .map_err(|e| SlaWorkerError::Join(e.to_string()))??
    };
    let worker = Arc::new(SlaMonitorWorker::new(settings, &catalog, restored)?);
    let options = LoopOptions::new(&shared.bus, shared.group_id(settings), settings.input_topics());
    Ok(ConsumerLoop::new(&shared.kafka, options, worker, catalog)?.run(shutdown).await?)
}
