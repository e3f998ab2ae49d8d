//! Plain JSON <-> Avro values, for people: `frontier publish` reads JSON lines, `frontier tail`
//! prints them.
//!
//! This is deliberately not Avro's own JSON encoding, which wraps every union branch in an
//! object (`{"string": "AAPL"}`): a nullable field is written as its value or `null`, an enum as
//! its symbol, a timestamp as milliseconds. Errors name the field path, so a person can fix the
//! line they typed.
//!
//! A timestamp may also be written relative to the moment the line is converted (`"now"`,
//! `"now+60s"`, `"-3m"`) or as an RFC 3339 time (`"2026-12-03T09:30:00Z"`), so example files
//! never go stale: a deadline written `"+60s"` is a minute away whenever the example is run.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use serde_json::{Map, Number, Value as Json};

/// Why a JSON document does not fit a schema.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct JsonMismatch {
    /// Where in the document, e.g. `params.weights.AAPL` (`$` is the top level).
    pub path: String,
    pub message: String,
}

/// Converts a JSON document to an Avro value of `schema`; relative timestamps count from now.
pub fn json_to_avro(json: &Json, schema: &Schema) -> Result<Value, JsonMismatch> {
    json_to_avro_at(json, schema, crate::clock::now_millis())
}

/// Converts a JSON document to an Avro value of `schema`, with relative timestamps counted from
/// `now_ms` (milliseconds since the epoch).
pub fn json_to_avro_at(json: &Json, schema: &Schema, now_ms: i64) -> Result<Value, JsonMismatch> {
    let resolved = ResolvedSchema::try_from(schema)
        .map_err(|e| JsonMismatch { path: "$".into(), message: format!("unusable schema: {e}") })?;
    let converter = Converter { names: resolved.get_names(), now_ms };
    converter.convert(json, schema, &mut vec!["$".to_string()])
}

struct Converter<'s> {
    names: &'s HashMap<Name, &'s Schema>,
    now_ms: i64,
}

/// A timestamp written for people: `now`, `now+60s`, `now-3m`, `+60s`, `-1h30m` (relative to
/// `now_ms`), or an RFC 3339 time; milliseconds since the epoch.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    let relative = text.strip_prefix("now").unwrap_or(text).trim_start();
    if relative.is_empty() {
        return Ok(now_ms);
    }
    let sign = match relative.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => {
            let at = humantime::parse_rfc3339_weak(text)
                .map_err(|e| format!("`{text}` is neither `now`, `now+60s`, `-3m` nor an RFC 3339 time ({e})"))?;
            return Ok(crate::clock::epoch_millis(at));
        }
    };
    let offset = humantime::parse_duration(relative[1..].trim())
        .map_err(|e| format!("`{text}`: the offset after the sign is not a duration like `60s` or `5m` ({e})"))?;
    let offset_ms = i64::try_from(offset.as_millis()).map_err(|_| format!("`{text}`: offset too large"))?;
    Ok(now_ms.saturating_add(sign * offset_ms))
}

impl Converter<'_> {
    fn convert(&self, json: &Json, schema: &Schema, path: &mut Vec<String>) -> Result<Value, JsonMismatch> {
        let fail = |path: &Vec<String>, message: String| JsonMismatch { path: path.join("."), message };
        let expected = |path: &Vec<String>, what: &str| fail(path, format!("expected {what}, got {}", describe(json)));
        match schema {
            Schema::Null => json.is_null().then_some(Value::Null).ok_or_else(|| expected(path, "null")),
            Schema::Boolean => json.as_bool().map(Value::Boolean).ok_or_else(|| expected(path, "a boolean")),
            Schema::Int => json
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Value::Int)
                .ok_or_else(|| expected(path, "a 32-bit integer")),
            Schema::Long => json.as_i64().map(Value::Long).ok_or_else(|| expected(path, "an integer")),
            Schema::Float => json.as_f64().map(|n| Value::Float(n as f32)).ok_or_else(|| expected(path, "a number")),
            Schema::Double => json.as_f64().map(Value::Double).ok_or_else(|| expected(path, "a number")),
            Schema::String => json.as_str().map(|s| Value::String(s.into())).ok_or_else(|| expected(path, "a string")),
            Schema::Uuid => {
                json.as_str().map(|s| Value::String(s.into())).ok_or_else(|| expected(path, "a UUID string"))
            }
            Schema::Date => json
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Value::Date)
                .ok_or_else(|| expected(path, "days since 1970-01-01")),
            Schema::TimestampMillis => match json {
                Json::String(text) => {
                    parse_time(text, self.now_ms).map(Value::TimestampMillis).map_err(|e| fail(path, e))
                }
                _ => json.as_i64().map(Value::TimestampMillis).ok_or_else(|| {
                    expected(path, "milliseconds since the epoch, `now`, `now+60s` or an RFC 3339 time")
                }),
            },
            Schema::TimestampMicros => match json {
                Json::String(text) => parse_time(text, self.now_ms)
                    .map(|ms| Value::TimestampMicros(ms.saturating_mul(1000)))
                    .map_err(|e| fail(path, e)),
                _ => json.as_i64().map(Value::TimestampMicros).ok_or_else(|| {
                    expected(path, "microseconds since the epoch, `now`, `now+60s` or an RFC 3339 time")
                }),
            },
            Schema::Array(array) => {
                let items = json.as_array().ok_or_else(|| expected(path, "an array"))?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    out.push(self.convert(item, &array.items, path)?);
                    path.pop();
                }
                Ok(Value::Array(out))
            }
            Schema::Map(map) => {
                let entries = json.as_object().ok_or_else(|| expected(path, "an object"))?;
                let mut out = HashMap::with_capacity(entries.len());
                for (key, item) in entries {
                    path.push(key.clone());
                    out.insert(key.clone(), self.convert(item, &map.types, path)?);
                    path.pop();
                }
                Ok(Value::Map(out))
            }
            Schema::Union(union) => {
                // The first branch the value fits wins; for a number that is the first numeric
                // branch that can hold it exactly (so `30` is a long and `0.5` a double).
                let depth = path.len();
                for (index, branch) in union.variants().iter().enumerate() {
                    match self.convert(json, branch, path) {
                        Ok(value) => return Ok(Value::Union(index as u32, Box::new(value))),
                        // A failed branch may leave its inner path behind.
                        Err(_) => path.truncate(depth),
                    }
                }
                let branches: Vec<String> = union.variants().iter().map(|b| self.describe_schema(b)).collect();
                Err(expected(path, &format!("one of [{}]", branches.join(", "))))
            }
            Schema::Enum(e) => {
                let symbol = json.as_str().ok_or_else(|| expected(path, "a string symbol"))?;
                match e.symbols.iter().position(|s| s == symbol) {
                    Some(index) => Ok(Value::Enum(index as u32, symbol.into())),
                    None => Err(fail(path, format!("`{symbol}` is not one of {}", e.symbols.join(", ")))),
                }
            }
            Schema::Record(record) => {
                let object = json.as_object().ok_or_else(|| expected(path, "an object"))?;
                if let Some(unknown) = object.keys().find(|k| !record.fields.iter().any(|f| &f.name == *k)) {
                    let known: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
                    return Err(fail(
                        path,
                        format!("unknown field `{unknown}` (the schema has: {})", known.join(", ")),
                    ));
                }
                let mut fields = Vec::with_capacity(record.fields.len());
                for field in &record.fields {
                    path.push(field.name.clone());
                    let value = match (object.get(&field.name), &field.default) {
                        (Some(value), _) => self.convert(value, &field.schema, path)?,
                        // Avro applies a union's default to its first branch.
                        (None, Some(default)) => self
                            .convert(default, first_branch(&field.schema), path)
                            .map(|v| wrap_first_branch(&field.schema, v))?,
                        (None, None) => return Err(fail(path, "missing required field".into())),
                    };
                    path.pop();
                    fields.push((field.name.clone(), value));
                }
                Ok(Value::Record(fields))
            }
            Schema::Ref { name } => match self.names.get(name) {
                Some(target) => self.convert(json, target, path),
                None => Err(fail(path, format!("schema refers to unknown type {name}"))),
            },
            other => Err(fail(path, format!("{other:?} fields cannot be written as plain JSON"))),
        }
    }

    fn describe_schema(&self, schema: &Schema) -> String {
        match schema {
            Schema::Record(r) => r.name.name.clone(),
            Schema::Enum(e) => format!("enum {}", e.name.name),
            Schema::Array(_) => "array".into(),
            Schema::Map(_) => "object".into(),
            Schema::Ref { name } => name.name.clone(),
            other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
        }
    }
}

fn first_branch(schema: &Schema) -> &Schema {
    match schema {
        Schema::Union(union) => union.variants().first().unwrap_or(schema),
        _ => schema,
    }
}

fn wrap_first_branch(schema: &Schema, value: Value) -> Value {
    match schema {
        Schema::Union(_) => Value::Union(0, Box::new(value)),
        _ => value,
    }
}

fn describe(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.len() <= 40 => format!("\"{s}\""),
        Json::String(_) => "a string".into(),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// An example document for `schema`, in the form [`json_to_avro`] reads: every field filled,
/// the non-null branch of each union, the last symbol of each enum. `frontier publish --example`
/// prints one; tests and benchmarks use it to exercise every part of a schema.
pub fn example(schema: &Schema) -> Json {
    match ResolvedSchema::try_from(schema) {
        Ok(resolved) => example_of(schema, resolved.get_names()),
        Err(_) => Json::Null,
    }
}

fn example_of(schema: &Schema, names: &HashMap<Name, &Schema>) -> Json {
    match schema {
        Schema::Boolean => Json::Bool(true),
        Schema::Int | Schema::Date | Schema::TimeMillis => Json::from(7),
        Schema::Long | Schema::TimeMicros => Json::from(42),
        Schema::TimestampMillis => Json::from(1_764_230_400_000i64),
        Schema::TimestampMicros => Json::from(1_764_230_400_000_000i64),
        Schema::Float | Schema::Double => Json::from(0.25),
        Schema::String => Json::from("text"),
        Schema::Uuid => Json::from("00000000-0000-4000-8000-000000000000"),
        Schema::Array(array) => Json::Array(vec![example_of(&array.items, names)]),
        Schema::Map(map) => Json::Object(Map::from_iter([("key".to_string(), example_of(&map.types, names))])),
        Schema::Union(union) => {
            let branches = union.variants();
            branches.iter().find(|b| !matches!(b, Schema::Null)).map_or(Json::Null, |b| example_of(b, names))
        }
        Schema::Enum(e) => e.symbols.last().map_or(Json::Null, |s| Json::from(s.as_str())),
        Schema::Record(record) => {
            Json::Object(record.fields.iter().map(|f| (f.name.clone(), example_of(&f.schema, names))).collect())
        }
        Schema::Ref { name } => names.get(name).map_or(Json::Null, |target| example_of(target, names)),
        _ => Json::Null,
    }
}

/// Converts a decoded Avro value to plain JSON (the inverse of [`json_to_avro`]).
pub fn avro_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => Json::from(*n),
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => Json::from(*n),
        Value::Float(n) => Number::from_f64(f64::from(*n)).map(Json::Number).unwrap_or(Json::Null),
        Value::Double(n) => Number::from_f64(*n).map(Json::Number).unwrap_or(Json::Null),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Bytes(b) | Value::Fixed(_, b) => Json::String(hex::encode(b)),
        Value::Union(_, inner) => avro_to_json(inner),
        Value::Array(items) => Json::Array(items.iter().map(avro_to_json).collect()),
        Value::Map(entries) => {
            // Sorted, so the same map always prints the same way.
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            Json::Object(keys.into_iter().map(|k| (k.clone(), avro_to_json(&entries[k]))).collect())
        }
        Value::Record(fields) => {
            Json::Object(fields.iter().map(|(k, v)| (k.clone(), avro_to_json(v))).collect::<Map<_, _>>())
        }
        other => Json::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse_str(
            r#"{"type":"record","name":"R","namespace":"t","fields":[
                {"name":"id","type":"string"},
                {"name":"level","type":{"type":"enum","name":"Level","symbols":["low","high"]}},
                {"name":"note","type":["null","string"],"default":null},
                {"name":"params","type":{"type":"map","values":["null","long","double","string"]}},
                {"name":"again","type":["null","Level"],"default":null}
            ]}"#,
        )
        .unwrap()
    }

    fn stamped() -> Schema {
        Schema::parse_str(
            r#"{"type":"record","name":"S","namespace":"t","fields":[
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"deadline","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn timestamps_may_be_written_relative_to_now() {
        let now = 1_800_000_000_000;
        let value = json_to_avro_at(&json!({"at":"now","deadline":"+60s"}), &stamped(), now).unwrap();
        assert_eq!(
            value,
            Value::Record(vec![
                ("at".into(), Value::TimestampMillis(now)),
                ("deadline".into(), Value::Union(1, Box::new(Value::TimestampMillis(now + 60_000)))),
            ])
        );
        assert_eq!(parse_time("now-3m", now), Ok(now - 180_000));
        assert_eq!(parse_time("-1h 30m", now), Ok(now - 5_400_000));
    }

    #[test]
    fn timestamps_may_be_written_in_rfc_3339() {
        assert_eq!(parse_time("2027-01-15T08:00:00Z", 0), Ok(1_800_000_000_000));
    }

    #[test]
    fn a_timestamp_that_is_no_time_names_the_forms_it_takes() {
        let error = json_to_avro_at(&json!({"at":"tomorrow"}), &stamped(), 0).unwrap_err();
        assert_eq!(error.path, "$.at");
        assert!(error.message.contains("now+60s"), "{}", error.message);
    }

    #[test]
    fn the_example_fits_its_schema() {
        let value = json_to_avro(&example(&schema()), &schema()).unwrap();
        assert!(value.validate(&schema()));
    }

    #[test]
    fn plain_json_round_trips() {
        let doc = json!({"id":"a","level":"high","note":"n","params":{"w":30,"x":0.5,"s":"AAPL"},"again":"low"});
        let value = json_to_avro(&doc, &schema()).unwrap();
        assert!(value.validate(&schema()));
        assert_eq!(avro_to_json(&value), doc);
    }

    #[test]
    fn missing_optional_field_takes_its_default() {
        let value = json_to_avro(&json!({"id":"a","level":"low","params":{}}), &schema()).unwrap();
        assert_eq!(avro_to_json(&value)["note"], Json::Null);
    }

    #[test]
    fn wrong_enum_symbol_names_the_field_and_the_choices() {
        let err = json_to_avro(&json!({"id":"a","level":"urgent","params":{}}), &schema()).unwrap_err();
        assert_eq!(err.to_string(), "$.level: `urgent` is not one of low, high");
    }

    #[test]
    fn unknown_field_is_refused() {
        let err = json_to_avro(&json!({"id":"a","level":"low","params":{},"oops":1}), &schema()).unwrap_err();
        assert!(err.to_string().contains("unknown field `oops`"), "{err}");
    }

    #[test]
    fn missing_required_field_is_named() {
        let err = json_to_avro(&json!({"level":"low","params":{}}), &schema()).unwrap_err();
        assert_eq!(err.to_string(), "$.id: missing required field");
    }

    #[test]
    fn nested_type_error_names_the_path() {
        let err = json_to_avro(&json!({"id":"a","level":"low","params":{"w":[1]}}), &schema()).unwrap_err();
        assert!(err.to_string().starts_with("$.params.w: expected one of"), "{err}");
    }
}
