//! Parsing Canonical Form and CRC-64-AVRO fingerprints, exactly as the Avro specification
//! defines them ("Parsing Canonical Form for Schemas" and "Schema Fingerprints").
//!
//! Why not `apache_avro::Schema::fingerprint`: apache-avro 0.21 keeps `{"type":"long"}` for a
//! `long` that carries a `logicalType`, where the [PRIMITIVES] and [STRIP] rules give `"long"`
//! (upstream AVRO-4004). Its fingerprint of every schema with a logical type therefore differs
//! from the one the Java reference, fastavro and every other spec-following library computes,
//! and their single-object records would be unreadable here (and ours there). The transformation
//! is defined on the schema's JSON, so it is computed from the JSON: a few dozen lines that a
//! test checks against the Java reference itself (`tests/avro_reference.rs`).

use serde_json::Value as Json;

use super::Fingerprint;

/// Why a schema document has no canonical form.
#[derive(Debug, thiserror::Error)]
#[error("no parsing canonical form: {0}")]
pub struct CanonicalFormError(String);

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

/// The Parsing Canonical Form of a schema document (`.avsc` text).
pub fn parsing_canonical_form(schema_json: &str) -> Result<String, CanonicalFormError> {
    let json: Json = serde_json::from_str(schema_json).map_err(|e| CanonicalFormError(e.to_string()))?;
    let mut out = String::with_capacity(schema_json.len() / 2);
    Canonicalizer { defined: Vec::new() }.write(&json, None, &mut out)?;
    Ok(out)
}

/// The CRC-64-AVRO fingerprint of a schema document's Parsing Canonical Form, as the 8
/// little-endian bytes the single-object header carries.
pub fn fingerprint(schema_json: &str) -> Result<Fingerprint, CanonicalFormError> {
    Ok(Fingerprint(crc64_avro(parsing_canonical_form(schema_json)?.as_bytes()).to_le_bytes()))
}

/// The specification's 64-bit Rabin fingerprint (CRC-64-AVRO), computed with its reference
/// table-driven algorithm.
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    // Built at compile time from the specification's polynomial: the table is fixed.
    const TABLE: [u64; 256] = {
        let mut table = [0u64; 256];
        let mut i = 0;
        while i < 256 {
            let mut fp = i as u64;
            let mut j = 0;
            while j < 8 {
                fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
                j += 1;
            }
            table[i] = fp;
            i += 1;
        }
        table
    };
    bytes.iter().fold(EMPTY, |fp, &b| (fp >> 8) ^ TABLE[((fp ^ b as u64) & 0xff) as usize])
}

struct Canonicalizer {
    /// Full names of the named types written so far: later uses are written as the name alone.
    defined: Vec<String>,
}

impl Canonicalizer {
    fn write(&mut self, schema: &Json, namespace: Option<&str>, out: &mut String) -> Result<(), CanonicalFormError> {
        match schema {
            Json::String(name) => {
                if PRIMITIVES.contains(&name.as_str()) {
                    push_quoted(out, name);
                } else {
                    // [FULLNAMES]: a reference to a named type, by its full name.
                    push_quoted(out, &full_name(name, None, namespace));
                }
                Ok(())
            }
            Json::Array(branches) => {
                out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write(branch, namespace, out)?;
                }
                out.push(']');
                Ok(())
            }
            Json::Object(object) => {
                let kind =
                    object.get("type").ok_or_else(|| CanonicalFormError("an object schema without `type`".into()))?;
                let Some(kind) = kind.as_str() else {
                    // `{"type": {...}}` or `{"type": [...]}`: the wrapper adds nothing.
                    return self.write(kind, namespace, out);
                };
                match kind {
                    // [PRIMITIVES] and [STRIP]: `{"type":"long","logicalType":...}` is `"long"`.
                    _ if PRIMITIVES.contains(&kind) => {
                        push_quoted(out, kind);
                        Ok(())
                    }
                    "array" => {
                        out.push_str("{\"type\":\"array\",\"items\":");
                        self.write(required(object, "items")?, namespace, out)?;
                        out.push('}');
                        Ok(())
                    }
                    "map" => {
                        out.push_str("{\"type\":\"map\",\"values\":");
                        self.write(required(object, "values")?, namespace, out)?;
                        out.push('}');
                        Ok(())
                    }
                    "record" | "error" | "enum" | "fixed" => self.write_named(kind, object, namespace, out),
                    // Not a type keyword: a reference to a named type.
                    other => {
                        push_quoted(out, &full_name(other, None, namespace));
                        Ok(())
                    }
                }
            }
            other => Err(CanonicalFormError(format!("`{other}` is not a schema"))),
        }
    }

    fn write_named(
        &mut self,
        kind: &str,
        object: &serde_json::Map<String, Json>,
        namespace: Option<&str>,
        out: &mut String,
    ) -> Result<(), CanonicalFormError> {
        let name =
            required(object, "name")?.as_str().ok_or_else(|| CanonicalFormError("`name` is not a string".into()))?;
        let own_namespace = object.get("namespace").and_then(Json::as_str);
        let full = full_name(name, own_namespace, namespace);
        if self.defined.contains(&full) {
            push_quoted(out, &full);
            return Ok(());
        }
        self.defined.push(full.clone());
        // [ORDER]: name, type, fields, symbols, items, values, size.
        out.push_str("{\"name\":");
        push_quoted(out, &full);
        out.push_str(",\"type\":");
        // An error is a record on the wire; the reference writes both as "record".
        push_quoted(out, if kind == "error" { "record" } else { kind });
        match kind {
            "enum" => {
                out.push_str(",\"symbols\":[");
                let symbols = required(object, "symbols")?
                    .as_array()
                    .ok_or_else(|| CanonicalFormError("`symbols` is not an array".into()))?;
                for (i, symbol) in symbols.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_quoted(
                        out,
                        symbol.as_str().ok_or_else(|| CanonicalFormError("an enum symbol is not a string".into()))?,
                    );
                }
                out.push(']');
            }
            "fixed" => {
                // [INTEGERS]: no quotes, no leading zeros.
                let size = required(object, "size")?
                    .as_u64()
                    .ok_or_else(|| CanonicalFormError("`size` is not a non-negative integer".into()))?;
                out.push_str(",\"size\":");
                out.push_str(&size.to_string());
            }
            _ => {
                // Names inside a record default to the record's own namespace.
                let inner_namespace = full.rsplit_once('.').map(|(ns, _)| ns.to_string());
                out.push_str(",\"fields\":[");
                let fields = required(object, "fields")?
                    .as_array()
                    .ok_or_else(|| CanonicalFormError("`fields` is not an array".into()))?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let field =
                        field.as_object().ok_or_else(|| CanonicalFormError("a field is not an object".into()))?;
                    let field_name = required(field, "name")?
                        .as_str()
                        .ok_or_else(|| CanonicalFormError("a field name is not a string".into()))?;
                    out.push_str("{\"name\":");
                    push_quoted(out, field_name);
                    out.push_str(",\"type\":");
                    self.write(required(field, "type")?, inner_namespace.as_deref(), out)?;
                    out.push('}');
                }
                out.push(']');
            }
        }
        out.push('}');
        Ok(())
    }
}

fn required<'a>(object: &'a serde_json::Map<String, Json>, key: &str) -> Result<&'a Json, CanonicalFormError> {
    object.get(key).ok_or_else(|| CanonicalFormError(format!("missing `{key}`")))
}

/// A name made full: a dotted name is full already; otherwise its own namespace, else the
/// enclosing one, goes in front (an empty namespace means none).
fn full_name(name: &str, own_namespace: Option<&str>, enclosing: Option<&str>) -> String {
    if name.contains('.') {
        return name.to_string();
    }
    match own_namespace.or(enclosing).filter(|ns| !ns.is_empty()) {
        Some(namespace) => format!("{namespace}.{name}"),
        None => name.to_string(),
    }
}

/// [STRINGS]: a JSON string with only the escapes JSON requires (names and symbols are
/// `[A-Za-z_][A-Za-z0-9_]*`, so in practice none).
fn push_quoted(out: &mut String, text: &str) {
    // Serializing a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_specification_s_empty_fingerprint() {
        assert_eq!(crc64_avro(b""), 0xc15d_213a_a4d7_a795);
    }

    #[test]
    fn primitive_fingerprints_match_the_specification_test_vectors() {
        // From the Avro repository's share/test/data/schema-tests.txt (CRC-64-AVRO as signed
        // decimal, as the reference's own test vectors print it).
        assert_eq!(crc64_avro(b"\"null\"") as i64, 7195948357588979594);
        assert_eq!(crc64_avro(b"\"int\"") as i64, 8247732601305521295);
        assert_eq!(crc64_avro(b"\"string\"") as i64, -8142146995180207161);
    }

    #[test]
    fn a_logical_type_on_a_primitive_is_stripped_to_the_primitive() {
        let form = parsing_canonical_form(r#"{"type":"long","logicalType":"timestamp-millis"}"#).unwrap();
        assert_eq!(form, "\"long\"");
    }

    #[test]
    fn records_keep_only_name_type_and_fields_in_order_with_full_names() {
        let schema = r#"{"doc":"d","fields":[{"type":{"type":"enum","symbols":["A","B"],"name":"E","default":"A"},"name":"e","doc":"x"},
            {"name":"again","type":"E"},{"name":"f","type":{"type":"fixed","name":"F","namespace":"other","size":16}}],
            "name":"R","namespace":"ns","type":"record"}"#;
        assert_eq!(
            parsing_canonical_form(schema).unwrap(),
            concat!(
                r#"{"name":"ns.R","type":"record","fields":["#,
                r#"{"name":"e","type":{"name":"ns.E","type":"enum","symbols":["A","B"]}},"#,
                r#"{"name":"again","type":"ns.E"},"#,
                r#"{"name":"f","type":{"name":"other.F","type":"fixed","size":16}}]}"#
            )
        );
    }
}
