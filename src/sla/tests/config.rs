//! The configuration: documented defaults, unknown keys, and errors that name the key.

use crate::sla::{SlaConfig, SlaConfigError, SlaMonitor};

/// The defaults, written out as an operator would (kept in sync by the test below).
pub const DEFAULTS_TOML: &str = r#"
allowed_lateness = "2m"
max_clock_skew = "5m"
max_latency = "1h"
renotify_interval = "5m"
exemplars = 5
max_series = 500
signal_stale_after = "1m"
autoscale_action_window = "30m"
dead_letter_window = "5m"

[[rules]]
name = "LatencyP95High"
sli = "latency_p95"
comparison = "above"
threshold = 200.0
window = "5m"
short_window = "30s"
for = "5s"
hysteresis = 0.05
min_events = 100
severity = "warning"
summary = "{sli} of {service} {kind} is {value}, {comparison} {threshold} over {window}"

[[rules]]
name = "ErrorRateHigh"
sli = "error_rate"
comparison = "above"
threshold = 0.01
window = "30s"
for = "5s"

[[rules]]
name = "CacheHitRatioLow"
sli = "cache_hit_ratio"
comparison = "below"
threshold = 0.8
window = "1m"
short_window = "30s"
for = "5s"

[[rules]]
name = "DbQueryTimeouts"
source = "queries"
sli = "timeout_rate"
comparison = "above"
threshold = 0.01
window = "1m"
for = "5s"
min_events = 20
summary = "{service} statements on {kind} time out at {value}, {comparison} {threshold} over {window}"

[[slos]]
name = "AvailabilitySLO"
sli = "availability"
objective = 0.999
min_events = 100
hysteresis = 0.05
for = "0s"
alerts = [
  { severity = "critical", burn_rate = 14.4, long_window = "1h", short_window = "5m" },
  { severity = "critical", burn_rate = 6.0, long_window = "6h", short_window = "30m" },
  { severity = "ticket", burn_rate = 1.0, long_window = "3d", short_window = "6h" },
]

[[slos]]
name = "LatencySLO"
sli = "latency"
objective = 0.95
latency_threshold_ms = 200.0

[[signals]]
name = "ConsumerLagHigh"
signal = "consumer_lag"
comparison = "above"
threshold = 10000.0
for = "5m"
hysteresis = 0.05
severity = "warning"
summary = "{sli} of {subject} is {value}, {comparison} {threshold}"

[[signals]]
name = "MemoryExhaustion"
signal = "memory_utilization"
comparison = "above"
threshold = 0.9
for = "5m"
severity = "critical"

[[signals]]
name = "FileDescriptorExhaustion"
signal = "fd_utilization"
comparison = "above"
threshold = 0.9
for = "5m"
severity = "critical"

[[signals]]
name = "CpuSaturated"
signal = "cpu_utilization"
comparison = "above"
threshold = 0.95
for = "10m"

[[signals]]
name = "AutoscaleAtMaxInstances"
signal = "autoscale_saturation"
comparison = "above"
threshold = 0.5
for = "5m"
severity = "critical"
summary = "{subject} is at its maximum instances and still falling behind"

[[signals]]
name = "AutoscaleFlapping"
signal = "autoscale_actions"
comparison = "above"
threshold = 5.0
for = "0s"
hysteresis = 0.0
summary = "{subject} was scaled {value} times in {window}, {comparison} {threshold}"

[[signals]]
name = "AutoscaleGroupStuck"
signal = "autoscale_stuck"
comparison = "above"
threshold = 0.5
for = "1m"
severity = "critical"
summary = "{subject} is stuck (STALL or STOP: messages wait and no offset moves); the autoscaler holds its size"

[[signals]]
name = "SlowStatements"
signal = "slow_statements"
comparison = "above"
threshold = 0.5
for = "0s"
hysteresis = 0.0
summary = "{subject} has {value} slow statement(s) in the query analyzer's latest window"

[[signals]]
name = "MessagesDeadLettered"
signal = "dead_letters"
comparison = "above"
threshold = 0.5
for = "0s"
hysteresis = 0.0
summary = "{subject} dead-lettered {value} message(s) in {window}: they are on the dead-letter topic with their reasons"
"#;

#[test]
fn the_documented_toml_is_exactly_the_built_in_defaults() {
    let parsed: SlaConfig = toml::from_str(DEFAULTS_TOML).unwrap();
    assert_eq!(parsed, SlaConfig::default());
    let empty: SlaConfig = toml::from_str("").unwrap();
    assert_eq!(empty, SlaConfig::default());
    assert!(SlaConfig::default().validate().is_ok());
}

#[test]
fn an_unknown_key_is_rejected_naming_it() {
    for text in [
        "alowed_lateness = \"2m\"",
        "[[rules]]\nname = \"X\"\nsli = \"error_rate\"\ncomparison = \"above\"\nthreshold = 0.1\nwindow = \"5m\"\nfour = \"1m\"",
    ] {
        let error = toml::from_str::<SlaConfig>(text).unwrap_err().to_string();
        assert!(error.contains("unknown field"), "{error}");
    }
}

#[test]
fn an_unsupported_window_is_rejected() {
    let text =
        "[[rules]]\nname = \"X\"\nsli = \"error_rate\"\ncomparison = \"above\"\nthreshold = 0.1\nwindow = \"2m\"";
    let error = toml::from_str::<SlaConfig>(text).unwrap_err().to_string();
    assert!(error.contains("1m") && error.contains("6h"), "{error}");
}

/// Breaks one value of a valid configuration.
type Breakage = fn(&mut SlaConfig);

#[test]
fn invalid_values_are_reported_with_their_key() {
    let cases: [(Breakage, &str); 12] = [
        (|c| c.allowed_lateness = std::time::Duration::from_secs(7200), "allowed_lateness"),
        (|c| c.max_series = 0, "max_series"),
        (|c| c.rules[1].threshold = f64::NAN, "rules[1].threshold"),
        (|c| c.rules[0].hysteresis = 1.5, "rules[0].hysteresis"),
        (|c| c.rules[2].name = "LatencyP95High".into(), "rules[2].name"),
        (|c| c.rules[0].summary = "{valeu} is bad".into(), "rules[0].summary"),
        (|c| c.rules[0].summary = "{objective}".into(), "rules[0].summary"),
        (|c| c.rules[0].runbook_url = Some("wiki/latency".into()), "rules[0].runbook_url"),
        (|c| _ = c.rules[0].labels.insert("service".into(), "x".into()), "rules[0].labels.service"),
        (|c| c.slos[0].objective = 1.0, "slos[0].objective"),
        (|c| c.slos[1].latency_threshold_ms = None, "slos[1].latency_threshold_ms"),
        (|c| c.slos[0].alerts[0].short_window = std::time::Duration::from_secs(7200), "slos[0].alerts[0].short_window"),
    ];
    for (break_it, key) in cases {
        let mut config = SlaConfig::default();
        break_it(&mut config);
        let error = SlaMonitor::new(config).unwrap_err();
        assert_eq!(error.key(), key, "{error}");
        assert!(matches!(error, SlaConfigError::Invalid { .. }));
        assert!(error.to_string().contains(key));
    }
}
