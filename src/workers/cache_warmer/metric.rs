//! Metric names of the cache warmer (the cache's own counters label its refreshes
//! `reason="warmer"`).

/// Answers counted into the hot-key table: a `CacheHeat` key's requests, or one per
/// `RequestCompleted` event.
pub const EVENTS: &str = "frontier_cache_warmer_events_total";
/// Refreshes finished, per `outcome` (refreshed, no_recipe, failed, cancelled).
pub const REFRESHES: &str = "frontier_cache_warmer_refreshes_total";
/// Due refreshes put off because the budget of refreshes per second was spent.
pub const DEFERRED: &str = "frontier_cache_warmer_deferred_total";
/// Scans whose due refreshes were held back because a serving instance was busy.
pub const HELD_BACK: &str = "frontier_cache_warmer_held_back_total";
/// Seconds per refresh (recipe, computation, write-through).
pub const REFRESH_SECONDS: &str = "frontier_cache_warmer_refresh_duration_seconds";
/// Keys in the hot-key table.
pub const TRACKED_KEYS: &str = "frontier_cache_warmer_tracked_keys";
/// Keys hot enough to be kept warm.
pub const HOT_KEYS: &str = "frontier_cache_warmer_hot_keys";
/// Hot sets published to Redis, per `outcome` (published, failed).
pub const HOT_SET_PUBLISHES: &str = "frontier_cache_warmer_hot_set_publishes_total";

/// Registers descriptions so `/metrics` explains itself.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        EVENTS,
        "Answers counted by the cache warmer (from CacheHeat records or RequestCompleted events)."
    );
    describe_counter!(REFRESHES, "Cache warmer refreshes, by outcome.");
    describe_counter!(DEFERRED, "Due refreshes put off by the warmer's refresh budget.");
    describe_counter!(HELD_BACK, "Warmer scans held back because a serving instance was busy with live requests.");
    describe_histogram!(REFRESH_SECONDS, Unit::Seconds, "Seconds per cache warmer refresh.");
    describe_gauge!(TRACKED_KEYS, "Keys in the cache warmer's hot-key table.");
    describe_gauge!(HOT_KEYS, "Keys hot enough for the cache warmer to keep warm.");
    describe_counter!(HOT_SET_PUBLISHES, "Hot sets the cache warmer published to Redis, by outcome.");
}
