//! Metric names of the autoscaler. Labels: `worker` (a sized worker's name, from the
//! configuration), `action` and `kind` (fixed values).

/// Decisions made, per group and action (scale_up, scale_down, hold).
pub const DECISIONS: &str = "frontier_autoscaler_decisions_total";
/// Instances running per sized worker after the latest tick.
pub const INSTANCES: &str = "frontier_autoscaler_instances";
/// Instances that ended without being asked to, per worker and kind (crash, failed_start).
pub const CRASHES: &str = "frontier_autoscaler_instance_exits_total";
/// Groups that could not be sampled (Kafka unreachable, a missing topic); their size is held.
pub const SAMPLE_ERRORS: &str = "frontier_autoscaler_sample_errors_total";
/// Sizes that could not be applied (a process that could not be spawned, a state file).
pub const ACTUATOR_ERRORS: &str = "frontier_autoscaler_actuator_errors_total";

/// Registers descriptions so `/metrics` explains itself.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(DECISIONS, "Autoscaler decisions per sized worker and action (scale_up, scale_down, hold).");
    describe_gauge!(INSTANCES, "Instances the autoscaler runs per sized worker.");
    describe_counter!(CRASHES, "Instances that ended without being asked to, by kind (crash, failed_start).");
    describe_counter!(SAMPLE_ERRORS, "Groups that could not be sampled; their size was held.");
    describe_counter!(ACTUATOR_ERRORS, "Group sizes that could not be applied.");
}

/// Registers `worker`'s failure counters at 0: Prometheus's `increase()` only sees a counter
/// rise from a value it scraped, so one born at 1 would hide the first failure from the
/// alerts of `ops/prometheus/autoscaler.yml`.
pub fn register(worker: &'static str) {
    for failed_start in [false, true] {
        metrics::counter!(CRASHES, "worker" => worker, "kind" => crash_kind(failed_start)).increment(0);
    }
    metrics::counter!(SAMPLE_ERRORS, "worker" => worker).increment(0);
    metrics::counter!(ACTUATOR_ERRORS, "worker" => worker).increment(0);
}

/// The `kind` label of [`CRASHES`] for an instance that ended unasked.
pub fn crash_kind(failed_start: bool) -> &'static str {
    if failed_start { "failed_start" } else { "crash" }
}
