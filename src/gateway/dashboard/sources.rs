//! Where the dashboard's numbers come from: Prometheus' query API (every panel) and
//! Alertmanager's alert list (the firing alerts, from the SLA monitor and Prometheus' rules
//! alike). Neither is the gateway's to run: a failing source marks its panels, never the page.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::panels::{Query, series_name};

/// One line of a panel at the sample's time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesValue {
    /// The legend, labels filled in.
    pub name: String,
    /// The value (never NaN or infinite: those series are left out).
    pub value: f64,
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiringAlert {
    /// `alertname`.
    pub name: String,
    /// `severity`, or "none".
    pub severity: String,
    /// The `summary` annotation (else `description`, else empty).
    pub summary: String,
    /// Who raised it: the `service` or `job` label when present.
    pub source: String,
    /// When it started firing, ms since the epoch.
    pub since_ms: Option<i64>,
}

/// Why a source gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The request failed or timed out.
    #[error("{source_name}: {error}")]
    Request {
        /// prometheus or alertmanager.
        source_name: &'static str,
        /// Why.
        #[source]
        error: reqwest::Error,
    },
    /// It answered, but with an error.
    #[error("{source_name}: {message}")]
    Refused {
        /// prometheus or alertmanager.
        source_name: &'static str,
        /// Its words.
        message: String,
    },
}

/// The two HTTP APIs, with one client and timeout.
#[derive(Debug, Clone)]
pub struct MetricSources {
    http: reqwest::Client,
    prometheus: String,
    alertmanager: Option<String>,
}

#[derive(Deserialize)]
struct PromAnswer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<PromData>,
}

#[derive(Deserialize)]
struct PromData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<PromSeries>,
}

#[derive(Deserialize)]
struct PromSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// `[unix seconds, "value"]`.
    value: (f64, String),
}

#[derive(Deserialize)]
struct AmAlert {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: Option<String>,
}

impl MetricSources {
    /// Clients for `prometheus` (base URL) and, when set, `alertmanager`, each call bounded by
    /// `timeout`.
    pub fn new(prometheus: &str, alertmanager: Option<&str>, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        let base = |url: &str| url.trim_end_matches('/').to_owned();
        Ok(MetricSources { http, prometheus: base(prometheus), alertmanager: alertmanager.map(base) })
    }

    /// The series of one instant query, named by its legend, in a stable order.
    pub async fn query(&self, query: &Query) -> Result<Vec<SeriesValue>, SourceError> {
        let request = |error| SourceError::Request { source_name: "prometheus", error };
        let answer: PromAnswer = self
            .http
            .get(format!("{}/api/v1/query", self.prometheus))
            .query(&[("query", query.expr)])
            .send()
            .await
            .map_err(request)?
            .json()
            .await
            .map_err(request)?;
        if answer.status != "success" {
            let message = answer.error.unwrap_or_else(|| format!("status {}", answer.status));
            return Err(SourceError::Refused { source_name: "prometheus", message });
        }
        let Some(data) = answer.data else { return Ok(Vec::new()) };
        if data.result_type != "vector" {
            let message = format!("`{}` is a {}, not an instant vector", query.expr, data.result_type);
            return Err(SourceError::Refused { source_name: "prometheus", message });
        }
        let mut series: Vec<SeriesValue> = data
            .result
            .into_iter()
            .filter_map(|series| {
                let value: f64 = series.value.1.parse().ok()?;
                value.is_finite().then(|| SeriesValue {
                    name: series_name(query.legend, |label| series.metric.get(label).cloned()),
                    value,
                })
            })
            .collect();
        series.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(series)
    }

    /// The alerts firing now (active, neither silenced nor inhibited), oldest first; none when
    /// no Alertmanager is configured.
    pub async fn firing_alerts(&self) -> Result<Vec<FiringAlert>, SourceError> {
        let Some(alertmanager) = &self.alertmanager else { return Ok(Vec::new()) };
        let request = |error| SourceError::Request { source_name: "alertmanager", error };
        let alerts: Vec<AmAlert> = self
            .http
            .get(format!("{alertmanager}/api/v2/alerts"))
            .query(&[("active", "true"), ("silenced", "false"), ("inhibited", "false")])
            .send()
            .await
            .map_err(request)?
            .error_for_status()
            .map_err(request)?
            .json()
            .await
            .map_err(request)?;
        let mut firing: Vec<FiringAlert> = alerts.into_iter().map(FiringAlert::from).collect();
        firing.sort_by_key(|alert| alert.since_ms.unwrap_or(i64::MAX));
        Ok(firing)
    }
}

impl From<AmAlert> for FiringAlert {
    fn from(alert: AmAlert) -> Self {
        let label = |name: &str| alert.labels.get(name).cloned();
        FiringAlert {
            name: label("alertname").unwrap_or_else(|| "unnamed".into()),
            severity: label("severity").unwrap_or_else(|| "none".into()),
            summary: alert
                .annotations
                .get("summary")
                .or_else(|| alert.annotations.get("description"))
                .cloned()
                .unwrap_or_default(),
            source: label("service").or_else(|| label("job")).unwrap_or_default(),
            since_ms: alert.starts_at.as_deref().and_then(epoch_ms),
        }
    }
}

/// Milliseconds since the epoch of an RFC 3339 time as Alertmanager writes it.
fn epoch_ms(rfc3339: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(rfc3339).ok().map(crate::clock::epoch_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alertmanager_alert_reads_its_name_severity_and_start() {
        let alert: AmAlert = serde_json::from_str(
            r#"{"labels": {"alertname": "LatencyP95", "severity": "page", "service": "serve"},
                "annotations": {"summary": "p95 over 200 ms"}, "startsAt": "2026-12-05T12:00:00.5Z"}"#,
        )
        .unwrap();
        let firing = FiringAlert::from(alert);
        assert_eq!(firing.name, "LatencyP95");
        assert_eq!(firing.severity, "page");
        assert_eq!(firing.source, "serve");
        assert_eq!(firing.since_ms, Some(1_796_472_000_500));
    }
}
