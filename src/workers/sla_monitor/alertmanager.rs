//! Alerts to a Prometheus Alertmanager through its API (v2, `POST /api/v2/alerts`), the way
//! Prometheus itself sends them: every firing alert is re-sent each `resend_interval` with an
//! `endsAt` a few intervals ahead (so Alertmanager resolves it on its own if the monitor dies),
//! and a resolved one is sent once with its `endsAt`. Alertmanager then groups, silences,
//! inhibits and routes them to the team's receivers.
//!
//! `frontier.alerts` stays the record: a task of its own does the posting, the consumer loop
//! hands it transitions without waiting, and a dead Alertmanager costs warnings and a counter,
//! never a held-up monitor.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::alert_json::{labels_and_annotations, rfc3339};
use crate::records::{Alert, AlertStatus};

/// Metric: posts to Alertmanager by outcome (`delivered`, `failed`), and alert messages
/// `dropped` when the poster falls behind.
pub const ALERTMANAGER_POSTS: &str = "frontier_sla_alertmanager_posts_total";

/// `[workers.sla.alertmanager]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSettings {
    /// Base URL of the Alertmanager (http or https), e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// Per request.
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    /// How often every firing alert is sent again, as Prometheus's `resend_delay`. Each carries
    /// an `endsAt` four intervals ahead: Alertmanager resolves it by itself once the monitor has
    /// been silent that long. 1s to 1h.
    #[serde(with = "humantime_serde", default = "default_resend")]
    pub resend_interval: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_resend() -> Duration {
    Duration::from_secs(60)
}

/// Why the Alertmanager client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    #[error("workers.sla.alertmanager.url must be an http:// or https:// URL, not {0:?}")]
    Url(String),
    #[error("workers.sla.alertmanager.resend_interval must be from 1s to 1h")]
    Resend,
    #[error("cannot build the Alertmanager HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Alert messages waiting for the poster at most; beyond it they are dropped and counted (the
/// next resend still carries every firing alert).
const QUEUE: usize = 1024;
/// Resolved alerts kept for sending while Alertmanager is unreachable.
const MAX_UNSENT_RESOLVED: usize = 10_000;
/// How soon a failed post is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Hands alert messages to the poster task.
#[derive(Debug, Clone)]
pub struct AlertmanagerClient {
    sender: mpsc::Sender<Vec<Alert>>,
}

impl AlertmanagerClient {
    /// Checks the settings and starts the poster, which knows `firing` (the alerts restored at
    /// start) from the first post. It stops when every client is dropped.
    pub fn start(settings: AlertmanagerSettings, firing: Vec<Alert>) -> Result<Self, AlertmanagerError> {
        if !(settings.url.starts_with("http://") || settings.url.starts_with("https://")) {
            return Err(AlertmanagerError::Url(settings.url));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&settings.resend_interval) {
            return Err(AlertmanagerError::Resend);
        }
        let client = reqwest::Client::builder().timeout(settings.timeout).build()?;
        let endpoint = format!("{}/api/v2/alerts", settings.url.trim_end_matches('/'));
        let (sender, receiver) = mpsc::channel(QUEUE);
        let poster = Poster {
            client,
            endpoint,
            resend: settings.resend_interval,
            firing: firing.into_iter().map(|alert| (alert.fingerprint.clone(), alert)).collect(),
            resolved: VecDeque::new(),
        };
        tokio::spawn(poster.run(receiver));
        Ok(AlertmanagerClient { sender })
    }

    /// Queues alert messages (fired, re-notified, resolved) for the next post; never waits.
    pub fn forward(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let count = alerts.len() as u64;
        if self.sender.try_send(alerts).is_err() {
            ::metrics::counter!(ALERTMANAGER_POSTS, "outcome" => "dropped").increment(count);
            warn!(
                dropped = count,
                "the Alertmanager poster is behind; messages dropped (they are on the alerts topic)"
            );
        }
    }
}

/// The task that owns what Alertmanager should know and posts it.
struct Poster {
    client: reqwest::Client,
    endpoint: String,
    resend: Duration,
    /// The latest message of every firing alert, by fingerprint.
    firing: HashMap<String, Alert>,
    /// Resolutions not yet accepted by Alertmanager.
    resolved: VecDeque<Alert>,
}

impl Poster {
    async fn run(mut self, mut receiver: mpsc::Receiver<Vec<Alert>>) {
        let mut next_post = Instant::now();
        loop {
            tokio::select! {
                received = receiver.recv() => match received {
                    Some(alerts) => {
                        self.take(alerts);
                        // Take whatever else is queued, so a burst is one post.
                        while let Ok(more) = receiver.try_recv() {
                            self.take(more);
                        }
                        next_post = Instant::now();
                    }
                    None => return,
                },
                () = tokio::time::sleep_until(next_post) => {
                    next_post = Instant::now() + if self.post().await { self.resend } else { RETRY_AFTER };
                }
            }
        }
    }

    fn take(&mut self, alerts: Vec<Alert>) {
        for alert in alerts {
            match alert.status {
                AlertStatus::Firing => {
                    self.firing.insert(alert.fingerprint.clone(), alert);
                }
                AlertStatus::Resolved => {
                    self.firing.remove(&alert.fingerprint);
                    if self.resolved.len() >= MAX_UNSENT_RESOLVED {
                        self.resolved.pop_front();
                        ::metrics::counter!(ALERTMANAGER_POSTS, "outcome" => "dropped").increment(1);
                    }
                    self.resolved.push_back(alert);
                }
            }
        }
    }

    /// Posts every firing alert and every unsent resolution; whether Alertmanager took them.
    async fn post(&mut self) -> bool {
        if self.firing.is_empty() && self.resolved.is_empty() {
            return true;
        }
        let now_ms = crate::clock::epoch_millis(SystemTime::now());
        let valid_ms = i64::try_from(4 * self.resend.as_millis()).unwrap_or(i64::MAX);
        let body: Vec<Value> = self
            .firing
            .values()
            .map(|alert| postable_alert(alert, now_ms.saturating_add(valid_ms)))
            .chain(self.resolved.iter().map(|alert| postable_alert(alert, alert.ended_at.unwrap_or(now_ms))))
            .collect();
        let outcome = self.client.post(&self.endpoint).json(&body).send().await.and_then(|r| r.error_for_status());
        match outcome {
            Ok(_) => {
                ::metrics::counter!(ALERTMANAGER_POSTS, "outcome" => "delivered").increment(1);
                debug!(alerts = body.len(), "alerts posted to Alertmanager");
                self.resolved.clear();
                true
            }
            Err(error) => {
                ::metrics::counter!(ALERTMANAGER_POSTS, "outcome" => "failed").increment(1);
                warn!(%error, endpoint = %self.endpoint, alerts = body.len(),
                      "cannot post alerts to Alertmanager; trying again shortly");
                false
            }
        }
    }
}

/// One alert as Alertmanager's API v2 takes it (`postableAlert`): labels identify it (the same
/// set our fingerprint is made of), annotations describe it, `endsAt` says until when it holds.
pub fn postable_alert(alert: &Alert, ends_at_ms: i64) -> Value {
    let (labels, mut annotations) = labels_and_annotations(alert);
    annotations.insert("fingerprint".into(), json!(alert.fingerprint));
    json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(alert.started_at),
        "endsAt": rfc3339(ends_at_ms),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::records::Severity;

    fn alert(status: AlertStatus) -> Alert {
        Alert {
            fingerprint: "0123456789abcdef".into(),
            name: "ErrorRateHigh".into(),
            severity: Severity::Warning,
            status,
            labels: BTreeMap::from([("service".into(), "serve".into()), ("kind".into(), "option.price".into())]),
            observed_value: 0.05,
            threshold: 0.01,
            window: "1m".into(),
            started_at: 1_767_225_600_000,
            ended_at: (status == AlertStatus::Resolved).then_some(1_767_225_660_000),
            summary: "error rate of serve option.price is 5 %".into(),
            runbook_url: None,
            exemplars: vec!["r1".into()],
            sent_at: 1_767_225_601_000,
        }
    }

    #[test]
    fn an_alert_becomes_a_postable_alert_labelled_as_its_fingerprint_is_made() {
        let posted = postable_alert(&alert(AlertStatus::Firing), 1_767_225_840_000);
        assert_eq!(
            posted["labels"],
            json!({"alertname": "ErrorRateHigh", "severity": "warning", "service": "serve", "kind": "option.price"})
        );
        assert_eq!(posted["startsAt"], "2026-01-01T00:00:00.000Z");
        assert_eq!(posted["endsAt"], "2026-01-01T00:04:00.000Z");
        assert_eq!(posted["annotations"]["exemplars"], "r1");
        assert!(posted.get("generatorURL").is_none(), "an empty generatorURL is refused by Alertmanager");
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let settings = |url: &str, resend| AlertmanagerSettings {
            url: url.into(),
            timeout: default_timeout(),
            resend_interval: resend,
        };
        assert!(matches!(
            AlertmanagerClient::start(settings("127.0.0.1:9093", default_resend()), Vec::new()),
            Err(AlertmanagerError::Url(_))
        ));
        assert!(matches!(
            AlertmanagerClient::start(settings("http://127.0.0.1:9093", Duration::ZERO), Vec::new()),
            Err(AlertmanagerError::Resend)
        ));
    }
}
