//! `frontier run sla-monitor`: the [`SlaMonitor`] as a consumer-group worker. Every
//! `RequestCompleted` event on `frontier.metrics` is observed; every evaluation interval the
//! rules are evaluated and each alert transition is produced to `frontier.alerts`, keyed by its
//! fingerprint, with SLI gauges updated for Prometheus.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{
    AlertBook, AlertChange, AutoscaleDecision, Observation, RequestCompleted, SlaConfig, SlaMonitor, Sli,
    SliWindow, WorkerStatus,
};
use super::webhook::{AlertWebhook, WebhookSettings};
use crate::bus::{HandlerError, Inbound, KnownSchema, Outbound, SchemaCatalog, Worker};

/// Metric names of the SLA monitor.
pub mod metric {
    /// An SLI of a series over a window (`sli` label: latency_p50/p95/p99 in ms, throughput in
    /// events/s, error_rate, timeout_rate, cache_hit_ratio as fractions).
    pub const SLI: &str = "frontier_sla_sli";
    /// Events dropped before reaching a window, by reason.
    pub const DROPPED: &str = "frontier_sla_events_dropped_total";
    /// Events counted into windows.
    pub const ACCEPTED: &str = "frontier_sla_events_accepted_total";
    /// Alert transitions produced, by change (fired, renotified, resolved) and severity.
    pub const TRANSITIONS: &str = "frontier_sla_alert_transitions_total";
    /// Alerts firing now.
    pub const FIRING: &str = "frontier_sla_alerts_firing";
    /// An SLO's burn rate for a series over a window (1.0 spends the error budget exactly).
    pub const BURN_RATE: &str = "frontier_sla_burn_rate";
    /// A signal's value per subject (`signal` label; `group`, or `service` and `instance`);
    /// NaN once the subject's reports are stale.
    pub const SIGNAL: &str = "frontier_sla_signal";
}

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

/// `[workers.sla]`: where the monitor reads and writes, and its rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaWorkerSettings {
    /// Topic of `RequestCompleted` events.
    pub input_topic: String,
    /// Topic of `DbQueryEvent`s, counted in `db:<database>` series; none to ignore statements.
    pub query_events_topic: Option<String>,
    /// Topic of `WorkerStatus` reports (consumer lag, resources); none to run no such rules.
    pub worker_status_topic: Option<String>,
    /// Topic of the autoscaler's decisions; none to run no autoscaling rules.
    pub autoscale_topic: Option<String>,
    /// Topic alerts are produced to (keyed by fingerprint); also replayed at start to restore
    /// which alerts are firing.
    pub alerts_topic: String,
    /// Consumer group id; defaults to `<group_prefix>.sla-monitor`.
    pub group_id: Option<String>,
    /// How often the rules are evaluated: the bound on detection delay after a window crosses.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// How often SLI and burn-rate gauges are recomputed for Prometheus (merging every window
    /// of every series costs more than evaluating the rules, and scrapes are seconds apart).
    #[serde(with = "humantime_serde")]
    pub gauge_interval: Duration,
    /// Longest time the start-up replay of the alerts topic may take.
    #[serde(with = "humantime_serde")]
    pub restore_timeout: Duration,
    /// Also send every alert message to this webhook, in Alertmanager's format; none by default.
    pub webhook: Option<WebhookSettings>,
    /// The rules, SLOs and window settings.
    pub monitor: SlaConfig,
}

impl Default for SlaWorkerSettings {
    fn default() -> Self {
        SlaWorkerSettings {
            input_topic: "frontier.metrics".into(),
            query_events_topic: Some("frontier.db.query-events".into()),
            worker_status_topic: Some("frontier.workers.status".into()),
            autoscale_topic: Some("frontier.autoscale.decisions".into()),
            alerts_topic: "frontier.alerts".into(),
            group_id: None,
            evaluation_interval: Duration::from_millis(250),
            gauge_interval: Duration::from_secs(5),
            restore_timeout: Duration::from_secs(60),
            webhook: None,
            monitor: SlaConfig::default(),
        }
    }
}

impl SlaWorkerSettings {
    /// Every topic the monitor consumes.
    pub fn topics(&self) -> Vec<String> {
        let optional = [&self.query_events_topic, &self.worker_status_topic, &self.autoscale_topic];
        std::iter::once(self.input_topic.clone()).chain(optional.into_iter().flatten().cloned()).collect()
    }
}

/// The record types the monitor reads, by their schemas' full names.
#[derive(Debug)]
struct InputSchemas {
    request: String,
    query: String,
    status: String,
    decision: String,
}

/// The SLA monitor worker.
pub struct SlaMonitorWorker {
    monitor: Mutex<SlaMonitor>,
    alerts_topic: Arc<str>,
    alert_schema: Arc<KnownSchema>,
    inputs: InputSchemas,
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
}

impl SlaMonitorWorker {
    /// A worker continuing from `past_alerts` (the alerts topic's history, oldest first).
    pub fn new(
        settings: &SlaWorkerSettings,
        catalog: &SchemaCatalog,
        past_alerts: Vec<super::Alert>,
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
            alert_schema: catalog.by_file("alert.avsc")?,
            inputs: InputSchemas {
                request: catalog.by_file("request_completed.avsc")?.name.clone(),
                query: catalog.by_file("db_query_event.avsc")?.name.clone(),
                status: catalog.by_file("worker_status.avsc")?.name.clone(),
                decision: catalog.by_file("autoscale_decision.avsc")?.name.clone(),
            },
            interval: settings.evaluation_interval,
            gauge_interval_ms: settings.gauge_interval.as_millis() as i64,
            gauges_exported_at: AtomicI64::new(0),
            accepted: ::metrics::counter!(metric::ACCEPTED),
            webhook: settings.webhook.clone().map(AlertWebhook::new).transpose()?,
        })
    }

    /// Reads the alerts topic's history (blocking) and decodes every alert in it.
    pub fn past_alerts(
        kafka: &crate::config::KafkaSettings,
        settings: &SlaWorkerSettings,
        catalog: &SchemaCatalog,
    ) -> Result<Vec<super::Alert>, SlaWorkerError> {
        let values = crate::bus::replay::read_to_end(kafka, &settings.alerts_topic, settings.restore_timeout)?;
        let mut alerts = Vec::with_capacity(values.len());
        for bytes in values {
            // An undecodable record in the alerts topic cannot be an alert this monitor sent.
            match catalog.decode(&bytes).map(|d| apache_avro::from_value::<super::Alert>(&d.value)) {
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
        "sla-monitor"
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let now_ms = crate::clock::now_millis();
        let schema = message.schema.reader.name.as_str();
        // Absurd events are counted by reason (exported with the gauges), never rejected: they
        // are well-formed, just not usable.
        let observation = if schema == self.inputs.request {
            let event: RequestCompleted = message.deserialize()?;
            self.monitor().observe(&event, now_ms)
        } else if schema == self.inputs.query {
            let statement: crate::market::QueryEvent = message.deserialize()?;
            self.monitor().observe_query(&statement, now_ms)
        } else if schema == self.inputs.status {
            let status: WorkerStatus = message.deserialize()?;
            self.monitor().observe_status(status, now_ms)
        } else if schema == self.inputs.decision {
            let decision: AutoscaleDecision = message.deserialize()?;
            self.monitor().observe_decision(decision, now_ms)
        } else {
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
