//! The monitor's inputs as samples: one finished request (`schemas/request_completed.avsc`) or
//! one database statement (`schemas/db_query_event.avsc`), borrowed.

use crate::records::{CacheLayer, QueryEvent, QueryStatus, RequestCompleted, RequestStatus};

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

impl<'a> From<&'a RequestCompleted> for RequestSample<'a> {
    /// The borrowed fields the monitor reads, without copying any string.
    fn from(event: &'a RequestCompleted) -> Self {
        RequestSample {
            id: &event.id,
            service: &event.service,
            kind: &event.kind,
            latency_ms: event.latency_ms,
            status: event.status,
            cache_layer: event.cache_layer,
            occurred_at_ms: event.occurred_at,
        }
    }
}
