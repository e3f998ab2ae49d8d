//! Metric names of the serving worker. Labels stay low-cardinality: `kind` is one of the known
//! kinds or `other`, `layer` one of memory/redis/disk/none, `status` ok/error/timeout, `code`
//! one of the stable error codes.

/// Seconds from a request's `issued_at` to its answer, per `kind` and `layer` (histogram).
pub const LATENCY: &str = "frontier_serve_latency_seconds";
/// Answers produced, per `status`.
pub const RESPONSES: &str = "frontier_serve_responses_total";
/// Error and timeout answers, per `code`.
pub const ERRORS: &str = "frontier_serve_errors_total";
/// Requests put back for a retry because the price store was unavailable.
pub const STORE_UNAVAILABLE: &str = "frontier_serve_store_unavailable_total";
/// Invalidation orders applied by this instance.
pub const INVALIDATIONS_APPLIED: &str = "frontier_serve_invalidations_applied_total";
/// Exact keys of invalidation orders that are not cache keys (ignored).
pub const INVALID_KEYS: &str = "frontier_serve_invalidation_keys_ignored_total";

/// Registers descriptions so `/metrics` explains itself.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(LATENCY, Unit::Seconds, "Seconds from a request's issued_at to its answer, by kind and cache layer.");
    describe_counter!(RESPONSES, "Answers produced by the serving worker, by status.");
    describe_counter!(ERRORS, "Error and timeout answers, by code.");
    describe_counter!(STORE_UNAVAILABLE, "Requests retried because the price store was unavailable.");
    describe_counter!(INVALIDATIONS_APPLIED, "Cache invalidation orders applied by this instance.");
    describe_counter!(INVALID_KEYS, "Exact keys in invalidation orders that are not cache keys.");
}

/// The `kind` label of a request kind: known kinds as they are, anything else `other` (kinds
/// come from clients and must not create series).
pub fn kind_label(kind: &str) -> &'static str {
    crate::market::requests::KNOWN_KINDS.iter().find(|known| **known == kind).copied().unwrap_or("other")
}
