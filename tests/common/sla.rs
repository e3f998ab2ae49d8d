//! Driving the SLA monitor worker against the real broker, shared by its test files.

use std::sync::Arc;
use std::time::Duration;

use frontier::bus::{ConsumerLoop, LoopOptions, LoopReport};
use frontier::settings::Settings;
use frontier::workers::sla_monitor::{SlaMonitorSettings, SlaMonitorWorker};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{catalog, decoded_json, read_topic};

pub struct Monitor {
    pub worker: Arc<SlaMonitorWorker>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<LoopReport, frontier::bus::BusError>>,
}

/// Starts a monitor the way `frontier run sla-monitor` does: alert state and SLO counters
/// restored first.
pub async fn start(settings: &Settings, config: &SlaMonitorSettings, group: &str) -> Monitor {
    let catalog = catalog();
    let restored = {
        let (kafka, config, catalog) = (settings.kafka.clone(), config.clone(), catalog.clone());
        tokio::task::spawn_blocking(move || SlaMonitorWorker::restore(&kafka, &config, &catalog))
            .await
            .unwrap()
            .unwrap()
    };
    let worker = Arc::new(SlaMonitorWorker::new(config, &catalog, restored).unwrap());
    let options = LoopOptions::new(&settings.bus, group, config.topics());
    let consumer_loop = ConsumerLoop::new(&settings.kafka, options, worker.clone(), catalog).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer_loop.run(token.clone()));
    Monitor { worker, token, task }
}

pub async fn stop(monitor: Monitor) {
    monitor.token.cancel();
    monitor.task.await.unwrap().expect("the monitor stops cleanly");
}

/// The alerts on `topic`, decoded, waiting until there are `count` (or a minute passed).
pub async fn alerts(settings: &Settings, topic: &str, count: usize) -> Vec<Value> {
    let (settings, topic) = (settings.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let catalog = catalog();
        let started = std::time::Instant::now();
        loop {
            let found = decoded_json(&catalog, &read_topic(&settings, &topic, count, Duration::from_secs(2)));
            if found.len() >= count || started.elapsed() > Duration::from_secs(60) {
                return found;
            }
        }
    })
    .await
    .unwrap()
}

/// Waits (up to 30 s) until the monitor has taken in `count` events, accepted or dropped.
pub async fn taken_in(worker: &Arc<SlaMonitorWorker>, count: u64) -> bool {
    for _ in 0..300 {
        if worker.snapshot().await.expect("monitor running").taken_in() >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
