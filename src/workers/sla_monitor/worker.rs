//! The SLA monitor worker: every `RequestCompleted` event on `frontier.metrics` (and DB query
//! events, worker status reports, autoscale decisions) is observed; every evaluation interval
//! the rules are evaluated and each alert transition is produced to `frontier.alerts`, keyed by
//! its fingerprint, with SLI gauges updated for Prometheus.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::metric;
use super::settings::SlaMonitorSettings;
use super::webhook::AlertWebhook;
use crate::bus::{HandlerError, Inbound, KnownSchema, Outbound, SchemaCatalog, Worker};
use crate::records::{Alert, AutoscaleDecision, QueryEvent, RequestCompleted, WorkerStatus};
use crate::sla::{AlertBook, AlertChange, Observation, SlaMonitor, Sli, SliWindow};

/// The SLIs exported as gauges, with their label values.
const EXPORTED_SLIS: [(Sli, &str); 7] = [
    (Sli::LatencyP50, "latency_p50"),
    (Sli::LatencyP95, "latency_p95"),
    (Sli::LatencyP99, "latency_p99"),
    (Sli::Throughput, "throughput"),
    (Sli::ErrorRate, "error_rate"),
    (Sli::TimeoutRate, "timeout_rate"),
    (Sli::CacheHitRatio, "cache_hit_ratio"),
];

/// The SLA monitor worker.
pub struct SlaMonitorWorker {
    monitor: Mutex<SlaMonitor>,
    alerts_topic: Arc<str>,
    alert_schema: Arc<KnownSchema>,
    interval: Duration,
    gauge_interval_ms: i64,
    /// When the gauges were last recomputed (ms since the epoch).
    gauges_exported_at: AtomicI64,
    accepted: ::metrics::Counter,
    webhook: Option<AlertWebhook>,
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
    Bus(#[from] crate::bus::BusError),
    #[error("the alert restore task did not finish: {0}")]
    Join(String),
}

impl SlaMonitorWorker {
    /// A worker continuing from `past_alerts` (the alerts topic's history, oldest first).
    pub fn new(
        settings: &SlaMonitorSettings,
        catalog: &SchemaCatalog,
        past_alerts: Vec<Alert>,
    ) -> Result<SlaMonitorWorker, SlaWorkerError> {
        let restored = past_alerts.len();
        let book = AlertBook::restore(past_alerts);
        let firing = book.firing().count();
        let monitor = SlaMonitor::with_alert_book(settings.monitor.clone(), book)
            .map_err(|e| SlaWorkerError::Config { key: e.key().to_string(), message: e.to_string() })?;
        info!(restored, firing, "alert state restored from the alerts topic");
        ::metrics::gauge!(metric::FIRING).set(firing as f64);
        Ok(SlaMonitorWorker {
            monitor: Mutex::new(monitor),
            alerts_topic: Arc::from(settings.alerts_topic.as_str()),
            alert_schema: catalog.schema_of::<Alert>()?,
            interval: settings.evaluation_interval,
            gauge_interval_ms: settings.gauge_interval.as_millis() as i64,
            gauges_exported_at: AtomicI64::new(0),
            accepted: ::metrics::counter!(metric::ACCEPTED),
            webhook: settings.webhook.clone().map(AlertWebhook::new).transpose()?,
        })
    }

    /// Reads the alerts topic's history (blocking) and decodes every alert in it.
    pub fn past_alerts(
        kafka: &crate::bus::KafkaSettings,
        settings: &SlaMonitorSettings,
        catalog: &SchemaCatalog,
    ) -> Result<Vec<Alert>, SlaWorkerError> {
        let values = crate::bus::replay::read_to_end(kafka, &settings.alerts_topic, settings.restore_timeout)?;
        let mut alerts = Vec::with_capacity(values.len());
        for bytes in values {
            // An undecodable record in the alerts topic cannot be an alert this monitor sent.
            match catalog.decode(&bytes).map(|d| apache_avro::from_value::<Alert>(&d.value)) {
                Ok(Ok(alert)) => alerts.push(alert),
                Ok(Err(error)) => warn!(%error, "skipping a record of the alerts topic that is not an alert"),
                Err(error) => warn!(%error, "skipping an undecodable record of the alerts topic"),
            }
        }
        Ok(alerts)
    }

    /// The monitor, for benchmarks and tests that read its counters.
    pub fn monitor(&self) -> MutexGuard<'_, SlaMonitor> {
        // A panic while holding the lock cannot leave the monitor half-updated in a way that
        // matters more than losing it; keep serving.
        self.monitor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn export_slis(monitor: &mut SlaMonitor, now_ms: i64) {
        for (signal, labels, value) in monitor.signal_values(now_ms) {
            let mut pairs: Vec<::metrics::Label> = vec![::metrics::Label::new("signal", signal.as_str())];
            pairs.extend(labels.into_iter().map(|(key, value)| ::metrics::Label::new(key, value)));
            ::metrics::gauge!(metric::SIGNAL, pairs).set(value);
        }
        for (service, kind) in monitor.series_keys() {
            for window in SliWindow::ALL {
                let Some(sli) = monitor.sli(&service, &kind, window) else { continue };
                for (which, label) in EXPORTED_SLIS {
                    if let Some(value) = sli.value(which) {
                        ::metrics::gauge!(metric::SLI, "service" => service.clone(), "kind" => kind.clone(),
                            "sli" => label, "window" => window.label())
                        .set(value);
                    }
                }
            }
        }
        for reading in monitor.burn_rates() {
            ::metrics::gauge!(metric::BURN_RATE, "slo" => reading.slo, "service" => reading.service,
                "kind" => reading.kind, "window" => reading.window)
            .set(reading.burn_rate);
        }
        for (reason, count) in monitor.drops().iter() {
            ::metrics::counter!(metric::DROPPED, "reason" => reason.as_str()).absolute(count);
        }
        ::metrics::gauge!(metric::FIRING).set(monitor.alert_book().firing().count() as f64);
    }
}

impl Worker for SlaMonitorWorker {
    fn name(&self) -> &'static str {
        <SlaMonitorSettings as crate::workers::WorkerConfig>::NAME
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let now_ms = crate::clock::now_millis();
        // Absurd events are counted by reason (exported with the gauges), never rejected: they
        // are well-formed, just not usable.
        let observation = if message.is::<RequestCompleted>() {
            let event: RequestCompleted = message.record()?;
            self.monitor().observe(&event, now_ms)
        } else if message.is::<QueryEvent>() {
            let statement: QueryEvent = message.record()?;
            self.monitor().observe_query(&statement, now_ms)
        } else if message.is::<WorkerStatus>() {
            self.monitor().observe_status(message.record()?, now_ms)
        } else if message.is::<AutoscaleDecision>() {
            self.monitor().observe_decision(message.record()?, now_ms)
        } else {
            let schema = &message.schema.reader.name;
            return Err(HandlerError::rejected(
                "unexpected_schema",
                format!("the SLA monitor does not read {schema} records"),
            ));
        };
        if let Observation::Accepted = observation {
            self.accepted.increment(1);
        }
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    async fn tick(&self, now: SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        let now_ms = crate::clock::epoch_millis(now);
        let transitions = {
            let mut monitor = self.monitor();
            let transitions = monitor.evaluate(now_ms);
            if now_ms - self.gauges_exported_at.load(Ordering::Relaxed) >= self.gauge_interval_ms {
                self.gauges_exported_at.store(now_ms, Ordering::Relaxed);
                Self::export_slis(&mut monitor, now_ms);
            }
            transitions
        };
        if let Some(webhook) = &self.webhook {
            webhook.forward(transitions.iter().map(|transition| transition.alert.clone()).collect());
        }
        let mut outputs = Vec::with_capacity(transitions.len());
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
