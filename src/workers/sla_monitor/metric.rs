//! Metric names of the SLA monitor.

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
