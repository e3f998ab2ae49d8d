//! `request_completed.avsc`: one finished request, on `frontier.metrics`.

use serde::{Deserialize, Serialize};

use super::{CacheLayer, RequestStatus};

/// One finished request (`frontier.sla.RequestCompleted`), written by every service that
/// answers requests and read by the SLA monitor and the cache warmer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestCompleted {
    /// Id of the request; kept as an exemplar when it is among the slowest or latest failed.
    pub id: String,
    /// Service that completed the request; half of the SLA series key.
    pub service: String,
    /// Kind of request; the other half of the series key.
    pub kind: String,
    /// Tenant the request was made for.
    pub tenant: String,
    /// Milliseconds from issue to completion.
    pub latency_ms: f64,
    /// Outcome of the request.
    pub status: RequestStatus,
    /// Cache layer that served it, or `none`.
    pub cache_layer: CacheLayer,
    /// Event time: when the request completed, milliseconds since the Unix epoch (UTC).
    pub occurred_at: i64,
    /// Service instance (pod) that completed it, if known.
    pub instance: Option<String>,
    /// The cache key of an ok answer, so the cache warmer can keep hot keys fresh.
    pub cache_key: Option<String>,
}
