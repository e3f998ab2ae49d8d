//! The SLA monitor worker: every `RequestCompleted` event on `frontier.metrics` (and DB query
//! events, worker status reports, autoscale decisions) is observed; every evaluation interval
//! the rules are evaluated and each alert transition is produced to `frontier.alerts`, keyed by
//! its fingerprint, with SLI gauges updated for Prometheus.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::alertmanager::AlertmanagerClient;
use super::metric;
use super::owner::{Input, MonitorOwner, MonitorSnapshot, OwnerStopped};
use super::settings::SlaMonitorSettings;
use super::webhook::AlertWebhook;
use crate::bus::{CodecError, HandlerError, Inbound, KnownSchema, Outbound, SchemaCatalog, Worker};
use crate::records::{
    Alert, AutoscaleDecision, QueryEvent, Record, RequestCompleted, SloCounters, SlowQueryFinding, WorkerStatus,
};
use crate::sla::{AlertBook, AlertChange, SlaMonitor};

/// The SLA monitor worker.
pub struct SlaMonitorWorker {
    monitor: MonitorOwner,
    alerts_topic: Arc<str>,
    alert_schema: Arc<KnownSchema>,
    interval: Duration,
    gauge_interval_ms: i64,
    /// When the gauges were last recomputed (ms since the epoch).
    gauges_exported_at: AtomicI64,
    /// Where SLO counters are checkpointed, with their schema, and how often.
    checkpoints: Option<(Arc<str>, Arc<KnownSchema>)>,
    checkpoint_interval_ms: i64,
    checkpointed_at: AtomicI64,
    webhook: Option<AlertWebhook>,
    alertmanager: Option<AlertmanagerClient>,
}

/// Why the worker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SlaWorkerError {
    #[error("invalid configuration at `workers.sla.monitor.{key}`: {message}")]
    Config { key: String, message: String },
    #[error("the alert schema is missing: {0}")]
    Schema(#[from] crate::bus::CodecError),
    #[error("cannot restore alert state from the alerts topic: {0}")]
    Restore(#[from] crate::bus::replay::ReplayError),
    #[error(transparent)]
    Webhook(#[from] super::webhook::WebhookError),
    #[error(transparent)]
    Alertmanager(#[from] super::alertmanager::AlertmanagerError),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    #[error("the alert restore task did not finish: {0}")]
    Join(String),
    #[error("cannot start the monitor's thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error(transparent)]
    Stopped(#[from] OwnerStopped),
}

/// What a monitor before this one left in Kafka: see [`SlaMonitorWorker::restore`].
#[derive(Debug, Default)]
pub struct RestoredState {
    /// The alerts topic's history, oldest first.
    pub alerts: Vec<Alert>,
    /// The SLO counter checkpoints, in the order they were written per series and hour.
    pub slo_counters: Vec<SloCounters>,
}

impl SlaMonitorWorker {
    /// A worker continuing from `restored` (empty: a monitor with no history).
    pub fn new(
        settings: &SlaMonitorSettings,
        catalog: &SchemaCatalog,
        restored: RestoredState,
    ) -> Result<SlaMonitorWorker, SlaWorkerError> {
        let RestoredState { alerts: past_alerts, slo_counters } = restored;
        let restored = past_alerts.len();
        let book = AlertBook::restore(past_alerts);
        let firing = book.firing().count();
        let alertmanager = match settings.alertmanager.clone() {
            Some(alertmanager) => Some(AlertmanagerClient::start(alertmanager, book.firing().cloned().collect())?),
            None => None,
        };
        let mut monitor = SlaMonitor::with_alert_book(settings.monitor.clone(), book)
            .map_err(|e| SlaWorkerError::Config { key: e.key().to_string(), message: e.to_string() })?;
        info!(restored, firing, "alert state restored from the alerts topic");
        let checkpoints = slo_counters.len();
        let series = monitor.restore_slo_counters(slo_counters, crate::clock::now_millis());
        if checkpoints > 0 {
            info!(checkpoints, series, "SLO counters restored from their checkpoints");
        }
        let checkpoints = match &settings.slo_counters_topic {
            Some(topic) => Some((Arc::from(topic.as_str()), catalog.schema_of::<SloCounters>()?)),
            None => None,
        };
        ::metrics::gauge!(metric::FIRING).set(firing as f64);
        Ok(SlaMonitorWorker {
            monitor: MonitorOwner::start(monitor)?,
            alerts_topic: Arc::from(settings.alerts_topic.as_str()),
            alert_schema: catalog.schema_of::<Alert>()?,
            interval: settings.evaluation_interval,
            gauge_interval_ms: settings.gauge_interval.as_millis() as i64,
            gauges_exported_at: AtomicI64::new(0),
            checkpoints,
            checkpoint_interval_ms: settings.slo_checkpoint_interval.as_millis() as i64,
            checkpointed_at: AtomicI64::new(crate::clock::now_millis()),
            webhook: settings.webhook.clone().map(AlertWebhook::new).transpose()?,
            alertmanager,
        })
    }

    /// Reads (blocking) what a monitor before this one left: the alerts topic's history and,
    /// when a topic is set, the SLO counter checkpoints.
    pub fn restore(
        kafka: &crate::bus::KafkaSettings,
        settings: &SlaMonitorSettings,
        catalog: &SchemaCatalog,
    ) -> Result<RestoredState, SlaWorkerError> {
        let alerts = read_records(kafka, &settings.alerts_topic, settings, catalog)?;
        let slo_counters = match &settings.slo_counters_topic {
            Some(topic) => read_records(kafka, topic, settings, catalog)?,
            None => Vec::new(),
        };
        Ok(RestoredState { alerts, slo_counters })
    }

    /// The monitor's counters once every input handed to it so far is applied, for
    /// benchmarks, tests and operators.
    pub async fn snapshot(&self) -> Result<MonitorSnapshot, OwnerStopped> {
        self.monitor.snapshot().await
    }
}

/// Every record of type `T` in `topic`'s retained history, in offset order per partition.
fn read_records<T: Record>(
    kafka: &crate::bus::KafkaSettings,
    topic: &str,
    settings: &SlaMonitorSettings,
    catalog: &SchemaCatalog,
) -> Result<Vec<T>, SlaWorkerError> {
    let values = crate::bus::replay::read_to_end(kafka, topic, settings.restore_timeout)?;
    let mut records = Vec::with_capacity(values.len());
    for bytes in values {
        // A record this monitor cannot read is not one it wrote: skip it, say so.
        match catalog.decode_record::<T>(&bytes) {
            Ok(record) => records.push(record),
            Err(error @ CodecError::WrongRecord { .. }) => warn!(%error, topic, "skipping a record of another type"),
            Err(error) => warn!(%error, topic, "skipping an undecodable record"),
        }
    }
    Ok(records)
}

impl Worker for SlaMonitorWorker {
    fn name(&self) -> &'static str {
        <SlaMonitorSettings as crate::workers::WorkerConfig>::NAME
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let now_ms = crate::clock::now_millis();
        // Absurd events are counted by reason (exported with the gauges), never rejected: they
        // are well-formed, just not usable.
        let input = if message.is::<RequestCompleted>() {
            Input::Request(message.record()?)
        } else if message.is::<QueryEvent>() {
            Input::Query(message.record()?)
        } else if message.is::<WorkerStatus>() {
            Input::Status(Box::new(message.record()?))
        } else if message.is::<AutoscaleDecision>() {
            Input::Decision(message.record()?)
        } else if message.is::<SlowQueryFinding>() {
            Input::Finding(message.record()?)
        } else {
            let schema = &message.schema.reader.name;
            return Err(HandlerError::rejected(
                "unexpected_schema",
                format!("the SLA monitor does not read {schema} records"),
            ));
        };
        self.monitor.observe(input, now_ms).await.map_err(|e| HandlerError::fatal("monitor_stopped", e.to_string()))?;
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    async fn tick(&self, now: SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        let now_ms = crate::clock::epoch_millis(now);
        let export_gauges = now_ms - self.gauges_exported_at.load(Ordering::Relaxed) >= self.gauge_interval_ms;
        if export_gauges {
            self.gauges_exported_at.store(now_ms, Ordering::Relaxed);
        }
        let transitions = self
            .monitor
            .evaluate(now_ms, export_gauges)
            .await
            .map_err(|e| HandlerError::fatal("monitor_stopped", e.to_string()))?;
        if let Some(webhook) = &self.webhook {
            webhook.forward(transitions.iter().map(|transition| transition.alert.clone()).collect());
        }
        if let Some(alertmanager) = &self.alertmanager {
            alertmanager.forward(transitions.iter().map(|transition| transition.alert.clone()).collect());
        }
        let mut outputs = Vec::with_capacity(transitions.len());
        if let Some((topic, schema)) = &self.checkpoints
            && now_ms - self.checkpointed_at.load(Ordering::Relaxed) >= self.checkpoint_interval_ms
        {
            self.checkpointed_at.store(now_ms, Ordering::Relaxed);
            let checkpoints = self
                .monitor
                .checkpoint(now_ms)
                .await
                .map_err(|e| HandlerError::fatal("monitor_stopped", e.to_string()))?;
            for checkpoint in checkpoints {
                let payload = SchemaCatalog::encode(schema, &checkpoint)
                    .map_err(|e| HandlerError::fatal("checkpoint_encoding", e.to_string()))?;
                outputs.push(Outbound::new(topic.clone(), Some(checkpoint.key()), payload));
            }
        }
        for transition in transitions {
            let change = match transition.change {
                AlertChange::Fired => "fired",
                AlertChange::Renotified => "renotified",
                AlertChange::Resolved => "resolved",
            };
            ::metrics::counter!(metric::TRANSITIONS, "change" => change, "severity" => transition.alert.severity.as_str())
                .increment(1);
            info!(change, alert = %transition.alert.name, fingerprint = %transition.alert.fingerprint,
                  observed = transition.alert.observed_value, "alert");
            let payload = SchemaCatalog::encode(&self.alert_schema, &transition.alert)
                .map_err(|e| HandlerError::fatal("alert_encoding", e.to_string()))?;
            outputs.push(Outbound::new(self.alerts_topic.clone(), Some(transition.key().to_vec()), payload));
        }
        Ok(outputs)
    }
}
