//! `frontier alerts`: the alerts topic, readable for a person on call.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use rdkafka::Message;
use serde_json::Value as Json;

use super::tail::{Reading, read_topic};
use crate::bus::SchemaCatalog;
use crate::bus::json::avro_to_json;
use crate::settings::Settings;

/// `frontier alerts` options.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Topic to read.
    #[arg(long, default_value = "frontier.alerts")]
    pub topic: String,
    #[command(flatten)]
    pub reading: Reading,
}

pub async fn alerts(settings: &Settings, args: AlertsArgs) -> anyhow::Result<ExitCode> {
    let catalog = SchemaCatalog::load_dir(&settings.paths.schemas)
        .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?;
    read_topic(settings, &args.topic, &args.reading, |message| {
        match catalog.decode(message.payload().unwrap_or_default()) {
            Ok(decoded) => println!("{}", render(&avro_to_json(&decoded.value))),
            Err(error) => eprintln!("offset {}: not an alert: {error}", message.offset()),
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds since the epoch as `2026-11-27T10:51:03Z`.
fn time(millis: &Json) -> String {
    match millis.as_u64() {
        Some(ms) => humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string(),
        None => "-".into(),
    }
}

/// Three lines per alert: what and where, how bad since when, where to look.
pub fn render(alert: &Json) -> String {
    let text = |key: &str| alert[key].as_str().unwrap_or_default().to_string();
    let status = text("status").to_uppercase();
    let labels = alert["labels"]
        .as_object()
        .map(|labels| {
            let mut pairs: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
            pairs.sort();
            pairs.join(" ")
        })
        .unwrap_or_default();
    let mut out = format!(
        "{}  {status:<8} {:<8} {}  {labels}\n    {}\n    observed {} vs threshold {} over {}; since {}",
        time(&alert["sent_at"]),
        text("severity"),
        text("name"),
        text("summary"),
        number(&alert["observed_value"]),
        number(&alert["threshold"]),
        text("window"),
        time(&alert["started_at"]),
    );
    if !alert["ended_at"].is_null() {
        out.push_str(&format!(", ended {}", time(&alert["ended_at"])));
    }
    let exemplars: Vec<&str> =
        alert["exemplars"].as_array().map(|e| e.iter().filter_map(Json::as_str).collect()).unwrap_or_default();
    if !exemplars.is_empty() {
        out.push_str(&format!("\n    slowest requests: {}", exemplars.join(", ")));
    }
    if let Some(runbook) = alert["runbook_url"].as_str() {
        out.push_str(&format!("\n    runbook: {runbook}"));
    }
    out.push_str(&format!("\n    fingerprint {}", text("fingerprint")));
    out
}

fn number(value: &Json) -> String {
    match value.as_f64() {
        Some(v) if v.abs() >= 100.0 || v == v.trunc() => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn an_alert_reads_as_three_lines_and_its_extras() {
        let alert = json!({
            "fingerprint": "ab12", "name": "latency-p95", "severity": "critical", "status": "firing",
            "labels": {"service": "serving", "kind": "market.volatility"}, "observed_value": 312.5,
            "threshold": 200.0, "window": "5m", "started_at": 1_795_000_000_000u64, "ended_at": null,
            "summary": "p95 latency above 200 ms", "runbook_url": "https://runbooks/latency",
            "exemplars": ["r-1", "r-2"], "sent_at": 1_795_000_060_000u64
        });
        let text = render(&alert);
        assert!(text.starts_with("2026-11-18T"), "{text}");
        assert!(text.contains("FIRING   critical latency-p95  kind=market.volatility service=serving"), "{text}");
        assert!(text.contains("observed 312 vs threshold 200 over 5m"), "{text}");
        assert!(text.contains("slowest requests: r-1, r-2"), "{text}");
        assert!(text.contains("runbook: https://runbooks/latency"), "{text}");
    }
}
