//! Where a consumed message's time goes, stage by stage, so an operator sees which one stalls
//! (`frontier_bus_stage_duration_seconds{worker,stage}`; the stages are documented at
//! [`metrics::STAGE_SECONDS`]).

use std::time::Instant;

use super::delivery::Ticket;
use super::metrics;

/// The histograms of `metrics::STAGE_SECONDS` of one worker, resolved once.
pub(super) struct StageHistograms {
    kafka: ::metrics::Histogram,
    wait: ::metrics::Histogram,
    handle: ::metrics::Histogram,
    deliver: ::metrics::Histogram,
    settle: ::metrics::Histogram,
}

impl StageHistograms {
    pub(super) fn new(worker: &'static str) -> Self {
        let stage =
            |stage: &'static str| ::metrics::histogram!(metrics::STAGE_SECONDS, "worker" => worker, "stage" => stage);
        let [kafka, wait, handle, deliver, settle] = metrics::STAGES.map(stage);
        StageHistograms { kafka, wait, handle, deliver, settle }
    }

    /// Records the stages of a message that arrived at `arrived`, `in_kafka_ms` after its
    /// record timestamp, and whose offset is stored at `now`.
    pub(super) fn record(&self, arrived: Instant, in_kafka_ms: Option<i64>, ticket: &Ticket, now: Instant) {
        if let Some(ms) = in_kafka_ms {
            self.kafka.record(ms as f64 / 1000.0);
        }
        let (Some(started), Some(handled), Some(settled)) = ticket.timings() else { return };
        self.wait.record(started.saturating_duration_since(arrived).as_secs_f64());
        self.handle.record(handled.saturating_duration_since(started).as_secs_f64());
        self.deliver.record(settled.saturating_duration_since(handled).as_secs_f64());
        self.settle.record(now.saturating_duration_since(settled).as_secs_f64());
    }
}
