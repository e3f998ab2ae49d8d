//! The wire contract: `Alert` is `schemas/alert.avsc`, `RequestCompleted` is
//! `schemas/request_completed.avsc`, and fingerprints are stable.

use std::collections::BTreeMap;

use apache_avro::types::Value;

use super::support::*;
use crate::bus::{KnownSchema, SchemaCatalog};
use crate::records::{Alert, AlertStatus, CacheLayer, RequestCompleted, RequestStatus, Severity};
use crate::sla::{Comparison, Sli, SliWindow, ThresholdRule, fingerprint};

fn load(file: &str) -> SchemaCatalog {
    let path = format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut catalog = SchemaCatalog::default();
    catalog.add_current(KnownSchema::parse(file, &text).unwrap());
    catalog
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn sample_alert() -> Alert {
    let labels = labels(&[("service", SERVICE), ("kind", KIND), ("team", "risk")]);
    Alert {
        fingerprint: fingerprint("LatencyP95High", &labels),
        name: "LatencyP95High".into(),
        severity: Severity::Critical,
        status: AlertStatus::Resolved,
        labels,
        observed_value: 231.5,
        threshold: 200.0,
        window: "5m".into(),
        started_at: T0,
        ended_at: Some(T0 + 7 * MINUTE),
        summary: "p95 latency of analysis-worker portfolio.risk is 231.5 ms, above 200.0 ms over 5m".into(),
        runbook_url: Some("https://runbooks.example/latency".into()),
        exemplars: vec!["req-1".into(), "req-2".into()],
        sent_at: T0 + 7 * MINUTE + 300,
    }
}

#[test]
fn an_alert_encodes_with_the_alert_schema_and_decodes_back_unchanged() {
    let catalog = load("alert.avsc");
    let schema = catalog.by_file("alert.avsc").unwrap();
    for alert in
        [sample_alert(), Alert { status: AlertStatus::Firing, ended_at: None, runbook_url: None, ..sample_alert() }]
    {
        let bytes = SchemaCatalog::encode(&schema, &alert).unwrap();
        let decoded = catalog.decode(&bytes).unwrap();
        let back: Alert = apache_avro::from_value(&decoded.value).unwrap();
        assert_eq!(back, alert);
    }
}

#[test]
fn alert_enums_are_written_as_the_schemas_lowercase_symbols() {
    let catalog = load("alert.avsc");
    let schema = catalog.by_file("alert.avsc").unwrap();
    let value = apache_avro::to_value(sample_alert()).unwrap().resolve(&schema.schema).unwrap();
    let Value::Record(fields) = value else { panic!("an Alert is a record") };
    let field = |name: &str| fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.clone());
    assert_eq!(field("severity"), Some(Value::Enum(0, "critical".into())));
    assert_eq!(field("status"), Some(Value::Enum(1, "resolved".into())));
}

#[test]
fn every_message_the_monitor_produces_fits_the_alert_schema() {
    let catalog = load("alert.avsc");
    let schema = catalog.by_file("alert.avsc").unwrap();
    let rule = ThresholdRule {
        for_duration: std::time::Duration::ZERO,
        labels: labels(&[("team", "risk")]),
        ..ThresholdRule::new("LatencyP95High", Sli::LatencyP95, Comparison::Above, 200.0, SliWindow::OneMinute)
    };
    let mut scenario = Scenario::new(crate::sla::SlaConfig { rules: vec![rule], ..crate::sla::SlaConfig::default() });
    scenario.run(8 * MINUTE, 20, |_| Shape::ok(450.0).with_status(RequestStatus::Error));
    scenario.run(4 * MINUTE, 20, |_| Shape::ok(50.0));
    assert!(scenario.transitions.len() >= 3, "{:#?}", scenario.transitions);
    for transition in &scenario.transitions {
        let bytes = SchemaCatalog::encode(&schema, &transition.alert).unwrap();
        let back: Alert = apache_avro::from_value(&catalog.decode(&bytes).unwrap().value).unwrap();
        assert_eq!(back.fingerprint.as_bytes(), transition.key());
    }
}

#[test]
fn a_request_completed_decodes_from_its_schema() {
    let catalog = load("request_completed.avsc");
    let schema = catalog.by_file("request_completed.avsc").unwrap();
    let event = RequestCompleted {
        cache_layer: CacheLayer::Redis,
        instance: Some("pod-1".into()),
        ..event("req-1", 12.5, RequestStatus::Timeout, T0)
    };
    let bytes = SchemaCatalog::encode(&schema, &event).unwrap();
    let back: RequestCompleted = apache_avro::from_value(&catalog.decode(&bytes).unwrap().value).unwrap();
    assert_eq!(back, event);
}

#[test]
fn a_fingerprint_is_a_stable_hex_hash_of_the_name_and_the_sorted_labels() {
    let forward = labels(&[("service", SERVICE), ("kind", KIND)]);
    let reverse = labels(&[("kind", KIND), ("service", SERVICE)]);
    let id = fingerprint("LatencyP95High", &forward);
    // Pinned: the same in every process and release, or restored alerts would not match.
    assert_eq!(id, "7236b7e72caa43f6");
    assert_eq!(fingerprint("LatencyP95High", &reverse), id);
    assert_ne!(fingerprint("ErrorRateHigh", &forward), id);
    assert_ne!(fingerprint("LatencyP95High", &labels(&[("service", SERVICE), ("kind", "inference.embed")])), id);
    // Framing: moving a character between key and value changes the fingerprint.
    assert_ne!(fingerprint("n", &labels(&[("ab", "c")])), fingerprint("n", &labels(&[("a", "bc")])));
}
