//! Start-up validation of [`SlaConfig`]: everything serde cannot check, reported with the key to
//! fix (`rules[1].threshold`, relative to the SLA section).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::config::{SignalRule, SlaConfig, SloConfig, SloIndicator, ThresholdRule};
use super::template::SummaryTemplate;

/// Why the SLA configuration cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlaConfigError {
    /// A value is out of range or inconsistent; `key` is its path within the SLA section.
    #[error("invalid SLA configuration at `{key}`: {message}")]
    Invalid {
        /// Path of the offending key, e.g. `rules[0].hysteresis`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl SlaConfigError {
    /// Path of the offending key.
    pub fn key(&self) -> &str {
        match self {
            SlaConfigError::Invalid { key, .. } => key,
        }
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> SlaConfigError {
    SlaConfigError::Invalid { key: key.into(), message: message.into() }
}

/// Labels the monitor sets itself; a rule may not override them.
const RESERVED_LABELS: [&str; 3] = ["service", "kind", "severity"];

/// Labels the monitor sets on signal alerts besides those.
const SIGNAL_LABELS: [&str; 2] = ["group", "instance"];

/// Longest SLO window: 7 days of per-minute counters is ~80 KB per series and SLO.
pub(crate) const MAX_SLO_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

impl SlaConfig {
    /// Checks what the types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), SlaConfigError> {
        if self.allowed_lateness > Duration::from_secs(3600) {
            return Err(invalid("allowed_lateness", "must be at most 1h"));
        }
        if self.max_clock_skew.is_zero() || self.max_clock_skew > Duration::from_secs(3600) {
            return Err(invalid("max_clock_skew", "must be greater than zero and at most 1h"));
        }
        if self.max_latency < Duration::from_millis(1) || self.max_latency > Duration::from_secs(24 * 3600) {
            return Err(invalid("max_latency", "must be between 1ms and 24h"));
        }
        if self.duplicate_window > Duration::from_secs(3600) {
            return Err(invalid("duplicate_window", "must be at most 1h"));
        }
        if self.renotify_interval < Duration::from_secs(1) {
            return Err(invalid("renotify_interval", "must be at least 1s"));
        }
        if self.exemplars > 100 {
            return Err(invalid("exemplars", "must be at most 100"));
        }
        if self.max_series == 0 {
            return Err(invalid("max_series", "must be at least 1"));
        }
        if self.max_series_per_service == 0 {
            return Err(invalid("max_series_per_service", "must be at least 1"));
        }
        if !(8..=4096).contains(&self.max_label_bytes) {
            return Err(invalid("max_label_bytes", "must be from 8 to 4096"));
        }
        let mut names = HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let key = format!("rules[{i}]");
            validate_rule(&key, rule)?;
            if !names.insert(rule.name.as_str()) {
                return Err(invalid(format!("{key}.name"), format!("`{}` is used twice", rule.name)));
            }
        }
        if self.signal_stale_after < Duration::from_secs(1) {
            return Err(invalid("signal_stale_after", "must be at least 1s"));
        }
        let window = self.autoscale_action_window;
        if !whole_minutes_up_to(window, Duration::from_secs(24 * 3600)) {
            return Err(invalid("autoscale_action_window", "must be whole minutes, from 1m to 24h"));
        }
        if !whole_minutes_up_to(self.dead_letter_window, Duration::from_secs(24 * 3600)) {
            return Err(invalid("dead_letter_window", "must be whole minutes, from 1m to 24h"));
        }
        for (i, signal) in self.signals.iter().enumerate() {
            let key = format!("signals[{i}]");
            validate_signal(&key, signal)?;
            if !names.insert(signal.name.as_str()) {
                return Err(invalid(format!("{key}.name"), format!("`{}` is used twice", signal.name)));
            }
        }
        for (i, slo) in self.slos.iter().enumerate() {
            let key = format!("slos[{i}]");
            validate_slo(&key, slo)?;
            if !names.insert(slo.name.as_str()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("`{}` is already the name of a rule or SLO", slo.name),
                ));
            }
        }
        Ok(())
    }
}

fn validate_rule(key: &str, rule: &ThresholdRule) -> Result<(), SlaConfigError> {
    validate_name(key, &rule.name)?;
    if !rule.threshold.is_finite() {
        return Err(invalid(format!("{key}.threshold"), "must be a finite number"));
    }
    validate_hysteresis(key, rule.hysteresis)?;
    if rule.short_window.is_some_and(|short| short >= rule.window) {
        return Err(invalid(format!("{key}.short_window"), "must be shorter than window"));
    }
    validate_common(key, &rule.summary, false, rule.runbook_url.as_deref(), &rule.labels)
}

fn validate_signal(key: &str, rule: &SignalRule) -> Result<(), SlaConfigError> {
    validate_name(key, &rule.name)?;
    if !rule.threshold.is_finite() {
        return Err(invalid(format!("{key}.threshold"), "must be a finite number"));
    }
    validate_hysteresis(key, rule.hysteresis)?;
    validate_common(key, &rule.summary, false, rule.runbook_url.as_deref(), &rule.labels)?;
    for name in SIGNAL_LABELS {
        if rule.labels.contains_key(name) {
            return Err(invalid(format!("{key}.labels.{name}"), "is set by the monitor itself"));
        }
    }
    Ok(())
}

fn validate_slo(key: &str, slo: &SloConfig) -> Result<(), SlaConfigError> {
    validate_name(key, &slo.name)?;
    if !(slo.objective > 0.0 && slo.objective < 1.0) {
        return Err(invalid(format!("{key}.objective"), "must be strictly between 0 and 1 (e.g. 0.999)"));
    }
    match (slo.sli, slo.latency_threshold_ms) {
        (SloIndicator::Latency, None) => {
            return Err(invalid(format!("{key}.latency_threshold_ms"), "is required for a latency SLO"));
        }
        (SloIndicator::Latency, Some(ms)) if !(ms.is_finite() && ms > 0.0) => {
            return Err(invalid(format!("{key}.latency_threshold_ms"), "must be a positive number of milliseconds"));
        }
        (SloIndicator::Availability, Some(_)) => {
            return Err(invalid(format!("{key}.latency_threshold_ms"), "only applies to latency SLOs"));
        }
        _ => {}
    }
    validate_hysteresis(key, slo.hysteresis)?;
    if slo.alerts.is_empty() {
        return Err(invalid(format!("{key}.alerts"), "must hold at least one window pair"));
    }
    for (i, pair) in slo.alerts.iter().enumerate() {
        let pair_key = format!("{key}.alerts[{i}]");
        if !(pair.burn_rate.is_finite() && pair.burn_rate > 0.0) {
            return Err(invalid(format!("{pair_key}.burn_rate"), "must be a positive number"));
        }
        for (field, window) in [("long_window", pair.long_window), ("short_window", pair.short_window)] {
            if !whole_minutes_up_to(window, MAX_SLO_WINDOW) {
                return Err(invalid(format!("{pair_key}.{field}"), "must be whole minutes, from 1m to 7d"));
            }
        }
        if pair.short_window >= pair.long_window {
            return Err(invalid(format!("{pair_key}.short_window"), "must be shorter than long_window"));
        }
    }
    validate_common(key, &slo.summary, true, slo.runbook_url.as_deref(), &slo.labels)
}

/// Whether `window` is a whole number of minutes, from 1m up to `max`.
fn whole_minutes_up_to(window: Duration, max: Duration) -> bool {
    window >= Duration::from_secs(60) && window <= max && window.as_millis().is_multiple_of(60_000)
}

fn validate_name(key: &str, name: &str) -> Result<(), SlaConfigError> {
    if name.trim().is_empty() {
        return Err(invalid(format!("{key}.name"), "must not be empty"));
    }
    Ok(())
}

fn validate_hysteresis(key: &str, hysteresis: f64) -> Result<(), SlaConfigError> {
    if !(0.0..1.0).contains(&hysteresis) {
        return Err(invalid(format!("{key}.hysteresis"), "must be a fraction from 0 up to (not including) 1"));
    }
    Ok(())
}

fn validate_common(
    key: &str,
    summary: &str,
    for_slo: bool,
    runbook_url: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> Result<(), SlaConfigError> {
    SummaryTemplate::parse(summary, for_slo).map_err(|message| invalid(format!("{key}.summary"), message))?;
    if let Some(url) = runbook_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(invalid(format!("{key}.runbook_url"), "must be an http:// or https:// URL"));
    }
    for name in labels.keys() {
        if name.trim().is_empty() {
            return Err(invalid(format!("{key}.labels"), "label names must not be empty"));
        }
        if RESERVED_LABELS.contains(&name.as_str()) {
            return Err(invalid(format!("{key}.labels.{name}"), "is set by the monitor itself"));
        }
    }
    Ok(())
}
