//! `[workers.sla]`: where the monitor reads and writes, and its rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::alertmanager::AlertmanagerSettings;
use super::webhook::WebhookSettings;
use crate::config::{InvalidSetting, positive};
use crate::sla::SlaConfig;
use crate::workers::WorkerConfig;

/// `[workers.sla]`: where the monitor reads and writes, and its rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaMonitorSettings {
    /// Topic of `RequestCompleted` events.
    pub input_topic: String,
    /// Topic of `DbQueryEvent`s, counted in `db:<database>` series; none to ignore statements.
    pub query_events_topic: Option<String>,
    /// Topic of `WorkerStatus` reports (consumer lag, resources); none to run no such rules.
    pub worker_status_topic: Option<String>,
    /// Topic of the autoscaler's decisions; none to run no autoscaling rules.
    pub autoscale_topic: Option<String>,
    /// Topic of the query analyzer's slow-statement findings; none to run no such rules.
    pub slow_queries_topic: Option<String>,
    /// Topic alerts are produced to (keyed by fingerprint); also replayed at start to restore
    /// which alerts are firing.
    pub alerts_topic: String,
    /// Compacted topic the SLO counters are checkpointed to and restored from at start, so a
    /// restarted monitor judges burn rates on the history it had; none to start empty.
    pub slo_counters_topic: Option<String>,
    /// How often the SLO counters that changed are checkpointed: at most this much of the
    /// counts is lost when the monitor stops.
    #[serde(with = "humantime_serde")]
    pub slo_checkpoint_interval: Duration,
    /// Consumer group id; defaults to `<group_prefix>.sla-monitor`.
    pub group_id: Option<String>,
    /// How often the rules are evaluated: the bound on detection delay after a window crosses.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// How often SLI and burn-rate gauges are recomputed for Prometheus (merging every window
    /// of every series costs more than evaluating the rules, and scrapes are seconds apart).
    #[serde(with = "humantime_serde")]
    pub gauge_interval: Duration,
    /// Longest time each start-up replay (the alerts topic, the SLO counters) may take.
    #[serde(with = "humantime_serde")]
    pub restore_timeout: Duration,
    /// Also send every alert message to this webhook, in Alertmanager's format; none by default.
    pub webhook: Option<WebhookSettings>,
    /// Also post alerts to this Alertmanager's API (v2), re-sending firing ones as Prometheus
    /// does; none by default (the development config points at the local stack's).
    pub alertmanager: Option<AlertmanagerSettings>,
    /// The rules, SLOs and window settings.
    pub monitor: SlaConfig,
}

impl Default for SlaMonitorSettings {
    fn default() -> Self {
        SlaMonitorSettings {
            input_topic: "frontier.metrics".into(),
            query_events_topic: Some("frontier.db.query-events".into()),
            worker_status_topic: Some("frontier.workers.status".into()),
            autoscale_topic: Some("frontier.autoscale.decisions".into()),
            slow_queries_topic: Some("frontier.db.slow-queries".into()),
            alerts_topic: "frontier.alerts".into(),
            slo_counters_topic: Some("frontier.sla.slo-counters".into()),
            slo_checkpoint_interval: Duration::from_secs(30),
            group_id: None,
            evaluation_interval: Duration::from_millis(250),
            gauge_interval: Duration::from_secs(5),
            restore_timeout: Duration::from_secs(60),
            webhook: None,
            alertmanager: None,
            monitor: SlaConfig::default(),
        }
    }
}

impl SlaMonitorSettings {
    /// Every topic the monitor consumes.
    pub fn topics(&self) -> Vec<String> {
        let optional =
            [&self.query_events_topic, &self.worker_status_topic, &self.autoscale_topic, &self.slow_queries_topic];
        std::iter::once(self.input_topic.clone()).chain(optional.into_iter().flatten().cloned()).collect()
    }
}

impl WorkerConfig for SlaMonitorSettings {
    const SECTION: &'static str = "sla";
    const NAME: &'static str = "sla-monitor";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        self.topics()
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        positive("evaluation_interval", self.evaluation_interval)?;
        positive("gauge_interval", self.gauge_interval)?;
        positive("restore_timeout", self.restore_timeout)?;
        positive("slo_checkpoint_interval", self.slo_checkpoint_interval)?;
        self.monitor.validate().map_err(|e| InvalidSetting::new(e.key(), e.to_string()).within("monitor"))
    }
}
