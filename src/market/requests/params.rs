//! Typed access to a request's `params`: every read names its field in the error, and a
//! parameter the kind does not expect is refused (a typo must not silently fall back to a
//! default).

use serde_json::{Map, Value};

use super::RequestError;
use crate::market::store::check_symbol;

/// A request's parameters, as a JSON object. `null` values count as absent: that is how an
/// Avro `["null", ...]` union value arrives.
#[derive(Debug)]
pub struct Params {
    fields: Map<String, Value>,
}

impl Params {
    /// Reads `params` as an object, a JSON text of an object, or `null` (no parameters), and
    /// refuses any field not in `expected`.
    pub fn new(params: &Value, expected: &[&str]) -> Result<Self, RequestError> {
        let fields = match params {
            Value::Object(fields) => fields.clone(),
            Value::Null => Map::new(),
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(fields)) => fields,
                Ok(_) => return Err(RequestError::invalid("params", "must be a JSON object")),
                Err(error) => {
                    return Err(RequestError::invalid("params", format!("is not JSON: {error}")));
                }
            },
            _ => {
                return Err(RequestError::invalid("params", "must be an object of named parameters"));
            }
        };
        if let Some(unknown) = fields.keys().find(|name| !expected.contains(&name.as_str())) {
            return Err(RequestError::invalid(
                unknown.as_str(),
                format!("is not a parameter of this kind (expected: {})", expected.join(", ")),
            ));
        }
        Ok(Self { fields })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|value| !value.is_null())
    }

    /// An optional string.
    pub fn string(&self, name: &str) -> Result<Option<&str>, RequestError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    /// An optional symbol, checked for shape.
    pub fn symbol(&self, name: &str) -> Result<Option<String>, RequestError> {
        let Some(symbol) = self.string(name)? else {
            return Ok(None);
        };
        check_symbol(symbol).map_err(|reason| RequestError::invalid(name, reason))?;
        Ok(Some(symbol.to_owned()))
    }

    /// A symbol that must be given.
    pub fn required_symbol(&self, name: &str) -> Result<String, RequestError> {
        self.symbol(name)?.ok_or_else(|| missing(name))
    }

    /// An optional finite number (integers are accepted).
    pub fn number(&self, name: &str) -> Result<Option<f64>, RequestError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => match number.as_f64() {
                Some(value) if value.is_finite() => Ok(Some(value)),
                _ => Err(RequestError::invalid(name, "must be a finite number")),
            },
            Some(other) => Err(wrong_type(name, "a number", other)),
        }
    }

    /// An optional whole number in `range` (a number like `30.0` counts as whole).
    pub fn integer(&self, name: &str, range: std::ops::RangeInclusive<u64>) -> Result<Option<u64>, RequestError> {
        let value = match self.get(name) {
            None => return Ok(None),
            Some(Value::Number(number)) => match (number.as_u64(), number.as_f64()) {
                (Some(whole), _) => whole,
                (None, Some(value)) if value >= 0.0 && value.fract() == 0.0 && value <= u64::MAX as f64 => value as u64,
                _ => {
                    return Err(RequestError::invalid(name, "must be a whole non-negative number"));
                }
            },
            Some(other) => return Err(wrong_type(name, "a whole number", other)),
        };
        if range.contains(&value) {
            Ok(Some(value))
        } else {
            Err(RequestError::invalid(
                name,
                format!("is {value}; must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    /// An optional list of strings.
    pub fn strings(&self, name: &str) -> Result<Option<Vec<&str>>, RequestError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    item.as_str().ok_or_else(|| wrong_type(&format!("{name}[{index}]"), "a string", item))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong_type(name, "a list of strings", other)),
        }
    }

    /// An optional list of numbers; numeric strings (`"0.975"`) are accepted too, since an Avro
    /// request can only carry lists of strings.
    pub fn numbers(&self, name: &str) -> Result<Option<Vec<f64>>, RequestError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(wrong_type(name, "a list of numbers", value));
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let field = format!("{name}[{index}]");
                let number = match item {
                    Value::Number(number) => number.as_f64(),
                    Value::String(text) => text.trim().parse::<f64>().ok(),
                    _ => None,
                };
                number.filter(|n| n.is_finite()).ok_or_else(|| wrong_type(&field, "a number", item))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An optional map of names to finite numbers, in the order given.
    pub fn number_map(&self, name: &str) -> Result<Option<Vec<(String, f64)>>, RequestError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let Value::Object(entries) = value else {
            return Err(wrong_type(name, "a map of names to numbers", value));
        };
        entries
            .iter()
            .map(|(key, item)| {
                let field = format!("{name}.{key}");
                match item.as_f64() {
                    Some(number) if number.is_finite() => Ok((key.clone(), number)),
                    _ => Err(wrong_type(&field, "a finite number", item)),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An optional choice among `choices` (case-insensitive), returned lower-case.
    pub fn choice(&self, name: &str, choices: &[&str]) -> Result<Option<String>, RequestError> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        let lower = text.to_ascii_lowercase();
        if choices.contains(&lower.as_str()) {
            Ok(Some(lower))
        } else {
            Err(RequestError::invalid(name, format!("is `{text}`; must be one of {}", choices.join(", "))))
        }
    }
}

/// `value` if it is positive, else an error naming `name`.
pub fn positive(name: &str, value: f64) -> Result<f64, RequestError> {
    if value > 0.0 && value.is_finite() {
        Ok(value)
    } else {
        Err(RequestError::invalid(name, format!("is {value}; must be a positive number")))
    }
}

/// The error for a parameter that must be given.
pub fn missing(name: &str) -> RequestError {
    RequestError::invalid(name, "is required")
}

fn wrong_type(name: &str, expected: &str, found: &Value) -> RequestError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    };
    RequestError::invalid(name, format!("must be {expected}, not {found}"))
}
