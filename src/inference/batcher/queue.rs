//! The queues of one model: a FIFO per priority plus one for delayed jobs, deadlines and
//! timeouts indexed by time, and batch formation in effective-priority order. Pure data: time
//! is passed in, nothing here awaits, so the scheduling rules are tested without a clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::job::Priority;
use super::settings::{PriorityPolicies, TimeoutAction};

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
        inputs: usize,
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

    /// Drops the skipped sequence numbers at the front of `level` and returns the live front.
    fn front(&mut self, level: usize) -> Option<u64> {
        while let Some(&seq) = self.levels[level].front() {
            if self.entries.get(&seq).is_some_and(|entry| entry.level == level) {
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

    /// Takes the next batch: jobs in effective-priority order (level after aging, then age)
    /// while their inputs fit in `max_inputs`. The first job is always taken, however large,
    /// so an oversized job runs alone rather than never. Jobs are not reordered to fill
    /// a batch: a smaller job further back never overtakes one that did not fit.
    pub fn take_batch(&mut self, max_inputs: usize, now: Instant, aging: Duration) -> Vec<Queued<T>> {
        let mut batch = Vec::new();
        let mut size = 0;
        loop {
            let mut best: Option<((usize, Instant), u64, usize)> = None;
            for level in 0..LEVELS {
                if let Some(seq) = self.front(level) {
                    let rank = self.rank(seq, now, aging);
                    if best.as_ref().is_none_or(|(best_rank, _, _)| rank < *best_rank) {
                        best = Some((rank, seq, level));
                    }
                }
            }
            let Some((_, seq, level)) = best else { break };
            let inputs = self.entries[&seq].inputs;
            if !batch.is_empty() && size + inputs > max_inputs {
                break;
            }
            self.levels[level].pop_front();
            if let Some(entry) = self.remove(seq) {
                size += entry.inputs;
                batch.push(entry);
            }
            if size >= max_inputs {
                break;
            }
        }
        batch
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
