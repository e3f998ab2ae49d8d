//! Unit tests of the serving worker's pure parts (the path through Kafka, Redis and PostgreSQL
//! is tested in `tests/serve.rs`).

use serde_json::json;

use super::metric::kind_label;
use super::settings::ServeSettings;
use super::wire::{CompletedRecord, RequestRecord, ResponseRecord, Status};
use crate::bus::SchemaCatalog;
use crate::bus::json::{avro_to_json, json_to_avro};

fn catalog() -> SchemaCatalog {
    SchemaCatalog::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")).unwrap()
}

#[test]
fn a_request_decodes_through_json_with_its_params() {
    let catalog = catalog();
    let schema = catalog.by_file("request.avsc").unwrap();
    let doc = json!({
        "id": "r1", "tenant": "acme", "user": "ana", "kind": "portfolio.risk",
        "params": {"symbols": ["A", "B"], "weights": {"A": 0.5, "B": 0.5}, "window_days": 30, "note": null},
        "priority": "high", "issued_at": 1_000, "deadline": 2_000, "reply_to": null, "entitlements": ["x"]
    });
    let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema).unwrap()).unwrap();
    let decoded = catalog.decode(&bytes).unwrap();
    let request: RequestRecord = serde_json::from_value(avro_to_json(&decoded.value)).unwrap();
    assert_eq!(request.params["symbols"], json!(["A", "B"]));
    assert_eq!(request.params["weights"]["B"], json!(0.5));
    assert_eq!(request.params["window_days"], json!(30));
    assert_eq!((request.deadline, request.reply_to, request.entitlements), (Some(2_000), None, vec!["x".to_string()]));
}

#[test]
fn responses_and_events_encode_with_their_schemas() {
    let catalog = catalog();
    let response = ResponseRecord {
        request_id: "r1".into(),
        tenant: "acme".into(),
        kind: "market.volatility".into(),
        status: Status::Ok,
        result: Some([("volatility_annualized".to_string(), 0.2)].into()),
        error: None,
        cache_layer: "redis".into(),
        cache_age_ms: Some(12),
        latency_ms: 3.5,
        served_by: "host-1".into(),
        completed_at: 5,
    };
    let bytes = SchemaCatalog::encode(&catalog.by_file("response.avsc").unwrap(), &response).unwrap();
    let back = avro_to_json(&catalog.decode(&bytes).unwrap().value);
    assert_eq!(back["cache_layer"], "redis");
    assert_eq!(back["result"]["volatility_annualized"], 0.2);
    let event = CompletedRecord {
        id: "r1".into(),
        service: "serve".into(),
        kind: "market.volatility".into(),
        tenant: "acme".into(),
        latency_ms: 3.5,
        status: Status::Timeout,
        cache_layer: "none".into(),
        occurred_at: 5,
        instance: Some("host-1".into()),
        cache_key: None,
    };
    let bytes = SchemaCatalog::encode(&catalog.by_file("request_completed.avsc").unwrap(), &event).unwrap();
    let back: CompletedRecord = serde_json::from_value(avro_to_json(&catalog.decode(&bytes).unwrap().value)).unwrap();
    assert_eq!(back, event);
}

#[test]
fn kinds_from_clients_cannot_create_metric_series() {
    assert_eq!(kind_label("market.volatility"), "market.volatility");
    assert_eq!(kind_label("anything.else"), "other");
}

#[test]
fn settings_refuse_a_loop_and_a_shared_invalidation_group() {
    assert!(ServeSettings::default().validate().is_ok());
    let looping = ServeSettings { responses_topic: "frontier.requests".into(), ..ServeSettings::default() };
    assert_eq!(looping.validate().unwrap_err().0, "input_topic");
    let shared = ServeSettings { group_id: Some("g".into()), invalidations_group_id: Some("g".into()), ..ServeSettings::default() };
    assert_eq!(shared.validate().unwrap_err().0, "invalidations_group_id");
}

#[test]
fn jitter_only_shortens_the_ttl_and_never_below_its_share() {
    use std::time::Duration;

    use crate::cache::CachePolicy;
    let policy = CachePolicy { ttl: Duration::from_secs(100), grace: Duration::from_secs(7) };
    for _ in 0..1000 {
        let jittered = super::worker::jittered(policy, 0.1);
        assert!(jittered.ttl <= policy.ttl && jittered.ttl >= Duration::from_secs(90), "{jittered:?}");
        assert_eq!(jittered.grace, policy.grace);
    }
    assert_eq!(super::worker::jittered(policy, 0.0), policy);
}
