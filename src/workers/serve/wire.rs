//! The records on the wire: `AnalysisRequest` in (`request.avsc`), `AnalysisResponse`
//! (`response.avsc`) and `RequestCompleted` (`request_completed.avsc`) out, as serde types the
//! Avro codec maps field by field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The service name in the request-completed events of the serving worker.
pub const SERVICE: &str = "serve";

/// An `AnalysisRequest` as published. Read from the decoded Avro value through JSON, because
/// `params` is a map of a union that plain JSON represents as it is meant (numbers, strings,
/// lists, maps).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestRecord {
    /// Unique request id; echoed as the response's `request_id` and the event's `id`.
    pub id: String,
    /// Tenant the request is made for; part of the cache key.
    pub tenant: String,
    /// User within the tenant (not part of the answer).
    pub user: String,
    /// Analysis kind, e.g. `market.volatility`.
    pub kind: String,
    /// Parameters by name.
    pub params: Map<String, Value>,
    /// Issue time, ms since the epoch: the start of `latency_ms`.
    pub issued_at: i64,
    /// After this (ms since the epoch) the answer is useless: answered `timeout` uncomputed.
    pub deadline: Option<i64>,
    /// Topic of the answer; `None` means the worker's responses topic.
    pub reply_to: Option<String>,
    /// Entitlements that change the answer; part of the cache key.
    #[serde(default)]
    pub entitlements: Vec<String>,
}

/// Outcome of a request; the symbols of `ResponseStatus` and `RequestStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `result` is set.
    Ok,
    /// `error` is set.
    Error,
    /// The deadline passed before an answer; `error` says so.
    Timeout,
}

impl Status {
    /// The symbol, also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Timeout => "timeout",
        }
    }
}

/// Why a request failed (`ErrorDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable lower_snake_case code (`invalid_params`, `unknown_symbol`, `deadline_exceeded`).
    pub code: String,
    /// Readable explanation.
    pub message: String,
}

/// An `AnalysisResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// The request's id.
    pub request_id: String,
    /// The request's tenant.
    pub tenant: String,
    /// The request's kind.
    pub kind: String,
    /// Outcome.
    pub status: Status,
    /// Named numbers when ok.
    pub result: Option<BTreeMap<String, f64>>,
    /// Why, when not ok.
    pub error: Option<ErrorDetail>,
    /// Layer that answered (`memory`, `redis`, `disk`, or `none` when computed).
    pub cache_layer: String,
    /// Age of a cached answer in ms; `None` when computed.
    pub cache_age_ms: Option<i64>,
    /// Milliseconds from `issued_at` to the answer being ready.
    pub latency_ms: f64,
    /// The instance that answered.
    pub served_by: String,
    /// When the answer was ready, ms since the epoch.
    pub completed_at: i64,
}

/// A `RequestCompleted` event as the serving worker writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedRecord {
    /// The request's id.
    pub id: String,
    /// Always [`SERVICE`].
    pub service: String,
    /// The request's kind.
    pub kind: String,
    /// The request's tenant.
    pub tenant: String,
    /// Milliseconds from issue to answer.
    pub latency_ms: f64,
    /// Outcome.
    pub status: Status,
    /// Layer that answered.
    pub cache_layer: String,
    /// When it completed, ms since the epoch.
    pub occurred_at: i64,
    /// The instance that answered.
    pub instance: Option<String>,
    /// The cache key of an ok answer, so the cache warmer can keep hot keys fresh.
    pub cache_key: Option<String>,
}
