//! Request bodies: what each route takes, read with the path of the field at fault in every
//! refusal, and turned into the records published to Kafka.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};

use super::error::ApiError;
use crate::market::{Analysis, RequestError};
use crate::records::{ParamValue, Priority};

/// The body of `POST /v1/analysis/{kind}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisBody {
    /// The analysis parameters (see the kinds' table in `market::requests`).
    #[serde(default)]
    pub params: Map<String, Json>,
    /// How urgently to serve it.
    #[serde(default)]
    pub priority: Priority,
    /// How long to wait for the answer, in milliseconds (also the request's deadline).
    pub timeout_ms: Option<u64>,
}

/// The body of `POST /v1/inference/{embed|classify}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceBody {
    /// The model to run; the gateway's `default_model` when absent.
    pub model: Option<String>,
    /// The texts, in order.
    pub inputs: Vec<String>,
    /// For classify: label -> description; the model's default labels when absent.
    pub labels: Option<HashMap<String, String>>,
    /// How urgently to run it.
    #[serde(default)]
    pub priority: Priority,
    /// How long to wait for the answer, in milliseconds (also the job's deadline).
    pub timeout_ms: Option<u64>,
}

/// Reads a JSON body as `T`: 413 for one over the size limit, 400 naming the field for one that
/// is not what the route takes. An empty body reads as `{}`.
pub fn read<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "body_too_large", rejection.body_text())
        } else {
            ApiError::new(status, "invalid_body", rejection.body_text())
        }
    })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let field = error.path().to_string();
        ApiError::invalid_body(field, error.into_inner().to_string())
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request(format!("trailing characters after the JSON body: {error}")))?;
    Ok(value)
}

/// Checks `params` for `kind` as the serving worker will: 404 for a kind nobody answers, 400
/// naming the parameter for a bad one. Returns them as the record's parameter map.
pub fn analysis_params(kind: &str, params: Map<String, Json>) -> Result<BTreeMap<String, ParamValue>, ApiError> {
    let params = Json::Object(params);
    if let Err(error) = Analysis::parse(kind, &params) {
        return Err(match error {
            RequestError::UnknownKind { .. } => ApiError::not_found("unknown_kind", error.to_string()),
            RequestError::InvalidParams { ref field, .. } => ApiError {
                code: "invalid_params",
                ..ApiError::invalid_body(format!("params.{field}"), error.to_string())
            },
            other => ApiError::bad_request(other.to_string()),
        });
    }
    let Json::Object(params) = params else { return Ok(BTreeMap::new()) };
    params
        .into_iter()
        .map(|(name, value)| {
            let field = format!("params.{name}");
            match serde_json::from_value::<ParamValue>(value) {
                Ok(value) => Ok((name, value)),
                Err(_) => Err(ApiError::invalid_body(
                    field,
                    "must be a number, string, boolean, null, list of strings or map of numbers",
                )),
            }
        })
        .collect()
}

/// The wait a body asks for, within `max`: 400 naming `timeout_ms` for 0 or more than `max`.
pub fn timeout(
    asked: Option<u64>,
    default: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, ApiError> {
    match asked {
        None => Ok(default),
        Some(ms) => {
            let asked = std::time::Duration::from_millis(ms);
            if ms == 0 || asked > max {
                Err(ApiError::invalid_body("timeout_ms", format!("must be from 1 to {}", max.as_millis())))
            } else {
                Ok(asked)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bytes(text: &str) -> Result<Bytes, BytesRejection> {
        Ok(Bytes::from(text.to_owned()))
    }

    #[test]
    fn a_mistyped_field_is_named_by_its_path() {
        let error = read::<AnalysisBody>(bytes(r#"{"params": {}, "priority": "urgent"}"#)).unwrap_err();
        assert_eq!((error.status, error.field.as_deref()), (StatusCode::BAD_REQUEST, Some("priority")));
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let error = read::<AnalysisBody>(bytes(r#"{"entitlements": ["all"]}"#)).unwrap_err();
        assert_eq!(error.code, "invalid_body");
        assert!(error.message.contains("entitlements"), "{}", error.message);
    }

    #[test]
    fn an_empty_body_is_an_empty_object() {
        let body = read::<AnalysisBody>(bytes("")).unwrap();
        assert!(body.params.is_empty());
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let error = read::<AnalysisBody>(bytes("{\"params\": ")).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_unknown_kind_is_not_found() {
        let error = analysis_params("market.weather", Map::new()).unwrap_err();
        assert_eq!((error.status, error.code), (StatusCode::NOT_FOUND, "unknown_kind"));
    }

    #[test]
    fn a_bad_parameter_is_named_under_params() {
        let params = json!({"symbol": "AAPL", "window_days": "many"});
        let Json::Object(params) = params else { unreachable!() };
        let error = analysis_params("market.volatility", params).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("params.window_days"));
    }

    #[test]
    fn good_parameters_become_record_values() {
        let Json::Object(params) = json!({"symbol": "AAPL", "window_days": 30}) else { unreachable!() };
        let params = analysis_params("market.volatility", params).unwrap();
        assert_eq!(params["window_days"], ParamValue::Long(30));
    }

    #[test]
    fn a_timeout_over_the_limit_is_refused() {
        let (default, max) = (std::time::Duration::from_secs(10), std::time::Duration::from_secs(60));
        assert!(timeout(Some(61_000), default, max).is_err());
        assert!(timeout(Some(0), default, max).is_err());
        assert_eq!(timeout(None, default, max).unwrap(), default);
    }
}
