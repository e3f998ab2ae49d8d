//! Optional forwarding of alert messages to a webhook in Alertmanager's JSON format (version 4),
//! so anything that takes Alertmanager's webhooks (PagerDuty and Slack bridges, incident tools)
//! takes ours. `frontier.alerts` stays the record: forwarding is best effort, retried a few
//! times, never in the consumer loop's way, and counted when it gives up.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::warn;

use super::alert_json::{labels_and_annotations, rfc3339};
use crate::records::{Alert, AlertStatus};

/// Metric: webhook deliveries by outcome (`delivered`, `failed`, `dropped`).
pub const WEBHOOK_DELIVERIES: &str = "frontier_sla_webhook_deliveries_total";

/// `[workers.sla.webhook]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where to POST (http or https).
    pub url: String,
    /// Per attempt.
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts per alert message before it is counted as failed (1 to 10).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// `receiver` in the payload, for the far side's routing.
    #[serde(default = "default_receiver")]
    pub receiver: String,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_attempts() -> u32 {
    3
}
fn default_receiver() -> String {
    "frontier-sla-monitor".into()
}

/// Most deliveries in flight; beyond it messages are dropped and counted rather than queued
/// without bound behind a dead endpoint.
const MAX_IN_FLIGHT: usize = 64;

/// Posts alerts to the webhook.
#[derive(Debug, Clone)]
pub struct AlertWebhook {
    settings: WebhookSettings,
    client: reqwest::Client,
    in_flight: Arc<Semaphore>,
}

/// Why the webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("workers.sla.webhook.url must be an http:// or https:// URL, not {0:?}")]
    Url(String),
    #[error("workers.sla.webhook.max_attempts must be from 1 to 10")]
    Attempts,
    #[error("cannot build the webhook's HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl AlertWebhook {
    /// Checks the settings and builds the client.
    pub fn new(settings: WebhookSettings) -> Result<Self, WebhookError> {
        if !(settings.url.starts_with("http://") || settings.url.starts_with("https://")) {
            return Err(WebhookError::Url(settings.url));
        }
        if !(1..=10).contains(&settings.max_attempts) {
            return Err(WebhookError::Attempts);
        }
        let client = reqwest::Client::builder().timeout(settings.timeout).build()?;
        Ok(AlertWebhook { settings, client, in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)) })
    }

    /// Sends each alert in the background (in order per call), retrying with backoff.
    pub fn forward(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            ::metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "dropped").increment(alerts.len() as u64);
            warn!(
                dropped = alerts.len(),
                "alert webhook is backed up; messages dropped (they are on the alerts topic)"
            );
            return;
        };
        let webhook = self.clone();
        tokio::spawn(async move {
            for alert in alerts {
                webhook.deliver(&alert).await;
            }
            drop(permit);
        });
    }

    async fn deliver(&self, alert: &Alert) {
        let body = alertmanager_payload(alert, &self.settings.receiver);
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=self.settings.max_attempts {
            let outcome =
                self.client.post(&self.settings.url).json(&body).send().await.and_then(|r| r.error_for_status());
            match outcome {
                Ok(_) => {
                    ::metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "delivered").increment(1);
                    return;
                }
                Err(error) if attempt == self.settings.max_attempts => {
                    ::metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "failed").increment(1);
                    warn!(%error, alert = %alert.name, fingerprint = %alert.fingerprint, attempts = attempt,
                          "alert webhook failed; giving up on this message");
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
    }
}

/// One alert as an Alertmanager webhook notification (a group of one).
pub fn alertmanager_payload(alert: &Alert, receiver: &str) -> Value {
    let status = match alert.status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
    };
    let (labels, annotations) = labels_and_annotations(alert);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{fingerprint=\"{}\"}}", alert.fingerprint),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"fingerprint": alert.fingerprint},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(alert.started_at),
            // Alertmanager's zero time for "not ended".
            "endsAt": alert.ended_at.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc3339),
            "generatorURL": "",
            "fingerprint": alert.fingerprint,
        }],
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::records::Severity;

    #[test]
    fn a_firing_alert_becomes_an_alertmanager_v4_notification() {
        let alert = Alert {
            fingerprint: "0123456789abcdef".into(),
            name: "LatencyP95High".into(),
            severity: Severity::Warning,
            status: AlertStatus::Firing,
            labels: BTreeMap::from([("service".into(), "serve".into()), ("kind".into(), "portfolio.risk".into())]),
            observed_value: 231.5,
            threshold: 200.0,
            window: "5m".into(),
            started_at: 1_767_225_600_000,
            ended_at: None,
            summary: "p95 latency of serve portfolio.risk is 231.5 ms".into(),
            runbook_url: Some("https://runbooks.example/latency".into()),
            exemplars: vec!["r1".into(), "r2".into()],
            sent_at: 1_767_225_601_000,
        };
        let payload = alertmanager_payload(&alert, "pager");
        assert_eq!(payload["version"], "4");
        assert_eq!(payload["status"], "firing");
        assert_eq!(payload["receiver"], "pager");
        let first = &payload["alerts"][0];
        assert_eq!(first["labels"]["alertname"], "LatencyP95High");
        assert_eq!(first["labels"]["severity"], "warning");
        assert_eq!(first["labels"]["service"], "serve");
        assert_eq!(first["annotations"]["runbook_url"], "https://runbooks.example/latency");
        assert_eq!(first["annotations"]["exemplars"], "r1,r2");
        assert_eq!(first["startsAt"], "2026-01-01T00:00:00.000Z");
        assert_eq!(first["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(first["fingerprint"], "0123456789abcdef");
    }
}
