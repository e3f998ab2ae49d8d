//! Per-minute good/bad counters of one SLO and series, kept for the SLO's longest window (3 days
//! by default: 4,323 minutes of two `u32`s, about 35 KB), from which burn rates over any
//! whole-minute window are summed exactly.

use super::bucket::UNUSED;

const MINUTE_MS: i64 = 60_000;

/// Events and bad events of one minute.
#[derive(Debug, Clone, Copy)]
struct MinuteTally {
    minute: i64,
    events: u32,
    bad: u32,
}

/// Ring of per-minute tallies.
#[derive(Debug)]
pub(crate) struct SloCounterRing {
    slots: Vec<MinuteTally>,
}

/// Events and bad events of a window, and the window's first minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub events: u64,
    pub bad: u64,
    pub start_ms: i64,
}

impl SloCounterRing {
    /// A ring for windows up to `longest_minutes` whole minutes plus the current one, for events
    /// within `spread_ms` of the newest (see `StreamClock::spread_ms`).
    pub(crate) fn new(longest_minutes: i64, spread_ms: i64) -> Self {
        let spread_minutes = (spread_ms + MINUTE_MS - 1).div_euclid(MINUTE_MS);
        let len = longest_minutes + 1 + spread_minutes + 1;
        SloCounterRing { slots: vec![MinuteTally { minute: UNUSED, events: 0, bad: 0 }; len as usize] }
    }

    /// Counts one event at `at_ms`; false if its slot holds a newer minute (see `WindowRing::record`).
    pub(crate) fn record(&mut self, at_ms: i64, bad: bool) -> bool {
        let minute = at_ms.div_euclid(MINUTE_MS);
        let slot = self.slot_of(minute);
        let tally = &mut self.slots[slot];
        if tally.minute < minute {
            *tally = MinuteTally { minute, events: 0, bad: 0 };
        } else if tally.minute > minute {
            return false;
        }
        tally.events = tally.events.saturating_add(1);
        tally.bad = tally.bad.saturating_add(u32::from(bad));
        true
    }

    /// Sets the counts of `minute` (minutes since the epoch) from a checkpoint; false, setting
    /// nothing, if its slot holds a newer minute.
    pub(crate) fn restore(&mut self, minute: i64, events: u32, bad: u32) -> bool {
        let slot = self.slot_of(minute);
        let tally = &mut self.slots[slot];
        if tally.minute > minute {
            return false;
        }
        *tally = MinuteTally { minute, events, bad: bad.min(events) };
        true
    }

    /// `(minute, events, bad)` of every minute in `from..until` (minutes since the epoch) that has
    /// events, ascending.
    pub(crate) fn minutes(&self, from: i64, until: i64) -> impl Iterator<Item = (i64, u32, u32)> + '_ {
        (from..until).filter_map(move |minute| {
            let tally = &self.slots[self.slot_of(minute)];
            (tally.minute == minute && tally.events > 0).then_some((minute, tally.events, tally.bad))
        })
    }

    /// The window of `minutes` whole minutes before the minute holding `end_ms`, plus that minute.
    pub(crate) fn tally(&self, end_ms: i64, minutes: i64) -> Tally {
        let end = end_ms.div_euclid(MINUTE_MS);
        let start = end - minutes;
        let mut tally = Tally { events: 0, bad: 0, start_ms: start * MINUTE_MS };
        for minute in start..=end {
            let slot = &self.slots[self.slot_of(minute)];
            if slot.minute == minute {
                tally.events += u64::from(slot.events);
                tally.bad += u64::from(slot.bad);
            }
        }
        tally
    }

    fn slot_of(&self, minute: i64) -> usize {
        // rem_euclid of a positive length is in 0..len, which fits usize.
        minute.rem_euclid(self.slots.len() as i64) as usize
    }
}
