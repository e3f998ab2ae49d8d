//! Metric names of the bus. Labels stay low-cardinality: worker, topic, partition, reason kind.

/// Messages received from Kafka, per worker and topic.
pub const CONSUMED: &str = "frontier_messages_consumed_total";
/// Records acknowledged by Kafka, per worker and output topic.
pub const PRODUCED: &str = "frontier_messages_produced_total";
/// Messages whose offset was stored for commit, per worker.
pub const STORED: &str = "frontier_offsets_stored_total";
/// Offset commits acknowledged by the group coordinator, per group and result.
pub const COMMITS: &str = "frontier_offset_commits_total";
/// Messages sent to the dead-letter topic, per worker and reason kind.
pub const DEAD_LETTERED: &str = "frontier_messages_dead_lettered_total";
/// Transient handler failures that were retried, per worker and kind.
pub const RETRIES: &str = "frontier_handler_retries_total";
/// Periodic worker runs that failed, per worker.
pub const TICK_FAILURES: &str = "frontier_tick_failures_total";
/// Partitions consumed again from a message whose output the cluster could not take within
/// `kafka.delivery_timeout`, per worker.
pub const REWINDS: &str = "frontier_bus_rewinds_total";
/// Periodic output records sent again after the cluster could not take them in time, per worker.
pub const RESENT: &str = "frontier_bus_outputs_resent_total";
/// Time from a message's arrival to all its outputs being acknowledged, per worker.
pub const HANDLE_SECONDS: &str = "frontier_handle_duration_seconds";
/// Where a message's time goes, per worker and `stage`: `kafka` (from its record timestamp to
/// the loop receiving it: the producer's linger, the broker, the fetch), `wait` (received to
/// its handler running: the loop is busy), `handle` (the worker's own work), `deliver`
/// (handler done to every output acknowledged by the brokers) and `settle` (acknowledged to
/// its offset stored: waiting for slower messages before it in its partition order).
pub const STAGE_SECONDS: &str = "frontier_bus_stage_duration_seconds";
/// The `stage` label values of [`STAGE_SECONDS`], in the order a message passes them.
pub const STAGES: [&str; 5] = ["kafka", "wait", "handle", "deliver", "settle"];
/// Consumer lag per group, topic and partition, from librdkafka statistics.
pub const CONSUMER_LAG: &str = "frontier_consumer_lag";
/// Errors reported by the Kafka client, per client kind.
pub const CLIENT_ERRORS: &str = "frontier_kafka_client_errors_total";
/// Rebalance events per group and kind (assign, revoke, error; orphan_rejoin: a member left
/// and rejoined because the group left partitions without an owner).
pub const REBALANCES: &str = "frontier_rebalances_total";

/// Registers descriptions so `/metrics` explains itself.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(CONSUMED, "Messages received from Kafka.");
    describe_counter!(PRODUCED, "Records acknowledged by Kafka.");
    describe_counter!(STORED, "Offsets stored for commit after their outputs were acknowledged.");
    describe_counter!(COMMITS, "Offset commits by result.");
    describe_counter!(DEAD_LETTERED, "Messages sent to the dead-letter topic.");
    describe_counter!(RETRIES, "Transient handler failures retried.");
    describe_counter!(TICK_FAILURES, "Periodic worker runs that failed.");
    describe_counter!(REWINDS, "Partitions consumed again after an output was not delivered in time.");
    describe_counter!(RESENT, "Periodic output records sent again after not being delivered in time.");
    describe_histogram!(HANDLE_SECONDS, Unit::Seconds, "From arrival to all outputs acknowledged.");
    describe_histogram!(
        STAGE_SECONDS,
        Unit::Seconds,
        "Seconds a message spends per stage: kafka, wait, handle, deliver, settle."
    );
    describe_gauge!(CONSUMER_LAG, "Messages between the committed offset and the partition end.");
    describe_counter!(CLIENT_ERRORS, "Errors reported by the Kafka client.");
    describe_counter!(REBALANCES, "Consumer group rebalance events.");
}
