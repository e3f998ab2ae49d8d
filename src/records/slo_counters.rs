//! `slo_counters.avsc`: the SLA monitor's SLO counter checkpoints, on `frontier.sla.slo-counters`.

use serde::{Deserialize, Serialize};

/// Per-minute SLO counters of one series for one hour (`frontier.sla.SloCounters`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloCounters {
    /// The series' service.
    pub service: String,
    /// The series' kind.
    pub kind: String,
    /// Start of the hour, ms since the epoch.
    pub hour_start: i64,
    /// Since when the stream was observed without a gap, ms since the epoch.
    pub observed_since: i64,
    /// One entry per SLO of the series.
    pub slos: Vec<SloMinuteCounts>,
    /// When it was written, ms since the epoch.
    pub written_at: i64,
}

/// One SLO's counters over the hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SloMinuteCounts {
    /// The SLO's name.
    pub slo: String,
    /// Minutes with events, ascending.
    pub minutes: Vec<MinuteCount>,
}

/// Events and bad events of one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteCount {
    /// Minute within the hour, 0 to 59.
    pub minute: i32,
    /// Events in the minute.
    pub events: i64,
    /// Bad events in the minute.
    pub bad: i64,
}

impl SloCounters {
    /// The compaction key: service, kind and hour, unambiguous whatever the names hold.
    pub fn key(&self) -> Vec<u8> {
        serde_json::json!([self.service, self.kind, self.hour_start]).to_string().into_bytes()
    }
}
