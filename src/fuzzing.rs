//! The places untrusted bytes and text enter, as functions a fuzzer can call: the property of
//! each is that it returns (a value or an error) and never panics, aborts or allocates from an
//! untrusted count. Used by `tests/fuzz.rs` (proptest, in every `cargo test`) and the libFuzzer
//! targets in `fuzz/` (`cargo +nightly fuzz run <target>`).

use serde_json::Value;

use crate::bus::SchemaCatalog;
use crate::bus::codec::{HEADER_LEN, MAGIC};
use crate::bus::json::json_to_avro;
use crate::market::Analysis;
use crate::market::requests::KNOWN_KINDS;

/// Decodes `bytes` as a whole message, and as the datum of every current schema (with a valid
/// header, so the decoder's body path runs); whatever decodes must encode again.
pub fn decode_everything(catalog: &SchemaCatalog, bytes: &[u8]) {
    let _ = catalog.decode(bytes);
    let mut message = Vec::with_capacity(HEADER_LEN + bytes.len());
    for known in catalog.current() {
        message.clear();
        message.extend_from_slice(&MAGIC);
        message.extend_from_slice(&known.fingerprint.0);
        message.extend_from_slice(bytes);
        let typed = typed_decode(catalog, &message);
        if let Ok(decoded) = catalog.decode(&message) {
            // A value the decoder built always fits the schema it was read with.
            if let Err(error) = SchemaCatalog::encode_value(&known, decoded.value) {
                panic!("{}: a decoded value does not encode again: {error}", known.file);
            }
        }
        // The direct decoder reads exactly what the value path reads: both or neither.
        if let Some(typed) = typed
            && typed != catalog.decode(&message).is_ok()
        {
            panic!("{}: the direct and the value decoders disagree on {message:02x?}", known.file);
        }
    }
}

/// Decodes `message` into the Rust type of its record, straight from the bytes; whether it
/// decoded, or `None` when the header names no current record.
fn typed_decode(catalog: &SchemaCatalog, message: &[u8]) -> Option<bool> {
    use crate::records::*;
    fn typed<T: Record>(identified: &crate::bus::Identified, message: &[u8]) -> Option<bool> {
        (identified.reader.name == T::NAME).then(|| identified.deserialize::<T>(message).is_ok())
    }
    let identified = catalog.identify(message).ok()?;
    typed::<Alert>(&identified, message)
        .or_else(|| typed::<AssetChange>(&identified, message))
        .or_else(|| typed::<AutoscaleDecision>(&identified, message))
        .or_else(|| typed::<CacheInvalidation>(&identified, message))
        .or_else(|| typed::<PurgeResult>(&identified, message))
        .or_else(|| typed::<QueryEvent>(&identified, message))
        .or_else(|| typed::<IndexRecommendation>(&identified, message))
        .or_else(|| typed::<InferenceJob>(&identified, message))
        .or_else(|| typed::<InferenceResult>(&identified, message))
        .or_else(|| typed::<AnalysisRequest>(&identified, message))
        .or_else(|| typed::<RequestCompleted>(&identified, message))
        .or_else(|| typed::<AnalysisResponse>(&identified, message))
        .or_else(|| typed::<WorkerStatus>(&identified, message))
}

/// Reads `text` as `frontier publish` does (a JSON line), against every current schema.
pub fn publish_everything(catalog: &SchemaCatalog, text: &str) {
    let Ok(json) = serde_json::from_str::<Value>(text) else { return };
    for known in catalog.current() {
        if let Ok(value) = json_to_avro(&json, &known.schema) {
            let _ = SchemaCatalog::encode_value(&known, value);
        }
    }
}

/// Parses `params` as every request kind; a request that parses is costed and tagged.
pub fn parse_everything(params: &Value) {
    for kind in KNOWN_KINDS {
        if let Ok(analysis) = Analysis::parse(kind, params) {
            let _ = analysis.estimated_cost();
            let _ = analysis.tags();
        }
    }
}
