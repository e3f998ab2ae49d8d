//! `[workers.serve.compute]`: how much analysis work a serving instance takes on at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::InvalidSetting;

/// `[workers.serve.compute]`: how much analysis work the serving worker takes on at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeSettings {
    /// An analysis estimated to cost more CPU time than this is refused (`too_expensive`)
    /// before any work: a request must fit in what one instance can give one caller.
    #[serde(with = "humantime_serde")]
    pub max_cost: Duration,
    /// From this estimated cost on, an analysis is heavy: it waits for one of `heavy_slots`.
    #[serde(with = "humantime_serde")]
    pub heavy_cost: Duration,
    /// Heavy analyses running at once (each takes one core while it runs).
    pub heavy_slots: usize,
    /// Heavy analyses waiting at most; one more is refused (`overloaded`).
    pub max_heavy_waiting: usize,
    /// Nice value (0 to 19) of the threads running heavy analyses and background refreshes, so
    /// the OS serves cheap live requests and the consumer loop first.
    pub heavy_nice: i32,
    /// Background refreshes (stale-while-revalidate, early XFetch refreshes) start only while
    /// fewer than this many live analyses run and none waits for a heavy slot: a request
    /// somebody waits for always comes before one nobody waits for. While live work fills the
    /// pool the instance also tells the cache warmer, through Redis, to hold back.
    pub background_below_live: usize,
    /// How long a background refresh waits for that room before it gives up (counted as
    /// `frontier_cache_refreshes_skipped_total{cause="yielded"}`); the entry stays as it was
    /// and a later request asks for a refresh again.
    #[serde(with = "humantime_serde")]
    pub background_wait: Duration,
}

impl Default for ComputeSettings {
    fn default() -> Self {
        ComputeSettings {
            max_cost: Duration::from_secs(2),
            heavy_cost: Duration::from_millis(20),
            heavy_slots: 1,
            max_heavy_waiting: 1000,
            heavy_nice: 10,
            background_below_live: 2,
            background_wait: Duration::from_secs(2),
        }
    }
}

impl ComputeSettings {
    /// Checks what serde cannot; keys are relative to the table.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.max_cost.is_zero() || self.heavy_cost.is_zero() {
            let key = if self.max_cost.is_zero() { "max_cost" } else { "heavy_cost" };
            return Err(InvalidSetting::new(key, "must be greater than zero"));
        }
        if self.heavy_slots == 0 {
            return Err(InvalidSetting::new("heavy_slots", "must be at least 1"));
        }
        if !(0..=19).contains(&self.heavy_nice) {
            return Err(InvalidSetting::new("heavy_nice", "must be from 0 to 19"));
        }
        if self.background_below_live == 0 {
            return Err(InvalidSetting::new("background_below_live", "must be at least 1 (0 would never refresh)"));
        }
        if self.background_wait > Duration::from_secs(60) {
            return Err(InvalidSetting::new("background_wait", "must be at most 60s"));
        }
        Ok(())
    }
}
