//! The schemas in `schemas/`: valid, documented, round-tripping, readable by a stock Avro library,
//! and backward compatible with their previous version in git. No services needed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::process::Command;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::{Schema, from_avro_datum};
use common::*;
use frontier::bus::SchemaCatalog;
use frontier::bus::codec::{HEADER_LEN, MAGIC};
use frontier::bus::json::{avro_to_json, example, json_to_avro};
use frontier::config::TopicOverrides;
use serde_json::Value;

#[test]
fn every_schema_round_trips_plain_json_through_the_wire_format() {
    let catalog = catalog();
    let current = catalog.current();
    let files = std::fs::read_dir(repo().join("schemas"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|e| e == "avsc"))
        .count();
    assert_eq!(current.len(), files, "every .avsc in schemas/ is in the catalog");
    for known in current {
        let doc = example(&known.schema);
        let value = json_to_avro(&doc, &known.schema).unwrap_or_else(|e| panic!("{}: {e}", known.file));
        let bytes = SchemaCatalog::encode_value(&known, value).unwrap();
        let decoded = catalog.decode(&bytes).unwrap();
        assert_eq!(avro_to_json(&decoded.value), doc, "{}", known.file);
    }
}

/// The body only: apache-avro's own single-object reader expects its fingerprint, which is not
/// the specification's (the headers are checked against the Java reference and fastavro in
/// `tests/avro_reference.rs`). As a second, independent datum decoder it still checks ours.
#[test]
fn apache_avro_decodes_the_body_of_every_schema_from_the_avsc_alone() {
    let catalog = catalog();
    for known in catalog.current() {
        let value = json_to_avro(&example(&known.schema), &known.schema).unwrap();
        let bytes = SchemaCatalog::encode_value(&known, value.clone()).unwrap();
        let avsc = std::fs::read_to_string(repo().join("schemas").join(&known.file)).unwrap();
        let schema = Schema::parse_str(&avsc).unwrap();
        assert_eq!(bytes[..HEADER_LEN - 8], MAGIC, "{}", known.file);
        let decoded = from_avro_datum(&schema, &mut &bytes[HEADER_LEN..], None).unwrap();
        assert_eq!(decoded, value, "{}", known.file);
        assert_eq!(catalog.decode(&bytes).unwrap().value, decoded, "{}: our decoder agrees", known.file);
    }
}

fn undocumented(value: &Value, path: &str, missing: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            let named = object.get("type").and_then(Value::as_str).is_some_and(|t| matches!(t, "record" | "enum"));
            let is_field = object.contains_key("name") && object.contains_key("type") && !named;
            if (named || is_field) && object.get("doc").and_then(Value::as_str).is_none_or(str::is_empty) {
                missing.push(format!("{path}.{}", object.get("name").and_then(Value::as_str).unwrap_or("?")));
            }
            for (key, child) in object {
                undocumented(child, &format!("{path}.{key}"), missing);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| undocumented(item, path, missing)),
        _ => {}
    }
}

#[test]
fn every_record_enum_and_field_is_namespaced_and_documented() {
    for entry in std::fs::read_dir(repo().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "avsc") {
            continue;
        }
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            json["namespace"].as_str().is_some_and(|n| n.starts_with("frontier.")),
            "{} has no frontier.* namespace",
            path.display()
        );
        let mut missing = Vec::new();
        undocumented(&json, "", &mut missing);
        assert!(missing.is_empty(), "{}: no doc on {missing:?}", path.display());
    }
}

#[test]
fn every_topic_file_names_a_schema_that_exists() {
    let catalog = catalog();
    let specs = frontier::topics::load_dir(&repo().join("topics"), &TopicOverrides::default()).unwrap();
    for spec in specs {
        if let Some(file) = &spec.value_schema {
            assert!(catalog.by_file(file).is_ok(), "{} names missing schema {file}", spec.name);
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("git is installed (the compatibility check reads history)");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The schema as it was before its latest change: the committed version if the working copy
/// differs from it, else the version before the last commit that touched it.
fn previous_version(file: &str) -> Option<String> {
    let path = format!("schemas/{file}");
    let working = std::fs::read_to_string(repo().join(&path)).ok()?;
    let committed = git(&["show", &format!("HEAD:{path}")]);
    if let Some(committed) = committed.filter(|c| *c != working) {
        return Some(committed);
    }
    let commits = git(&["log", "--format=%H", "-n", "2", "--", &path])?;
    let before = commits.lines().nth(1)?;
    git(&["show", &format!("{before}:{path}")])
}

#[test]
fn every_schema_reads_data_written_with_its_previous_version_in_git() {
    assert!(
        git(&["rev-parse", "--git-dir"]).is_some(),
        "the compatibility check needs the git history of this checkout"
    );
    let catalog = catalog();
    let mut compared = Vec::new();
    for known in catalog.current() {
        let Some(previous) = previous_version(&known.file) else { continue };
        let previous =
            Schema::parse_str(&previous).unwrap_or_else(|e| panic!("previous {} does not parse: {e}", known.file));
        if let Err(e) = SchemaCompatibility::can_read(&previous, &known.schema) {
            panic!("{} cannot read data written with its previous version: {e}", known.file);
        }
        compared.push(known.file.clone());
    }
    eprintln!("compared with the previous version: {compared:?}");
}

#[test]
fn the_compatibility_check_catches_a_new_field_without_default() {
    let old = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#).unwrap();
    let new = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long"}]}"#,
    )
    .unwrap();
    assert!(SchemaCompatibility::can_read(&old, &new).is_err());
}
