//! Metric names of the CDN purger. Labels: `target` (a configured target's name) and
//! `outcome` (`ok`, `failed`: retryable, `refused`: final).

/// Purge requests sent, retries included, per target and outcome.
pub const REQUESTS: &str = "frontier_cdn_purge_requests_total";
/// Seconds from a batch's first request to its outcome, retries and token waits included.
pub const LATENCY: &str = "frontier_cdn_purge_seconds";
/// Objects the edge said a purge hit (Varnish reports them; the SaaS APIs do not).
pub const OBJECTS: &str = "frontier_cdn_purged_objects_total";
/// Purged files fetched through the edge right after the purge.
pub const REWARMED: &str = "frontier_cdn_rewarmed_total";
/// Purged files the edge still served old content for after every verification attempt.
pub const STALE: &str = "frontier_cdn_stale_after_purge_total";

/// Registers descriptions so `/metrics` explains itself.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        REQUESTS,
        "CDN purge requests sent, retries included, per target and outcome (ok, failed, refused)."
    );
    describe_histogram!(LATENCY, "Seconds from a purge batch's first request to its outcome.");
    describe_counter!(OBJECTS, "Objects a purge hit, where the edge reports it (Varnish).");
    describe_counter!(REWARMED, "Purged files fetched through the edge right after the purge.");
    describe_counter!(STALE, "Purged files the edge still served old content for after verification.");
    metrics::counter!(REWARMED).increment(0);
    metrics::counter!(STALE).increment(0);
}

/// Registers `target`'s failure counters at 0, so an alert on `increase()` sees the first one.
pub fn register(target: &str) {
    for outcome in ["ok", "failed", "refused"] {
        metrics::counter!(REQUESTS, "target" => target.to_owned(), "outcome" => outcome).increment(0);
    }
}
