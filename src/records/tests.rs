//! Every record type against its `.avsc`: same fields at every level, and a value with every
//! optional field set survives the wire unchanged.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::Path;

use apache_avro::Schema;
use apache_avro::schema::Name;
use apache_avro::types::Value;

use super::*;
use crate::bus::SchemaCatalog;

fn catalog() -> SchemaCatalog {
    SchemaCatalog::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")).unwrap()
}

/// Named types of a schema by full name (references point into it).
fn names(schema: &Schema) -> HashMap<Name, Schema> {
    let mut out = HashMap::new();
    fn walk(schema: &Schema, out: &mut HashMap<Name, Schema>) {
        match schema {
            Schema::Record(r) => {
                out.insert(r.name.clone(), schema.clone());
                r.fields.iter().for_each(|f| walk(&f.schema, out));
            }
            Schema::Enum(e) => {
                out.insert(e.name.clone(), schema.clone());
            }
            Schema::Array(a) => walk(&a.items, out),
            Schema::Map(m) => walk(&m.types, out),
            Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(schema, &mut out);
    out
}

/// Whether `value` (a type's serde form) has exactly the fields `schema` has, at every level.
fn shape_mismatch(value: &Value, schema: &Schema, names: &HashMap<Name, Schema>, path: &str) -> Option<String> {
    match (schema, value) {
        (Schema::Ref { name }, _) => shape_mismatch(value, &names[name], names, path),
        (_, Value::Union(_, inner)) => shape_mismatch(inner, schema, names, path),
        (Schema::Union(union), _) => {
            let fits = union
                .variants()
                .iter()
                .any(|branch| !matches!(branch, Schema::Null) && shape_mismatch(value, branch, names, path).is_none());
            (!fits).then(|| format!("{path}: {value:?} fits no branch of the union"))
        }
        (Schema::Record(record), Value::Record(fields)) => {
            let ours: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
            let theirs: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
            if ours != theirs {
                return Some(format!("{path}: the type has fields {ours:?}, the schema {theirs:?}"));
            }
            record.fields.iter().zip(fields).find_map(|(field, (_, value))| {
                shape_mismatch(value, &field.schema, names, &format!("{path}.{}", field.name))
            })
        }
        (Schema::Record(_), other) => Some(format!("{path}: a record in the schema, {other:?} in the type")),
        (Schema::Array(array), Value::Array(items)) => match items.first() {
            Some(item) => shape_mismatch(item, &array.items, names, &format!("{path}[0]")),
            None => Some(format!("{path}: the sample's list is empty, so its items are not checked")),
        },
        (Schema::Map(map), Value::Map(entries)) => match entries.iter().next() {
            Some((key, item)) => shape_mismatch(item, &map.types, names, &format!("{path}.{key}")),
            None => Some(format!("{path}: the sample's map is empty, so its values are not checked")),
        },
        (Schema::Array(_) | Schema::Map(_), other) => {
            Some(format!("{path}: a collection in the schema, {other:?} in the type"))
        }
        (Schema::Null, Value::Null) => None,
        (Schema::Null, other) => Some(format!("{path}: null in the schema, {other:?} in the type")),
        _ => None,
    }
}

/// `sample` has every field of its schema and no other, and decodes from its own bytes as itself.
fn check<T: Record + PartialEq + Debug>(sample: T) -> String {
    let catalog = catalog();
    let schema = catalog.by_name(T::NAME).unwrap_or_else(|e| panic!("{}: {e}", T::NAME));
    assert_eq!(schema.file, T::SCHEMA_FILE, "{} is not in {}", T::NAME, T::SCHEMA_FILE);
    let value = apache_avro::to_value(&sample).unwrap();
    if let Some(mismatch) = shape_mismatch(&value, &schema.schema, &names(&schema.schema), T::NAME) {
        panic!("{} does not match {}: {mismatch}", std::any::type_name::<T>(), T::SCHEMA_FILE);
    }
    let bytes = SchemaCatalog::encode(&schema, &sample).unwrap();
    let decoded: T = apache_avro::from_value(&catalog.decode(&bytes).unwrap().value).unwrap();
    assert_eq!(decoded, sample, "{} changes on the wire", T::NAME);
    let direct: T = catalog.identify(&bytes).unwrap().deserialize(&bytes).unwrap();
    assert_eq!(direct, sample, "{}: the direct decoder reads what the value path reads", T::NAME);
    T::SCHEMA_FILE.to_owned()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn samples() -> Vec<String> {
    vec![
        check(Alert {
            fingerprint: "f".into(),
            name: "LatencyP95High".into(),
            severity: Severity::Critical,
            status: AlertStatus::Resolved,
            labels: BTreeMap::from([("service".into(), "serve".into())]),
            observed_value: 900.0,
            threshold: 200.0,
            window: "5m".into(),
            started_at: 1,
            ended_at: Some(2),
            summary: "s".into(),
            runbook_url: Some("https://runbooks/x".into()),
            exemplars: strings(&["r1"]),
            sent_at: 3,
        }),
        check(AuditEvent {
            id: "a".into(),
            occurred_at: 1,
            actor: "key:0123456789ab".into(),
            role: "admin".into(),
            tenant: Some("acme".into()),
            action: "keys.create".into(),
            target: Some("ba9876543210".into()),
            parameters: BTreeMap::from([("role".into(), "viewer".into())]),
            outcome: AuditOutcome::Refused,
            detail: Some("d".into()),
            source: "cli".into(),
        }),
        check(BatchingOverride {
            model: "all-minilm-l6-v2".into(),
            settings: r#"{"max_batch_size":32}"#.into(),
            changed_by: "key:0123456789ab".into(),
            changed_at: 1,
            audit_id: "a".into(),
        }),
        check(AssetChange {
            id: "c".into(),
            asset_path: "/a.css".into(),
            asset_url: Some("https://cdn/a.css".into()),
            change: ChangeType::Deleted,
            content_hash: Some("sha256:00".into()),
            surrogate_keys: strings(&["css"]),
            manifest_id: Some("sha256:0123456789abcdef0123456789abcdef".into()),
            previous_manifest_id: None,
            changed_at: 1,
        }),
        check(AutoscaleDecision {
            id: "d".into(),
            consumer_group: "frontier.serve".into(),
            topic: "frontier.requests".into(),
            total_lag: 10,
            lag_rate_per_s: 1.5,
            current_instances: 2,
            desired_instances: 4,
            min_instances: 2,
            max_instances: 20,
            action: ScaleAction::ScaleUp,
            reason: "lag".into(),
            decided_at: 1,
            health: PartitionHealth::Warn,
        }),
        check(CacheInvalidation {
            id: "i".into(),
            tags: strings(&["symbol:AAPL"]),
            keys: strings(&["k"]),
            reason: "r".into(),
            source: "s".into(),
            issued_at: 1,
        }),
        check(PurgeResult {
            change_id: "c".into(),
            target: "varnish".into(),
            method: PurgeMethod::SurrogateKey,
            keys: strings(&["css"]),
            status: PurgeStatus::Skipped,
            http_status: Some(200),
            error: Some("e".into()),
            attempts: 1,
            latency_ms: 2.5,
            purged_at: 1,
        }),
        check(SlowQueryFinding {
            id: "s".into(),
            kind: SlowQueryKind::Regressed,
            database: "frontier".into(),
            fingerprint: "f".into(),
            sql: "SELECT 1".into(),
            parsed: true,
            window_start: 1,
            window_end: 2,
            calls: 100,
            errors: 1,
            total_ms: 2500.0,
            mean_ms: 25.0,
            p95_ms: 30.0,
            p99_ms: 40.0,
            rows: 100,
            time_share: 0.5,
            baseline_mean_ms: Some(10.0),
            window_findings: 2,
            detected_at: 3,
        }),
        check(QueryEvent {
            id: "q".into(),
            sql: "SELECT 1".into(),
            fingerprint: Some("f".into()),
            duration_ms: 1.5,
            rows: 1,
            database: "frontier".into(),
            application: "serve".into(),
            status: QueryStatus::Timeout,
            error: Some("e".into()),
            occurred_at: 1,
            calls: 7,
        }),
        check(IndexRecommendation {
            id: "r".into(),
            database: "frontier".into(),
            table_name: "t".into(),
            columns: strings(&["a", "b"]),
            index_type: "btree".into(),
            create_statement: "CREATE INDEX CONCURRENTLY ON t (a, b)".into(),
            query_fingerprints: strings(&["f"]),
            estimated_cost_before: 100.0,
            estimated_cost_after: 10.0,
            improvement_ratio: 10.0,
            action: IndexAction::Drop,
            size_bytes: 8192,
            time_saved_ms: 12.5,
            write_overhead_ms: 1.5,
            evidence: "e".into(),
            created_at: 1,
        }),
        check(InferenceJob {
            id: "j".into(),
            model: "all-minilm-l6-v2".into(),
            task: Task::Classify,
            inputs: strings(&["text"]),
            labels: Some(HashMap::from([("positive".into(), "good news".into())])),
            priority: Priority::Critical,
            issued_at: 1,
            deadline: Some(2),
            reply_to: Some("replies".into()),
        }),
        check(InferenceResult {
            job_id: "j".into(),
            model: "m".into(),
            instance: "i".into(),
            status: JobStatus::Expired,
            embeddings: Some(vec![vec![0.5, 0.25]]),
            classifications: Some(vec![Classification {
                label: "positive".into(),
                scores: BTreeMap::from([("positive".into(), 0.9)]),
            }]),
            error: Some("e".into()),
            batch_size: 1,
            queue_time_ms: 1.0,
            inference_time_ms: 2.0,
            completed_at: 3,
        }),
        check(AnalysisRequest {
            id: "r".into(),
            tenant: "t".into(),
            user: "u".into(),
            kind: "portfolio.risk".into(),
            params: BTreeMap::from([
                ("a".into(), ParamValue::Null),
                ("b".into(), ParamValue::Boolean(true)),
                ("c".into(), ParamValue::Long(3)),
                ("d".into(), ParamValue::Double(0.5)),
                ("e".into(), ParamValue::String("AAPL".into())),
                ("f".into(), ParamValue::Strings(strings(&["AAPL"]))),
                ("g".into(), ParamValue::Numbers(BTreeMap::from([("AAPL".into(), 1.0)]))),
            ]),
            priority: Priority::High,
            issued_at: 1,
            deadline: Some(2),
            reply_to: Some("replies".into()),
            entitlements: strings(&["feed"]),
        }),
        check(RequestCompleted {
            id: "r".into(),
            service: "serve".into(),
            kind: "k".into(),
            tenant: "t".into(),
            latency_ms: 1.5,
            status: RequestStatus::Timeout,
            cache_layer: CacheLayer::Disk,
            occurred_at: 1,
            instance: Some("i".into()),
            cache_key: Some("k".into()),
        }),
        check(AnalysisResponse {
            request_id: "r".into(),
            tenant: "t".into(),
            kind: "k".into(),
            status: RequestStatus::Error,
            result: Some(BTreeMap::from([("v".into(), 1.0)])),
            error: Some(ErrorDetail { code: "c".into(), message: "m".into() }),
            cache_layer: CacheLayer::Redis,
            cache_age_ms: Some(5),
            latency_ms: 1.5,
            served_by: "i".into(),
            completed_at: 1,
        }),
        check(CacheHeat {
            service: "serve".into(),
            instance: "i".into(),
            window_start: 1,
            window_end: 2,
            keys: vec![KeyCount {
                cache_key: "k".into(),
                kind: "market.volatility".into(),
                requests: 3,
                last_computed_at: Some(1),
            }],
        }),
        check(SloCounters {
            service: "serve".into(),
            kind: "market.volatility".into(),
            hour_start: 3_600_000,
            observed_since: 1,
            slos: vec![SloMinuteCounts {
                slo: "AvailabilitySLO".into(),
                minutes: vec![MinuteCount { minute: 59, events: 2, bad: 1 }],
            }],
            written_at: 7,
        }),
        check(WorkerStatus {
            service: "serve".into(),
            instance: "i".into(),
            consumer_group: Some("g".into()),
            consumer_lag: Some(1),
            rss_bytes: Some(2),
            memory_limit_bytes: Some(3),
            cpu_utilization: Some(0.5),
            open_fds: Some(4),
            max_fds: Some(5),
            occurred_at: 6,
            busy_share: Some(0.25),
            dead_lettered: Some(7),
        }),
    ]
}

#[test]
fn every_schema_has_exactly_one_record_type_matching_it_field_for_field() {
    let mut typed = samples();
    typed.sort();
    let mut files: Vec<String> = catalog().current().iter().map(|k| k.file.clone()).collect();
    files.sort();
    assert_eq!(typed, files, "a schema without a type, or a type checked twice");
}

#[test]
fn a_field_missing_from_the_type_is_caught() {
    // The checker itself: a value without `cache_key` does not pass as a RequestCompleted.
    let schema = catalog().by_name(RequestCompleted::NAME).unwrap();
    let value = Value::Record(vec![("id".into(), Value::String("r".into()))]);
    assert!(shape_mismatch(&value, &schema.schema, &names(&schema.schema), "x").is_some());
}

#[test]
fn params_of_every_union_branch_keep_their_branch_through_json() {
    let json = serde_json::json!({"n": null, "b": true, "l": 30, "d": 0.5, "s": "x", "ss": ["a"], "m": {"a": 1.5}});
    let params: BTreeMap<String, ParamValue> = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(params["l"], ParamValue::Long(30));
    assert_eq!(params["d"], ParamValue::Double(0.5));
    assert_eq!(serde_json::to_value(&params).unwrap(), json);
}

#[test]
fn a_number_json_cannot_hold_has_no_json_form() {
    assert_eq!(ParamValue::Double(f64::NAN).to_json(), None);
    assert_eq!(ParamValue::Numbers(BTreeMap::from([("a".into(), f64::INFINITY)])).to_json(), None);
}

#[test]
fn scale_action_names_are_its_wire_names() {
    for action in [ScaleAction::ScaleUp, ScaleAction::ScaleDown, ScaleAction::Hold] {
        assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
    }
}
