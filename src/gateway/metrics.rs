//! The gateway's metrics: names are constants, labels a fixed set (route template, status
//! class, error code).

use std::sync::Once;

/// Requests answered, by route (its template, e.g. `/v1/analysis/{kind}`) and HTTP status.
pub const REQUESTS: &str = "frontier_gateway_requests_total";
/// Seconds from a request's arrival to its answer, by route.
pub const REQUEST_SECONDS: &str = "frontier_gateway_request_duration_seconds";
/// Errors answered, by code (`unauthenticated`, `deadline_exceeded`, `kafka_unavailable`, ...).
pub const ERRORS: &str = "frontier_gateway_errors_total";
/// Requests waiting for their answer or kept for polling.
pub const PENDING: &str = "frontier_gateway_pending_requests";
/// Messages on the reply topic that matched no pending request (answered after the caller gave
/// up and the result expired, or sent twice by an at-least-once worker).
pub const REPLIES_UNMATCHED: &str = "frontier_gateway_replies_unmatched_total";
/// Messages on the reply topic that could not be decoded.
pub const REPLIES_UNDECODABLE: &str = "frontier_gateway_replies_undecodable_total";
/// Dashboard queries that failed, by source (prometheus, alertmanager).
pub const DASHBOARD_SOURCE_ERRORS: &str = "frontier_gateway_dashboard_source_errors_total";

static DESCRIBED: Once = Once::new();

/// Registers the descriptions once per process.
pub fn describe() {
    DESCRIBED.call_once(|| {
        ::metrics::describe_counter!(REQUESTS, "Requests answered, by route and HTTP status.");
        ::metrics::describe_histogram!(
            REQUEST_SECONDS,
            ::metrics::Unit::Seconds,
            "Seconds from a request's arrival at the gateway to its answer, by route."
        );
        ::metrics::describe_counter!(ERRORS, "Errors answered by the gateway, by code.");
        ::metrics::describe_gauge!(PENDING, "Requests waiting for their answer or kept for polling.");
        ::metrics::describe_counter!(REPLIES_UNMATCHED, "Replies that matched no pending request.");
        ::metrics::describe_counter!(REPLIES_UNDECODABLE, "Replies that could not be decoded.");
        ::metrics::describe_counter!(DASHBOARD_SOURCE_ERRORS, "Failed dashboard queries, by source.");
    });
}

/// Counts a failed dashboard query to `source` (prometheus, alertmanager).
pub fn dashboard_source_failed(source: &'static str) {
    ::metrics::counter!(DASHBOARD_SOURCE_ERRORS, "source" => source).increment(1);
}

/// Counts an error answered with `code`.
pub fn error_answered(code: &'static str) {
    ::metrics::counter!(ERRORS, "code" => code).increment(1);
}

/// Counts and times one answered request.
pub fn request_answered(route: &str, status: u16, seconds: f64) {
    ::metrics::counter!(REQUESTS, "route" => route.to_owned(), "status" => status.to_string()).increment(1);
    ::metrics::histogram!(REQUEST_SECONDS, "route" => route.to_owned()).record(seconds);
}
