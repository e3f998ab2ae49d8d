//! Property-based fuzzing of every place untrusted bytes or text enter: the single-object
//! decoder of every schema, the JSON that `frontier publish` reads, and each request kind's
//! parameter parsing. Runs in every `cargo test` (proptest, a few hundred cases per property on
//! stable Rust); the same properties run under libFuzzer for as long as one likes with
//! `cargo +nightly fuzz run <target>` in `fuzz/` (see its README). Inputs that ever broke a
//! property are kept in `fuzz/regressions/` and replayed here first.
//!
//! The property is always the same: a clear error or a value, never a panic, an abort or an
//! allocation sized from an untrusted count (`frontier::fuzzing` holds the entry points).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use common::*;
use frontier::fuzzing::{decode_everything, parse_everything, publish_everything};
use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, nested a few levels, with the numbers and strings that trip parsers.
fn json_values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![any::<f64>(), Just(1e308), Just(-1e308), Just(5e-324), Just(0.5), Just(0.99)].prop_map(Value::from),
        prop_oneof![".*", "AAPL|MSFT|SYN0001|call|put|american|european", "[0-9.eE+-]{1,12}"].prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof!["symbol|symbols|weights|window_days|paths|steps|spot|strike|volatility|time_to_expiry|expiry_days|right|style|rate|confidence_levels|seed|benchmark|risk_free_rate", ".*"],
                inner,
                0..8
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Bytes shaped like Avro data: varints of every size (block counts, lengths, union indexes)
/// mixed with raw bytes.
fn avro_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let varint = any::<i64>().prop_map(|n| {
        let mut raw = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        while raw >= 0x80 {
            out.push((raw as u8) | 0x80);
            raw >>= 7;
        }
        out.push(raw as u8);
        out
    });
    let chunk = prop_oneof![varint, prop::collection::vec(any::<u8>(), 0..16)];
    prop::collection::vec(chunk, 0..24).prop_map(|chunks| chunks.concat())
}

#[test]
fn every_input_that_once_broke_a_property_still_passes() {
    let catalog = catalog();
    let dir = repo().join("fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match name.split('-').next() {
            Some("decode") => decode_everything(&catalog, &bytes),
            Some("publish") => publish_everything(&catalog, &String::from_utf8_lossy(&bytes)),
            Some("params") => {
                if let Ok(params) = serde_json::from_slice::<Value>(&bytes) {
                    parse_everything(&params);
                }
            }
            _ => panic!("{name}: regression files are named decode-*, publish-* or params-*"),
        }
        replayed += 1;
    }
    assert!(replayed > 0, "fuzz/regressions holds the inputs of the findings");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_decoder_of_every_schema_survives_any_body(body in avro_like_bytes()) {
        decode_everything(&catalog(), &body);
    }

    #[test]
    fn the_decoder_survives_any_bytes_at_all(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_everything(&catalog(), &bytes);
    }

    #[test]
    fn publish_survives_any_json_against_every_schema(json in json_values()) {
        publish_everything(&catalog(), &json.to_string());
    }

    #[test]
    fn every_request_kind_parses_any_params_into_a_request_or_an_error(params in json_values()) {
        parse_everything(&params);
    }
}
