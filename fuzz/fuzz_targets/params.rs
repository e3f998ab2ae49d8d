//! Any JSON document as the params of every request kind.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(params) = serde_json::from_slice::<serde_json::Value>(bytes) {
        frontier::fuzzing::parse_everything(&params);
    }
});
