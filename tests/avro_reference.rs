//! Frontier's wire format against two independent Avro implementations: Avro's Java reference
//! implementation and fastavro (`ops/avro-reference/`, installed by `ops/avro-reference/install`).
//! Every expected value here comes from running them, none from a table typed by hand: no test
//! may pass while an independent implementation disagrees with us. No services needed.
//!
//! The same records through Kafka and the real workers: `tests/interop.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::avro_tools::{AvroTool, Fingerprinted, avsc_files, every_schema_file};
use common::*;
use frontier::bus::SchemaCatalog;
use frontier::bus::codec::{HEADER_LEN, KnownSchema, MAGIC, canonical};
use frontier::bus::json::{avro_to_json, example, json_to_avro};
use serde_json::{Value, json};

/// What each tool says about every schema version, computed once per test binary.
fn reference_fingerprints(tool: AvroTool) -> &'static [Fingerprinted] {
    static JAVA: OnceLock<Vec<Fingerprinted>> = OnceLock::new();
    static FASTAVRO: OnceLock<Vec<Fingerprinted>> = OnceLock::new();
    let cell = match tool {
        AvroTool::Java => &JAVA,
        AvroTool::Fastavro => &FASTAVRO,
    };
    cell.get_or_init(|| {
        let files = every_schema_file();
        let answers = tool.fingerprints(&files);
        for (file, answer) in files.iter().zip(&answers) {
            assert_eq!(&answer.file, file, "{} answered out of order", tool.name());
        }
        answers
    })
}

/// The file relative to `schemas/`, as the catalog names it (`request.avsc`, `history/...`).
fn catalog_name(file: &Path) -> String {
    file.strip_prefix(repo().join("schemas")).expect("a file under schemas/").to_string_lossy().into_owned()
}

fn text(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn assert_our_fingerprints_are(tool: AvroTool) {
    let answers = reference_fingerprints(tool);
    assert_eq!(answers.len(), every_schema_file().len());
    assert!(answers.iter().any(|a| catalog_name(&a.file).starts_with("history/")), "history versions are checked too");
    for answer in answers {
        let name = catalog_name(&answer.file);
        let ours = canonical::fingerprint(&text(&answer.file)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours.to_string(), answer.wire_hex, "{name}: our fingerprint differs from {}'s", tool.name());
        let known = KnownSchema::parse(&name, &text(&answer.file)).unwrap();
        assert_eq!(
            known.fingerprint.to_string(),
            answer.wire_hex,
            "{name}: KnownSchema's fingerprint differs from {}'s",
            tool.name()
        );
    }
}

#[test]
fn every_schema_s_canonical_form_is_the_java_reference_s() {
    for answer in reference_fingerprints(AvroTool::Java) {
        let ours = canonical::parsing_canonical_form(&text(&answer.file)).unwrap();
        assert_eq!(ours, answer.canonical_form, "{}", catalog_name(&answer.file));
    }
}

#[test]
fn every_schema_s_fingerprint_is_the_java_reference_s() {
    assert_our_fingerprints_are(AvroTool::Java);
}

#[test]
fn every_schema_s_fingerprint_is_fastavro_s() {
    assert_our_fingerprints_are(AvroTool::Fastavro);
}

#[test]
fn every_header_the_catalog_writes_carries_the_java_reference_fingerprint() {
    let catalog = catalog();
    let current: Vec<&Fingerprinted> =
        reference_fingerprints(AvroTool::Java).iter().filter(|a| !catalog_name(&a.file).contains('/')).collect();
    assert_eq!(current.len(), catalog.current().len());
    for answer in current {
        let known = catalog.by_file(&catalog_name(&answer.file)).unwrap();
        let bytes =
            SchemaCatalog::encode_value(&known, json_to_avro(&example(&known.schema), &known.schema).unwrap()).unwrap();
        assert_eq!(bytes[..2], MAGIC);
        assert_eq!(hex::encode(&bytes[2..HEADER_LEN]), answer.wire_hex, "{}", known.file);
    }
}

#[test]
fn the_catalog_recognises_every_java_reference_fingerprint_as_its_schema_file() {
    let catalog = catalog();
    for answer in reference_fingerprints(AvroTool::Java) {
        let mut header = MAGIC.to_vec();
        header.extend(hex::decode(&answer.wire_hex).unwrap());
        let identified = catalog.identify(&header).unwrap_or_else(|e| panic!("{}: {e}", catalog_name(&answer.file)));
        assert_eq!(identified.writer.file, catalog_name(&answer.file));
    }
}

// --------------------------------------------------------------------------- records

/// Records to write, each with its schema file: per current schema the example (every field,
/// the non-null branch of each union), the same without the fields that have defaults (null
/// branches and defaults), every line of `examples/*.jsonl` with each schema it fits, a few
/// hand-made awkward values; and the example of every history version.
fn cases() -> Vec<(PathBuf, Value)> {
    let schemas = repo().join("schemas");
    let catalog = catalog();
    let mut cases = Vec::new();
    for known in catalog.current() {
        let file = schemas.join(&known.file);
        let full = example(&known.schema);
        let mut minimal = full.clone();
        if let (apache_avro::Schema::Record(record), Some(object)) = (&known.schema, minimal.as_object_mut()) {
            for field in record.fields.iter().filter(|f| f.default.is_some()) {
                object.remove(&field.name);
            }
        }
        cases.push((file.clone(), full));
        cases.push((file, minimal));
    }
    for examples in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = examples.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for (n, line) in text(&path).lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
            let fitting: Vec<_> =
                catalog.current().into_iter().filter(|k| json_to_avro(&doc, &k.schema).is_ok()).collect();
            assert!(!fitting.is_empty(), "{}:{} fits no schema", path.display(), n + 1);
            // Relative times (`"now"`, `"+60s"`) are ours to resolve: other implementations get
            // the milliseconds `frontier publish` would write.
            cases.extend(fitting.iter().map(|k| {
                let resolved = frontier::bus::json::json_to_avro_at(&doc, &k.schema, 1_764_230_400_000).unwrap();
                (schemas.join(&k.file), frontier::bus::json::avro_to_json(&resolved))
            }));
        }
    }
    // Every branch of the params union, a negative long, a tiny double, a double that needs all
    // 17 digits, non-ASCII text.
    cases.push((
        schemas.join("request.avsc"),
        json!({
            "id": "awkward-1", "tenant": "zürich-Ω", "user": "ana", "kind": "portfolio.risk",
            "params": {"flag": true, "none": null, "n": -7, "x": 2.5e-8, "precise": -0.10345894309385793, "s": "é",
                       "list": [], "weights": {"A": -0.5}},
            "priority": "low", "issued_at": 1_764_230_400_000i64, "deadline": 1_764_230_460_000i64,
            "reply_to": "frontier.responses.gateway-1", "entitlements": ["equities", "fx"]
        }),
    ));
    // Floats (f32) that are not short decimals: each side must widen the same f32 to a double.
    let result = catalog.by_file("inference_result.avsc").unwrap();
    let mut floats = example(&result.schema);
    floats["embeddings"] = json!([[0.1, -0.3333333, 1e-40]]);
    cases.push((schemas.join("inference_result.avsc"), floats));
    for file in avsc_files(&schemas.join("history")) {
        let known = KnownSchema::parse(&catalog_name(&file), &text(&file)).unwrap();
        cases.push((file, example(&known.schema)));
    }
    cases
}

/// The plain JSON we read a document as: defaults filled, numbers as their Avro types.
fn as_we_read_it(file: &Path, doc: &Value) -> Value {
    let known = KnownSchema::parse(&catalog_name(file), &text(file)).unwrap();
    avro_to_json(&json_to_avro(doc, &known.schema).unwrap_or_else(|e| panic!("{}: {doc}: {e}", catalog_name(file))))
}

/// Records `tool` encodes: the header is our fingerprint, our catalog decodes each to what
/// `tool` itself decodes it to, and (current versions) to the document as we read it.
fn assert_records_encoded_by(tool: AvroTool) {
    let catalog = catalog();
    let cases = cases();
    let encoded = tool.encode_all(&cases);
    let theirs = tool.decode_all(&encoded);
    for (((file, doc), bytes), their_json) in cases.iter().zip(&encoded).zip(&theirs) {
        let name = catalog_name(file);
        let writer = KnownSchema::parse(&name, &text(file)).unwrap();
        assert_eq!(
            hex::encode(&bytes[2..HEADER_LEN]),
            writer.fingerprint.to_string(),
            "{name}: {}'s header",
            tool.name()
        );
        let decoded = catalog.decode(bytes).unwrap_or_else(|e| panic!("{name}: {doc} written by {}: {e}", tool.name()));
        let ours = avro_to_json(&decoded.value);
        assert_eq!(&ours, their_json, "{name}: {doc} written by {}: we read it differently", tool.name());
        if !name.starts_with("history/") {
            assert_eq!(ours, as_we_read_it(file, doc), "{name}: {doc} written by {}", tool.name());
        }
    }
}

#[test]
fn records_encoded_by_the_java_reference_decode_in_our_catalog_to_the_same_plain_json() {
    assert_records_encoded_by(AvroTool::Java);
}

#[test]
fn records_encoded_by_fastavro_decode_in_our_catalog_to_the_same_plain_json() {
    assert_records_encoded_by(AvroTool::Fastavro);
}

/// Our encodings of every current case, with the plain JSON of the value we encoded.
fn our_encodings() -> Vec<(String, Vec<u8>, Value)> {
    let catalog = catalog();
    cases()
        .into_iter()
        .filter(|(file, _)| !catalog_name(file).starts_with("history/"))
        .map(|(file, doc)| {
            let known = catalog.by_file(&catalog_name(&file)).unwrap();
            let value = json_to_avro(&doc, &known.schema).unwrap();
            let json = avro_to_json(&value);
            (known.file.clone(), SchemaCatalog::encode_value(&known, value).unwrap(), json)
        })
        .collect()
}

fn assert_our_records_decode_in(tool: AvroTool) {
    let ours = our_encodings();
    let payloads: Vec<Vec<u8>> = ours.iter().map(|(_, bytes, _)| bytes.clone()).collect();
    for ((file, _, json), theirs) in ours.iter().zip(tool.decode_all(&payloads)) {
        assert_eq!(&theirs, json, "{file}: {} reads our record differently", tool.name());
    }
}

#[test]
fn records_we_encode_decode_in_the_java_reference_to_the_same_plain_json() {
    assert_our_records_decode_in(AvroTool::Java);
}

#[test]
fn records_we_encode_decode_in_fastavro_to_the_same_plain_json() {
    assert_our_records_decode_in(AvroTool::Fastavro);
}

/// The checks above mean something only if the tools look the writer schema up by the header's
/// fingerprint: one bit off and neither finds it.
#[test]
fn both_tools_refuse_our_record_when_its_fingerprint_is_one_bit_off() {
    let (_, mut bytes, _) = our_encodings().into_iter().next().unwrap();
    bytes[2] ^= 1;
    for tool in AvroTool::BOTH {
        let answer = tool.decode(std::slice::from_ref(&bytes)).remove(0);
        let why = answer.expect_err(&format!("{} decoded a record whose fingerprint no schema has", tool.name()));
        assert!(why.contains("fingerprint"), "{}: {why}", tool.name());
    }
}

/// A person's JSON line (`frontier publish` reads each with `serde_json::from_str`) holding a
/// double that needs all 17 digits, e.g. a result copied from `frontier tail`: we must encode the
/// double the Java reference and fastavro encode from the same text.
#[test]
fn a_seventeen_digit_double_in_json_text_encodes_as_the_reference_implementations_encode_it() {
    let catalog = catalog();
    let known = catalog.by_file("request.avsc").unwrap();
    let text = r#"{"id":"digits-1","tenant":"acme","user":"ana","kind":"market.volatility","params":{"x":-0.10345894309385793},"issued_at":1764230400000}"#;
    let exact = "-0.10345894309385793".parse::<f64>().unwrap();
    let ours =
        SchemaCatalog::encode_value(&known, json_to_avro(&serde_json::from_str(text).unwrap(), &known.schema).unwrap())
            .unwrap();
    let our_x = avro_to_json(&catalog.decode(&ours).unwrap().value)["params"]["x"].as_f64().unwrap();
    for tool in AvroTool::BOTH {
        let theirs = tool.encode_text(&[(repo().join("schemas/request.avsc"), text.to_string())]).remove(0).unwrap();
        let their_x = avro_to_json(&catalog.decode(&theirs).unwrap().value)["params"]["x"].as_f64().unwrap();
        assert_eq!(their_x.to_bits(), exact.to_bits(), "{} reads the text exactly", tool.name());
        assert_eq!(
            our_x.to_bits(),
            their_x.to_bits(),
            "we encode {our_x:e} from the text where {} encodes {their_x:e}: serde_json parses floats one unit in the \
             last place off without its `float_roundtrip` feature (Cargo.toml: serde_json features += \"float_roundtrip\")",
            tool.name()
        );
    }
}
