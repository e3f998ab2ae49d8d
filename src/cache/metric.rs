//! Metric names of the request cache. Labels stay low-cardinality: `layer` (memory, redis,
//! disk), `use`, `reason`, `op` and `cause` take a handful of fixed values; never a key or a
//! tag.

/// Lookups answered by a layer, per `layer` (memory, redis, disk) and `use`; stale answers
/// included.
pub const HITS: &str = "frontier_cache_hits_total";
/// Lookups no layer could answer, so the value was computed, per `use`.
pub const MISSES: &str = "frontier_cache_misses_total";

/// The kind prefix of the keys of cached read statements (the price store's statement cache).
pub const STATEMENT_KIND_PREFIX: &str = "sql.";

/// The `use` label of a lookup of `key`: `statement` for a cached read statement, `request`
/// for everything else (results, recipes), so a request hit ratio is not flattered by the
/// statements computing it.
pub fn use_of(key: &str) -> &'static str {
    if key.starts_with(STATEMENT_KIND_PREFIX) { "statement" } else { "request" }
}
/// Requests that waited for an identical lookup already in flight instead of starting one.
pub const COALESCED: &str = "frontier_cache_coalesced_total";
/// Expired entries served within their grace window while a refresh runs, per `layer`.
pub const STALE_SERVED: &str = "frontier_cache_stale_served_total";
/// Background recomputations started, per `reason` (stale, xfetch, warmer).
pub const REFRESHES: &str = "frontier_cache_refreshes_total";
/// Background refreshes not run, per `cause`: `busy` (every refresh slot taken: the entry is
/// served as it is and a later request tries again), `redis_fresher` (Redis already held a
/// newer copy, which memory took instead of recomputing) or `yielded` (live requests kept the
/// instance's analysis pool full for the refresh's whole wait).
pub const REFRESHES_SKIPPED: &str = "frontier_cache_refreshes_skipped_total";
/// Computations that returned an error (nothing is cached for them).
pub const COMPUTE_ERRORS: &str = "frontier_cache_compute_errors_total";
/// Time spent computing values, from start to result.
pub const COMPUTE_SECONDS: &str = "frontier_cache_compute_duration_seconds";
/// Failed Redis operations, per `op` (connect, get, set, invalidate, remove, versions).
pub const REDIS_ERRORS: &str = "frontier_cache_redis_errors_total";
/// Seconds per Redis command, per `op`, from asking for the connection to the reply (the
/// client's queue, the network and Redis itself; not the sealing around it).
pub const REDIS_SECONDS: &str = "frontier_cache_redis_duration_seconds";
/// 1 while Redis is in use, 0 while the cache serves without it.
pub const REDIS_UP: &str = "frontier_cache_redis_up";
/// Failed disk operations, per `op` (read, write, remove, scan).
pub const DISK_ERRORS: &str = "frontier_cache_disk_errors_total";
/// Entries waiting for the disk layer's writer (their answers went out already).
pub const DISK_QUEUE: &str = "frontier_cache_disk_queue";
/// Disk writes skipped because the writer's queue was full (the entry stays in memory and
/// Redis; a disk that keeps up never skips).
pub const DISK_WRITES_SKIPPED: &str = "frontier_cache_disk_writes_skipped_total";
/// Entries removed to make room or because they expired, per `layer` and `cause`.
pub const EVICTIONS: &str = "frontier_cache_evictions_total";
/// Stored entries that could not be opened (tampered, truncated, unknown or retired key),
/// per `layer` and `reason`; each is treated as a miss and dropped.
pub const UNREADABLE: &str = "frontier_cache_unreadable_total";
/// Write-throughs refused because a tag of the value was invalidated after its computation
/// started, per `layer`.
pub const WRITES_REFUSED: &str = "frontier_cache_writes_refused_total";
/// Invalidation orders applied (tags with a version, or exact keys).
pub const INVALIDATIONS: &str = "frontier_cache_invalidations_total";
/// Entries dropped by invalidation orders, per `layer`.
pub const INVALIDATED_ENTRIES: &str = "frontier_cache_invalidated_entries_total";
/// Exact keys of invalidation orders that are not cache keys (ignored).
pub const INVALID_KEYS: &str = "frontier_cache_invalidation_keys_ignored_total";
/// Bytes held by a layer this process owns, per `layer` (memory, disk).
pub const BYTES: &str = "frontier_cache_bytes";

/// Registers descriptions so `/metrics` explains itself.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HITS, "Cache lookups answered by a layer (memory, redis, disk), by use (request, statement).");
    describe_counter!(
        MISSES,
        "Cache lookups no layer could answer (the value was computed), by use (request, statement)."
    );
    describe_counter!(COALESCED, "Requests that awaited an identical lookup already in flight.");
    describe_counter!(STALE_SERVED, "Expired entries served within their grace window.");
    describe_counter!(REFRESHES, "Background recomputations started, by reason.");
    describe_counter!(REFRESHES_SKIPPED, "Background refreshes not run, by cause (busy, redis_fresher, yielded).");
    describe_counter!(COMPUTE_ERRORS, "Computations that failed (nothing cached).");
    describe_histogram!(COMPUTE_SECONDS, Unit::Seconds, "Time spent computing a cached value.");
    describe_counter!(REDIS_ERRORS, "Failed Redis operations, by operation.");
    describe_histogram!(REDIS_SECONDS, Unit::Seconds, "Seconds per Redis command, by operation.");
    describe_gauge!(REDIS_UP, "1 while the Redis layer is in use, 0 while serving without it.");
    describe_counter!(DISK_ERRORS, "Failed disk-layer operations, by operation.");
    describe_gauge!(DISK_QUEUE, "Entries waiting for the disk layer's writer.");
    describe_counter!(DISK_WRITES_SKIPPED, "Disk writes skipped because the writer's queue was full.");
    describe_counter!(EVICTIONS, "Entries evicted, by layer and cause.");
    describe_counter!(UNREADABLE, "Stored entries that could not be opened, by layer and reason.");
    describe_counter!(WRITES_REFUSED, "Write-throughs refused by a newer invalidation, by layer.");
    describe_counter!(INVALIDATIONS, "Invalidation orders applied.");
    describe_counter!(INVALIDATED_ENTRIES, "Entries dropped by invalidation, by layer.");
    describe_counter!(INVALID_KEYS, "Exact keys in invalidation orders that are not cache keys (ignored).");
    describe_gauge!(BYTES, Unit::Bytes, "Bytes held by a cache layer of this process.");
}
