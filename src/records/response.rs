//! `response.avsc`: the answer to an analysis request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CacheLayer, RequestStatus};

/// The answer to one `AnalysisRequest` (`frontier.serving.AnalysisResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResponse {
    /// The request's id.
    pub request_id: String,
    /// The request's tenant.
    pub tenant: String,
    /// The request's kind.
    pub kind: String,
    /// Outcome.
    pub status: RequestStatus,
    /// Named numbers when ok.
    pub result: Option<BTreeMap<String, f64>>,
    /// Why, when not ok.
    pub error: Option<ErrorDetail>,
    /// Layer that answered (`none` when computed).
    pub cache_layer: CacheLayer,
    /// Age of a cached answer in ms; `None` when computed.
    pub cache_age_ms: Option<i64>,
    /// Milliseconds from `issued_at` to the answer being ready.
    pub latency_ms: f64,
    /// The instance that answered.
    pub served_by: String,
    /// When the answer was ready, ms since the epoch.
    pub completed_at: i64,
}

/// Why a request failed (`frontier.serving.ErrorDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable lower_snake_case code (`invalid_params`, `unknown_symbol`, `deadline_exceeded`).
    pub code: String,
    /// Readable explanation.
    pub message: String,
}
