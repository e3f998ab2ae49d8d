//! The monitor's inputs: one finished request (`schemas/request_completed.avsc`) and one
//! database statement (`schemas/db_query_event.avsc`).

use serde::{Deserialize, Serialize};

use crate::market::{QueryEvent, QueryStatus};

/// One finished request, as decoded from `frontier.metrics` (`frontier.sla.RequestCompleted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestCompleted {
    /// Id of the request; kept as an exemplar when it is among the slowest or latest failed.
    pub id: String,
    /// Service that completed the request; half of the series key.
    pub service: String,
    /// Kind of request; the other half of the series key.
    pub kind: String,
    /// Tenant the request was made for (not a series dimension yet).
    pub tenant: String,
    /// Milliseconds from issue to completion.
    pub latency_ms: f64,
    /// Outcome of the request.
    pub status: RequestStatus,
    /// Cache tier that served it, or `none`.
    pub cache_layer: CacheLayer,
    /// Event time: when the request completed, milliseconds since the Unix epoch (UTC).
    pub occurred_at: i64,
    /// Service instance (pod) that completed it, if known.
    pub instance: Option<String>,
}

impl RequestCompleted {
    /// The borrowed fields the monitor reads, without copying any string.
    pub fn sample(&self) -> RequestSample<'_> {
        RequestSample {
            id: &self.id,
            service: &self.service,
            kind: &self.kind,
            latency_ms: self.latency_ms,
            status: self.status,
            cache_layer: self.cache_layer,
            occurred_at_ms: self.occurred_at,
        }
    }
}

/// What [`crate::sla::SlaMonitor::observe_sample`] needs of a finished request, borrowed, so a
/// caller that decodes straight from an Avro value (or a benchmark looping over prepared events)
/// pays for no string copies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestSample<'a> {
    /// Request id (exemplar candidate).
    pub id: &'a str,
    /// Service of the series.
    pub service: &'a str,
    /// Kind of the series.
    pub kind: &'a str,
    /// Latency in milliseconds.
    pub latency_ms: f64,
    /// Outcome.
    pub status: RequestStatus,
    /// Cache tier that answered.
    pub cache_layer: CacheLayer,
    /// Event time, milliseconds since the Unix epoch.
    pub occurred_at_ms: i64,
}

/// Outcome of a request. Unknown future symbols resolve to `error` through the schema default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Answered successfully.
    Ok,
    /// Failed; counts against the error rate and availability.
    Error,
    /// Gave up waiting; counts against the timeout rate and availability.
    Timeout,
}

/// Cache tier that served a request. Unknown future symbols resolve to `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheLayer {
    /// In-process cache.
    Memory,
    /// Shared Redis cache.
    Redis,
    /// Local persistent cache.
    Disk,
    /// Computed fresh, or the service has no cache.
    None,
}

impl CacheLayer {
    /// Whether the answer came from any cache tier.
    pub fn is_hit(self) -> bool {
        self != CacheLayer::None
    }
}

/// The kind of a database statement's series: `db:<database>`.
pub fn query_series_kind(statement: &QueryEvent) -> String {
    format!("{}{}", super::rules::QUERY_KIND_PREFIX, statement.database)
}

/// A database statement as a sample of its series (the application's, kind
/// [`query_series_kind`]), with the statement's duration as latency, so timeouts and slow
/// statements get SLIs of their own.
pub fn query_sample<'a>(statement: &'a QueryEvent, kind: &'a str) -> RequestSample<'a> {
    RequestSample {
        id: &statement.id,
        service: &statement.application,
        kind,
        latency_ms: statement.duration_ms,
        status: match statement.status {
            QueryStatus::Ok => RequestStatus::Ok,
            QueryStatus::Error => RequestStatus::Error,
            QueryStatus::Timeout => RequestStatus::Timeout,
        },
        cache_layer: CacheLayer::None,
        occurred_at_ms: statement.occurred_at,
    }
}
