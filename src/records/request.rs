//! `request.avsc`: an analysis request, published to `frontier.requests`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Priority;

/// A request for one financial analysis (`frontier.serving.AnalysisRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRequest {
    /// Unique request id; echoed as the response's `request_id` and the event's `id`.
    pub id: String,
    /// Tenant the request is made for; part of the cache key.
    pub tenant: String,
    /// User within the tenant (not part of the answer).
    pub user: String,
    /// Analysis kind, e.g. `market.volatility`.
    pub kind: String,
    /// Parameters by name.
    pub params: BTreeMap<String, ParamValue>,
    /// How urgently to serve it.
    pub priority: Priority,
    /// Issue time, ms since the epoch: the start of `latency_ms`.
    pub issued_at: i64,
    /// After this (ms since the epoch) the answer is useless: answered `timeout` uncomputed.
    pub deadline: Option<i64>,
    /// Topic of the answer; `None` means the worker's responses topic.
    pub reply_to: Option<String>,
    /// Entitlements that change the answer; part of the cache key.
    pub entitlements: Vec<String>,
}

/// One parameter value: a branch of the `params` map's union. Serialized untagged, so the
/// Avro union branch (and the JSON form) is the value itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `null`: the parameter counts as absent.
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Long(i64),
    /// A number.
    Double(f64),
    /// A string.
    String(String),
    /// A list of strings.
    Strings(Vec<String>),
    /// A map of string to number.
    Numbers(BTreeMap<String, f64>),
}

impl ParamValue {
    /// The value as JSON, the form the analysis kinds parse and cache keys hash. A number that
    /// JSON cannot hold (NaN, infinite) has no JSON form: `None`.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value;
        let number = |x: f64| serde_json::Number::from_f64(x).map(Value::Number);
        Some(match self {
            ParamValue::Null => Value::Null,
            ParamValue::Boolean(b) => Value::Bool(*b),
            ParamValue::Long(n) => Value::from(*n),
            ParamValue::Double(x) => number(*x)?,
            ParamValue::String(s) => Value::String(s.clone()),
            ParamValue::Strings(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
            ParamValue::Numbers(map) => {
                Value::Object(map.iter().map(|(k, x)| Some((k.clone(), number(*x)?))).collect::<Option<_>>()?)
            }
        })
    }
}

impl AnalysisRequest {
    /// The params as a JSON object; `Err` names the first parameter whose number is not finite.
    pub fn params_json(&self) -> Result<serde_json::Value, String> {
        let mut object = serde_json::Map::with_capacity(self.params.len());
        for (name, value) in &self.params {
            object.insert(name.clone(), value.to_json().ok_or_else(|| name.clone())?);
        }
        Ok(serde_json::Value::Object(object))
    }
}
