//! Metric names of the serving worker. Labels stay low-cardinality: `kind` is one of the known
//! kinds or `other`, `layer` one of memory/redis/disk/none, `status` ok/error/timeout, `code`
//! one of the stable error codes.

/// Seconds from a request's `issued_at` to its answer, per `kind` and `layer` (histogram).
pub const LATENCY: &str = "frontier_serve_latency_seconds";
/// Answers produced, per `status`.
pub const RESPONSES: &str = "frontier_serve_responses_total";
/// Error and timeout answers, per `code`.
pub const ERRORS: &str = "frontier_serve_errors_total";
/// Entries a starting instance loaded into its memory layer from the hot set.
pub const WARM_START_KEYS: &str = "frontier_serve_warm_start_keys_total";
/// Seconds a start spent warming the memory layer before taking partitions.
pub const WARM_START_SECONDS: &str = "frontier_serve_warm_start_duration_seconds";
/// Warm starts, per `outcome` (warmed, empty, no_redis, timed_out).
pub const WARM_STARTS: &str = "frontier_serve_warm_starts_total";
/// Seconds a computation waited for admission, per `priority` of its request, or
/// `background` for a refresh (which waits for room left by live requests); cheap live ones
/// are admitted at once and record zero.
pub const ADMISSION_WAIT_SECONDS: &str = "frontier_serve_admission_wait_seconds";
/// Times the instance told the cache warmers, through Redis, that live requests filled its
/// analysis pool (they hold their refreshes back while the mark lives).
pub const BUSY_MARKS: &str = "frontier_serve_busy_marks_total";

/// Keys per `CacheHeat` record written for the cache warmer (histogram).
pub const HEAT_KEYS: &str = "frontier_serve_heat_keys";
/// Full heat windows dropped because more filled up within `heat_interval` than are kept.
pub const HEAT_WINDOWS_DROPPED: &str = "frontier_serve_heat_windows_dropped_total";

/// Registers descriptions so `/metrics` explains itself.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "Seconds from a request's issued_at to its answer, by kind and cache layer."
    );
    describe_counter!(RESPONSES, "Answers produced by the serving worker, by status.");
    describe_counter!(ERRORS, "Error and timeout answers, by code.");
    describe_counter!(WARM_START_KEYS, "Entries loaded into memory from the hot set before taking partitions.");
    describe_histogram!(WARM_START_SECONDS, Unit::Seconds, "Seconds spent warming memory before taking partitions.");
    describe_counter!(WARM_STARTS, "Warm starts of the memory layer, by outcome.");
    describe_histogram!(
        ADMISSION_WAIT_SECONDS,
        Unit::Seconds,
        "Seconds a computation waited for admission, by priority (background for refreshes)."
    );
    describe_histogram!(HEAT_KEYS, "Keys per CacheHeat record written for the cache warmer.");
    describe_counter!(
        HEAT_WINDOWS_DROPPED,
        "Full heat windows dropped because more filled up within heat_interval than are kept."
    );
    describe_counter!(
        BUSY_MARKS,
        "Times live requests filled the analysis pool and the warmers were told to hold back."
    );
    describe_histogram!(
        crate::market::TURN_WAIT_SECONDS,
        Unit::Seconds,
        "Seconds a cheap live analysis waited for a core (one runs per core at once)."
    );
    describe_histogram!(
        crate::market::READS_PER_STATEMENT,
        "Latest-closes reads answered per statement (more than 1 when reads were gathered)."
    );
}

/// The `kind` label of a request kind: known kinds as they are, anything else `other` (kinds
/// come from clients and must not create series).
pub fn kind_label(kind: &str) -> &'static str {
    crate::market::requests::KNOWN_KINDS.iter().find(|known| **known == kind).copied().unwrap_or("other")
}

/// The `code` label of an error code: the stable codes as they are, anything else `other`.
pub fn code_label(code: &str) -> &'static str {
    const CODES: [&str; 13] = [
        "unknown_kind",
        "invalid_params",
        "unknown_symbol",
        "insufficient_history",
        "analysis_failed",
        "internal_error",
        "store_unavailable",
        "too_expensive",
        "overloaded",
        "invalid_reply_to",
        "unknown_reply_to",
        "response_too_large",
        super::DEADLINE_EXCEEDED,
    ];
    CODES.iter().find(|known| **known == code).copied().unwrap_or("other")
}
