//! The SLA monitor's alerts in a real Prometheus Alertmanager (the local stack's, on
//! 127.0.0.1:9093, started by `ops/stack up`): they arrive through its API v2, are grouped by
//! its route, and resolve when the monitor says so. Alertmanager is the independent judge of
//! what we post.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::START_HINT;
use frontier::clock::now_millis;
use frontier::records::{Alert, AlertStatus, Severity};
use frontier::workers::sla_monitor::alertmanager::{AlertmanagerClient, AlertmanagerSettings};
use serde_json::Value;

const ALERTMANAGER: &str = "http://127.0.0.1:9093";

async fn require_alertmanager() {
    let ready = reqwest::get(format!("{ALERTMANAGER}/-/ready")).await;
    if !ready.is_ok_and(|r| r.status().is_success()) {
        panic!("Alertmanager is not answering at {ALERTMANAGER}: {START_HINT}");
    }
}

/// What Alertmanager holds for `service` at `path` (`alerts` or `alerts/groups`), polled until
/// `done` says so or 30 s passed.
async fn poll(path: &str, service: &str, done: impl Fn(&Value) -> bool) -> Value {
    // `filter=service="<service>"`, encoded (test service names are [a-z0-9-]).
    let url = format!("{ALERTMANAGER}/api/v2/{path}?filter=service%3D%22{service}%22");
    let started = Instant::now();
    loop {
        let found: Value =
            reqwest::Client::new().get(&url).send().await.expect("Alertmanager answers").json().await.expect("JSON");
        if done(&found) || started.elapsed() > Duration::from_secs(30) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An SLO alert on `service`, as the monitor emits it.
fn slo_alert(service: &str, severity: Severity, status: AlertStatus) -> Alert {
    let started_at = now_millis() - 60_000;
    Alert {
        fingerprint: format!("{service}-{}", severity.as_str()),
        name: "AvailabilitySLO".into(),
        severity,
        status,
        labels: BTreeMap::from([
            ("service".into(), service.into()),
            ("kind".into(), "option.price".into()),
            ("severity".into(), severity.as_str().into()),
        ]),
        observed_value: 20.0,
        threshold: 14.4,
        window: "1h".into(),
        started_at,
        ended_at: (status == AlertStatus::Resolved).then(now_millis),
        summary: format!("AvailabilitySLO: {service} option.price burns its error budget"),
        runbook_url: Some("https://runbooks.example/availability".into()),
        exemplars: vec!["req-1".into()],
        sent_at: now_millis(),
    }
}

#[tokio::test]
async fn alerts_fire_group_and_resolve_in_a_real_alertmanager() {
    require_alertmanager().await;
    let service = common::unique("am").replace('.', "-");
    let settings = AlertmanagerSettings {
        url: ALERTMANAGER.into(),
        timeout: Duration::from_secs(5),
        resend_interval: Duration::from_secs(60),
    };
    let client = AlertmanagerClient::start(settings, Vec::new()).unwrap();
    // The page and the ticket of one SLO on one series: two alerts, one group.
    let severities = [Severity::Critical, Severity::Ticket];
    client.forward(severities.iter().map(|s| slo_alert(&service, *s, AlertStatus::Firing)).collect());

    let groups = poll("alerts/groups", &service, |g| g.as_array().is_some_and(|g| !g.is_empty())).await;
    let groups = groups.as_array().expect("a list of groups");
    assert_eq!(groups.len(), 1, "grouped by alertname, service and kind: {groups:#?}");
    assert_eq!(groups[0]["labels"]["alertname"], "AvailabilitySLO");
    let alerts = groups[0]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    for alert in alerts {
        assert_eq!(alert["status"]["state"], "active", "{alert}");
        assert_eq!(alert["annotations"]["runbook_url"], "https://runbooks.example/availability");
    }

    client.forward(severities.iter().map(|s| slo_alert(&service, *s, AlertStatus::Resolved)).collect());
    let left = poll("alerts", &service, |a| a.as_array().is_some_and(Vec::is_empty)).await;
    assert_eq!(left, Value::Array(Vec::new()), "resolved alerts are no longer active");
}
