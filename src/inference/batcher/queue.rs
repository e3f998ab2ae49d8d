//! The queues of one model: a FIFO per priority plus one for delayed jobs, deadlines and
//! timeouts indexed by time, and batch formation in effective-priority order. Pure data: time
//! is passed in, nothing here awaits, so the scheduling rules are tested without a clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::settings::{PriorityPolicies, TimeoutAction};
use crate::records::Priority;

/// Levels 0 (critical) to 3 (low), and 4 for jobs delayed past low by their timeout.
const LEVELS: usize = 5;
const DELAYED_LEVEL: usize = 4;

/// A job waiting in a queue, with what scheduling needs to know about it.
#[derive(Debug)]
pub struct Queued<T> {
    /// What the caller queued (the job and where to answer it).
    pub payload: T,
    /// Its inputs: what it adds to a batch's size.
    pub inputs: usize,
    /// Its longest input in bytes: what a batch pads to, when grouping by length.
    pub length: usize,
    /// The priority it arrived with.
    pub priority: Priority,
    /// When it arrived.
    pub arrived: Instant,
    /// Its level now: its priority, or lower after `delay` timeouts (4 = behind low).
    level: usize,
    /// When it entered its current level: aging counts from here.
    since: Instant,
    /// When it expires (its deadline, or a `reject` timeout).
    expires_at: Option<Instant>,
    /// When a `delay` timeout demotes it.
    demote_at: Option<Instant>,
}

/// Why a job left the queue without running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its deadline (or its priority's `reject` timeout) passed.
    Expired,
    /// It arrived at a full queue.
    QueueFull,
}

/// The queues of one model.
#[derive(Debug)]
pub struct PriorityQueues<T> {
    entries: HashMap<u64, Queued<T>>,
    /// Sequence numbers per level in arrival order; an entry that left or moved is skipped lazily.
    levels: [VecDeque<u64>; LEVELS],
    /// Jobs per priority they arrived with, for `max_queue_size`.
    waiting: [usize; 4],
    inputs: usize,
    expiries: BTreeSet<(Instant, u64)>,
    demotions: BTreeSet<(Instant, u64)>,
    next_seq: u64,
}

impl<T> Default for PriorityQueues<T> {
    fn default() -> Self {
        PriorityQueues {
            entries: HashMap::new(),
            levels: Default::default(),
            waiting: [0; 4],
            inputs: 0,
            expiries: BTreeSet::new(),
            demotions: BTreeSet::new(),
            next_seq: 0,
        }
    }
}

impl<T> PriorityQueues<T> {
    /// Queues a job, or gives it back with [`Dropped::QueueFull`] when its priority's queue is
    /// at `max_queue_size`. Without a deadline, the priority's default timeout applies.
    pub fn push(
        &mut self,
        payload: T,
        (inputs, length): (usize, usize),
        priority: Priority,
        deadline: Option<Instant>,
        now: Instant,
        policies: &PriorityPolicies,
    ) -> Result<(), (T, Dropped)> {
        let policy = policies.of(priority);
        if self.waiting[priority.level()] >= policy.max_queue_size {
            return Err((payload, Dropped::QueueFull));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut entry = Queued {
            payload,
            inputs,
            length,
            priority,
            arrived: now,
            level: priority.level(),
            since: now,
            expires_at: deadline,
            demote_at: None,
        };
        if deadline.is_none() {
            self.apply_timeout(&mut entry, now, policies);
        }
        self.index(seq, &entry);
        self.levels[entry.level].push_back(seq);
        self.waiting[priority.level()] += 1;
        self.inputs += inputs;
        self.entries.insert(seq, entry);
        Ok(())
    }

    /// Sets the timeout of the level `entry` is at now, counted from `now`.
    fn apply_timeout(&self, entry: &mut Queued<T>, now: Instant, policies: &PriorityPolicies) {
        let policy = policies.of(Priority::from_level(entry.level));
        let Some(timeout) = policy.default_timeout else {
            return;
        };
        match policy.timeout_action {
            TimeoutAction::Reject => entry.expires_at = Some(now + timeout),
            // Already behind low: nothing left to demote it to.
            TimeoutAction::Delay if entry.level == DELAYED_LEVEL => {}
            TimeoutAction::Delay => entry.demote_at = Some(now + timeout),
        }
    }

    fn index(&mut self, seq: u64, entry: &Queued<T>) {
        if let Some(at) = entry.expires_at {
            self.expiries.insert((at, seq));
        }
        if let Some(at) = entry.demote_at {
            self.demotions.insert((at, seq));
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Queued<T>> {
        let entry = self.entries.remove(&seq)?;
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, seq));
        }
        if let Some(at) = entry.demote_at {
            self.demotions.remove(&(at, seq));
        }
        self.waiting[entry.priority.level()] -= 1;
        self.inputs -= entry.inputs;
        Some(entry)
    }

    /// Removes the jobs whose deadline or `reject` timeout passed by `now` (to be answered
    /// expired), and demotes those whose `delay` timeout passed.
    pub fn expire(&mut self, now: Instant, policies: &PriorityPolicies) -> Vec<Queued<T>> {
        let mut expired = Vec::new();
        while let Some(&(at, seq)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            if let Some(entry) = self.remove(seq) {
                expired.push(entry);
            }
        }
        while let Some(&(at, seq)) = self.demotions.first() {
            if at > now {
                break;
            }
            self.demotions.pop_first();
            let Some(mut entry) = self.entries.remove(&seq) else {
                continue;
            };
            entry.demote_at = None;
            entry.level = (entry.level + 1).min(DELAYED_LEVEL);
            entry.since = now;
            self.apply_timeout(&mut entry, now, policies);
            self.index(seq, &entry);
            self.levels[entry.level].push_back(seq);
            self.entries.insert(seq, entry);
        }
        expired
    }

    /// Whether `seq`, listed in `level`'s queue, still waits there: a job taken out of order
    /// or demoted leaves its number behind, skipped lazily.
    fn waits_at(&self, seq: u64, level: usize) -> bool {
        self.entries.get(&seq).is_some_and(|entry| entry.level == level)
    }

    /// Drops the skipped sequence numbers at the front of `level` and returns the live front.
    fn front(&mut self, level: usize) -> Option<u64> {
        while let Some(&seq) = self.levels[level].front() {
            if self.waits_at(seq, level) {
                return Some(seq);
            }
            self.levels[level].pop_front();
        }
        None
    }

    /// Where the front of `level` ranks now: its level lowered by one per `aging` waited, then
    /// the time it entered it (older first).
    fn rank(&self, seq: u64, now: Instant, aging: Duration) -> (usize, Instant) {
        let entry = &self.entries[&seq];
        let waited = now.saturating_duration_since(entry.since);
        let raised = (waited.as_nanos() / aging.as_nanos().max(1)) as usize;
        (entry.level.saturating_sub(raised), entry.since)
    }

    /// Waiting jobs in effective-priority order (level after aging, then time at that level),
    /// at most `limit` of them, without taking any: a merge of the level queues, each of which
    /// is already in that order.
    fn ranked(&self, now: Instant, aging: Duration, limit: usize) -> Vec<((usize, Instant), u64)> {
        let mut cursors = [0usize; LEVELS];
        let mut ranked = Vec::new();
        while ranked.len() < limit {
            let mut best: Option<((usize, Instant), u64, usize)> = None;
            for (level, cursor) in cursors.iter_mut().enumerate() {
                while let Some(&seq) = self.levels[level].get(*cursor) {
                    if self.waits_at(seq, level) {
                        let rank = self.rank(seq, now, aging);
                        if best.as_ref().is_none_or(|(best_rank, _, _)| rank < *best_rank) {
                            best = Some((rank, seq, level));
                        }
                        break;
                    }
                    *cursor += 1;
                }
            }
            let Some((rank, seq, level)) = best else { break };
            cursors[level] += 1;
            ranked.push((rank, seq));
        }
        ranked
    }

    /// Takes the next batch of at most `max_inputs` inputs: jobs in effective-priority order
    /// (level after aging, then age) while their inputs fit. The first job is always taken,
    /// however large, so an oversized job runs alone rather than never.
    ///
    /// With `similar_length_window` > 0 and more jobs waiting than fit, the batch's last
    /// level is filled with jobs of similar length from its next `similar_length_window`
    /// jobs instead of strictly the oldest: every text in a batch is padded to its longest,
    /// so a batch of mixed lengths wastes the model's time (about a fifth of it for
    /// headlines of 14 to 30 tokens). Priority still holds: every job of a higher level goes
    /// first, and the oldest job of the last level is always in the batch, so every job runs
    /// once it is the oldest. With 0, jobs keep strict order, and a smaller job never
    /// overtakes one that did not fit.
    pub fn take_batch(
        &mut self,
        max_inputs: usize,
        now: Instant,
        aging: Duration,
        similar_length_window: usize,
    ) -> Vec<Queued<T>> {
        let ranked = self.ranked(now, aging, max_inputs.saturating_add(similar_length_window));
        // The batch in strict order.
        let (mut strict, mut size) = (0, 0);
        for (_, seq) in &ranked {
            let inputs = self.entries[seq].inputs;
            if strict > 0 && size + inputs > max_inputs {
                break;
            }
            size += inputs;
            strict += 1;
            if size >= max_inputs {
                break;
            }
        }
        let mut chosen: Vec<u64> = ranked[..strict].iter().map(|(_, seq)| *seq).collect();
        if similar_length_window > 0 && strict > 0 && strict < ranked.len() {
            let last_level = ranked[strict - 1].0.0;
            let first = ranked.iter().position(|(rank, _)| rank.0 == last_level).unwrap_or(0);
            let pool: Vec<u64> = ranked[first..]
                .iter()
                .take_while(|(rank, _)| rank.0 == last_level)
                .take(similar_length_window.max(strict - first))
                .map(|(_, seq)| *seq)
                .collect();
            let room = max_inputs.saturating_sub(chosen[..first].iter().map(|seq| self.entries[seq].inputs).sum());
            let shapes: Vec<(usize, usize)> =
                pool.iter().map(|seq| (self.entries[seq].length, self.entries[seq].inputs)).collect();
            chosen.truncate(first);
            chosen.extend(similar_lengths(&shapes, room).into_iter().map(|index| pool[index]));
        }
        chosen.into_iter().filter_map(|seq| self.remove(seq)).collect()
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Jobs waiting that arrived with `priority`.
    pub fn waiting(&self, priority: Priority) -> usize {
        self.waiting[priority.level()]
    }

    /// Inputs of every waiting job.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// When the job waiting longest at its level entered it: `max_queue_delay` counts from here.
    pub fn oldest(&mut self) -> Option<Instant> {
        let fronts: Vec<u64> = (0..LEVELS).filter_map(|level| self.front(level)).collect();
        fronts.into_iter().map(|seq| self.entries[&seq].since).min()
    }

    /// The earliest time a waiting job expires: the most urgent deadline.
    pub fn most_urgent(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// The next time [`Self::expire`] has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        let expiry = self.expiries.first().map(|(at, _)| *at);
        let demotion = self.demotions.first().map(|(at, _)| *at);
        expiry.into_iter().chain(demotion).min()
    }
}

/// Which of `pool` (each a job's `(length, inputs)`, oldest first) fill `room` inputs with
/// the least spread of lengths: a run of neighbours in length order that includes the oldest
/// (index 0, taken even if it alone exceeds `room`). Fuller runs win, then narrower ones.
fn similar_lengths(pool: &[(usize, usize)], room: usize) -> Vec<usize> {
    let Some(&(_, anchor_inputs)) = pool.first() else {
        return Vec::new();
    };
    if anchor_inputs >= room {
        return vec![0];
    }
    // Ties in length keep age order, so among equals the older go first.
    let mut by_length: Vec<usize> = (0..pool.len()).collect();
    by_length.sort_by_key(|&index| (pool[index].0, index));
    let anchor = by_length.iter().position(|&index| index == 0).unwrap_or(0);
    let inputs = |position: usize| pool[by_length[position]].1;
    // Fuller first, then narrower: (inputs, Reverse(spread)), and the run in `by_length`.
    type Scored = ((usize, std::cmp::Reverse<usize>), std::ops::Range<usize>);
    let mut best: Option<Scored> = None;
    // Two pointers: as a run's start moves right its end never moves left, so each start
    // costs O(1) amortized and a pool of thousands is cheap.
    let (mut end, mut size) = (0, 0);
    for start in 0..=anchor {
        if end < start {
            (end, size) = (start, 0);
        }
        while end < by_length.len() && size + inputs(end) <= room {
            size += inputs(end);
            end += 1;
        }
        if end > anchor && end > start {
            let spread = pool[by_length[end - 1]].0 - pool[by_length[start]].0;
            let score = (size, std::cmp::Reverse(spread));
            if best.as_ref().is_none_or(|(best_score, _)| score > *best_score) {
                best = Some((score, start..end));
            }
        }
        if end > start {
            size -= inputs(start);
        }
    }
    // The run starting at the anchor always includes it, so `best` is set; fall back to the
    // anchor alone rather than panic.
    best.map_or_else(|| vec![0], |(_, run)| by_length[run].to_vec())
}
