//! Admission of analyses by estimated cost and by who waits for them: cheap live ones run at
//! once, heavy ones take turns on a few slots, by priority and, within a priority, fairly
//! between tenants; background refreshes run only in the room live work leaves; the
//! unaffordable are refused.
//!
//! Why: 150 analyses of 1.6 s each arriving together ran 150 at a time on 173 threads and 1.3 GB,
//! and ordinary requests waited 13-16 s behind them. Here at most `heavy_slots` heavy analyses
//! run at once, on threads the OS ranks below everything else (`heavy_nice`), so cheap requests
//! and the bus keep the cores; a tenant sending many heavy requests waits behind its own, not in
//! front of others (start-time fair queuing on estimated cost); and after a burst the heap is
//! handed back to the system. Refreshes of entries still being served (nobody waits for them)
//! used to compete with the misses somebody waits for: now they wait until fewer than
//! `background_below_live` live analyses run, and give up after `background_wait`.

mod os;
mod settings;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use self::os::run_blocking;
pub use self::settings::ComputeSettings;
use crate::records::Priority;

/// Why an analysis was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Its estimated cost is over `max_cost`.
    #[error(
        "the analysis would cost about {estimated:?} of CPU time, more than the {limit:?} one request may take; ask for less (fewer paths, symbols or steps)"
    )]
    TooExpensive { estimated: Duration, limit: Duration },
    /// `max_heavy_waiting` heavy analyses already wait.
    #[error("{waiting} heavy analyses are already waiting; try again later")]
    Overloaded { waiting: usize },
    /// Its deadline passed while it waited.
    #[error("the deadline passed while the analysis waited for a slot")]
    DeadlinePassed,
    /// A background refresh found no room left by live work within `background_wait`.
    #[error("live requests kept the pool busy for {waited:?}; the refresh gave way to them")]
    Yielded { waited: Duration },
}

impl Refused {
    /// The answer's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::TooExpensive { .. } => "too_expensive",
            Refused::Overloaded { .. } => "overloaded",
            Refused::DeadlinePassed => "deadline_exceeded",
            Refused::Yielded { .. } => "yielded",
        }
    }
}

/// One analysis asking to run.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    /// Its estimated CPU time.
    pub cost: Duration,
    /// How urgent it is.
    pub priority: Priority,
    /// Whose it is: fairness is between tenants.
    pub tenant: &'a str,
    /// When waiting stops being useful.
    pub deadline: Option<Instant>,
    /// Nobody waits for it (a refresh of an entry still being served): it runs only in the
    /// room live analyses leave.
    pub background: bool,
}

/// The right to run one analysis; what it holds is given back on drop.
#[derive(Debug)]
pub struct Permit {
    shared: Arc<Shared>,
    heavy: bool,
    live: bool,
}

impl Permit {
    /// The nice value the analysis's CPU work should run at: 0 for a cheap live one, lower
    /// priority for heavy ones and background refreshes.
    pub fn nice(&self) -> i32 {
        if self.heavy || !self.live { self.shared.settings.heavy_nice } else { 0 }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.finish(self.heavy, self.live);
    }
}

tokio::task_local! {
    /// The nice value the CPU work of the analysis running in this task takes (see
    /// [`Permit::nice`]); absent means 0.
    pub static NICE: i32;
}

/// What runs and waits now (see [`AnalysisPool::load`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Heavy analyses running (live and background).
    pub heavy_running: usize,
    /// Live heavy analyses waiting for a slot.
    pub heavy_waiting: usize,
    /// Live analyses running, cheap and heavy.
    pub live_running: usize,
    /// Background refreshes waiting for room.
    pub background_waiting: usize,
}

/// Admits analyses; cheap to clone.
#[derive(Debug, Clone)]
pub struct AnalysisPool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: ComputeSettings,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Heavy slots taken (live and background).
    running: usize,
    /// Live analyses holding a permit, cheap and heavy.
    live_running: usize,
    /// Waiting live heavy analyses by priority level (0 most urgent), each level ordered by
    /// start tag.
    waiting: [BTreeMap<(u64, u64), Waiter>; 4],
    /// Waiting background refreshes, first come first served, by arrival.
    background: BTreeMap<u64, Waiter>,
    /// Virtual time: the start tag of the analysis admitted last.
    clock: u64,
    /// Each tenant's finish tag: where its next analysis starts.
    finish: HashMap<String, u64>,
    /// Ties between equal start tags go to the earlier arrival; also background ids.
    arrivals: u64,
    /// Live work crowded the pool out since [`AnalysisPool::take_busy`] last looked: a live
    /// analysis waited for a heavy slot, or a refresh gave up waiting.
    busy: bool,
    /// Live analyses times seconds since `take_busy` last looked: their average number.
    live_area: f64,
    /// When `live_running` last changed (`live_area` is counted up to there).
    live_changed: Option<Instant>,
    /// When `take_busy` last looked.
    looked: Option<Instant>,
}

#[derive(Debug)]
struct Waiter {
    reply: oneshot::Sender<()>,
    /// For a background refresh: whether it needs a heavy slot too.
    heavy: bool,
}

impl AnalysisPool {
    /// A pool with `settings` (validated by the caller).
    pub fn new(settings: ComputeSettings) -> Self {
        AnalysisPool { shared: Arc::new(Shared { settings, state: Mutex::new(State::default()) }) }
    }

    /// Refuses an analysis over the cost limit; for a check before any work.
    pub fn affordable(&self, cost: Duration) -> Result<(), Refused> {
        let limit = self.shared.settings.max_cost;
        if cost > limit { Err(Refused::TooExpensive { estimated: cost, limit }) } else { Ok(()) }
    }

    /// Waits until the analysis may run: a cheap live one at once, a heavy live one for a
    /// slot, a background one for room left by live work.
    pub async fn admit(&self, admission: Admission<'_>) -> Result<Permit, Refused> {
        self.affordable(admission.cost)?;
        let heavy = admission.cost >= self.shared.settings.heavy_cost;
        if admission.background {
            return self.admit_background(heavy, admission.deadline).await;
        }
        if !heavy {
            self.shared.lock().live_started();
            return Ok(self.permit(false, true));
        }
        let (key, level, answer) = {
            let mut state = self.shared.lock();
            let waiting = state.heavy_waiting();
            if waiting == 0 && state.running < self.shared.settings.heavy_slots {
                state.running += 1;
                state.live_started();
                state.charge(admission.tenant, admission.cost);
                return Ok(self.permit(true, true));
            }
            if waiting >= self.shared.settings.max_heavy_waiting {
                return Err(Refused::Overloaded { waiting });
            }
            let (reply, answer) = oneshot::channel();
            let start = state.charge(admission.tenant, admission.cost);
            state.arrivals += 1;
            let key = (start, state.arrivals);
            let level = admission.priority.level();
            state.waiting[level].insert(key, Waiter { reply, heavy: true });
            state.busy = true;
            (key, level, answer)
        };
        // The receiver stays alive until the outcome is decided here, so a slot sent to this
        // waiter is never lost: either taken, or given back below. The granter has counted it.
        let mut answer = answer;
        let granted = match admission.deadline {
            Some(deadline) => matches!(tokio::time::timeout_at(deadline.into(), &mut answer).await, Ok(Ok(()))),
            None => (&mut answer).await.is_ok(),
        };
        if granted {
            return Ok(self.permit(true, true));
        }
        let mut state = self.shared.lock();
        if state.waiting[level].remove(&key).is_none() {
            // Granted just as the deadline passed: the permit is ours, and dropping it gives
            // the slot back.
            drop(state);
            drop(self.permit(true, true));
        }
        Err(Refused::DeadlinePassed)
    }

    /// A background refresh: runs when no live heavy analysis waits, fewer than
    /// `background_below_live` live ones run and, if it is heavy, a slot is free; in arrival
    /// order; gives up after `background_wait` (or its deadline).
    async fn admit_background(&self, heavy: bool, deadline: Option<Instant>) -> Result<Permit, Refused> {
        let asked = Instant::now();
        let (id, answer) = {
            let mut state = self.shared.lock();
            if state.background.is_empty() && state.has_room_for_background(heavy, &self.shared.settings) {
                state.running += usize::from(heavy);
                return Ok(self.permit(heavy, false));
            }
            let (reply, answer) = oneshot::channel();
            state.arrivals += 1;
            let id = state.arrivals;
            state.background.insert(id, Waiter { reply, heavy });
            (id, answer)
        };
        let mut give_up = asked + self.shared.settings.background_wait;
        if let Some(deadline) = deadline {
            give_up = give_up.min(deadline);
        }
        let mut answer = answer;
        if matches!(tokio::time::timeout_at(give_up.into(), &mut answer).await, Ok(Ok(()))) {
            return Ok(self.permit(heavy, false));
        }
        let mut state = self.shared.lock();
        if state.background.remove(&id).is_none() {
            drop(state);
            drop(self.permit(heavy, false));
        } else {
            // Refreshes piling up unserved mean live work holds the pool: tell the warmer too.
            state.busy = true;
        }
        Err(Refused::Yielded { waited: asked.elapsed() })
    }

    fn permit(&self, heavy: bool, live: bool) -> Permit {
        Permit { shared: self.shared.clone(), heavy, live }
    }

    /// What runs and waits now.
    pub fn load(&self) -> Load {
        let state = self.shared.lock();
        Load {
            heavy_running: state.running,
            heavy_waiting: state.heavy_waiting(),
            live_running: state.live_running,
            background_waiting: state.background.len(),
        }
    }

    /// Whether live work crowded background work out since the last call: a live analysis
    /// waited for a heavy slot (or waits now), a refresh gave up, or on average at least
    /// `background_below_live` live analyses ran. An average, not a moment: two cheap misses
    /// meeting for a millisecond do not make an instance busy, and a warmer held back on
    /// every such moment would never refresh anything.
    pub fn take_busy(&self) -> bool {
        let mut state = self.shared.lock();
        let now = Instant::now();
        state.count_live_area(now);
        let window = state.looked.map_or(Duration::ZERO, |looked| now - looked).as_secs_f64();
        let average = if window > 0.0 { state.live_area / window } else { 0.0 };
        let busy =
            state.busy || state.heavy_waiting() > 0 || average >= self.shared.settings.background_below_live as f64;
        (state.busy, state.live_area, state.looked) = (false, 0.0, Some(now));
        busy
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Counters and queues stay consistent across a panic elsewhere: keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit ends: a heavy slot goes to the most urgent, fairest live waiter, or back to
    /// the pool; then waiting background refreshes start if live work left them room.
    fn finish(&self, heavy: bool, live: bool) {
        let mut state = self.lock();
        if live {
            state.live_ended();
        }
        if heavy {
            state.hand_over_slot();
        }
        state.start_background(&self.settings);
        let idle = heavy && state.running == 0;
        drop(state);
        if idle {
            os::trim_heap();
        }
    }
}

impl State {
    fn heavy_waiting(&self) -> usize {
        self.waiting.iter().map(BTreeMap::len).sum()
    }

    fn has_room_for_background(&self, heavy: bool, settings: &ComputeSettings) -> bool {
        self.heavy_waiting() == 0
            && self.live_running < settings.background_below_live
            && (!heavy || self.running < settings.heavy_slots)
    }

    fn live_started(&mut self) {
        self.count_live_area(Instant::now());
        self.live_running += 1;
    }

    fn live_ended(&mut self) {
        self.count_live_area(Instant::now());
        self.live_running -= 1;
    }

    /// Adds the live analyses running since the last change, times how long, to `live_area`.
    fn count_live_area(&mut self, now: Instant) {
        if let Some(changed) = self.live_changed {
            self.live_area += self.live_running as f64 * now.saturating_duration_since(changed).as_secs_f64();
        }
        self.live_changed = Some(now);
    }

    /// Gives a freed heavy slot to the most urgent, fairest live waiter (counting it as
    /// running live work), or to the pool.
    fn hand_over_slot(&mut self) {
        loop {
            let Some(level) = self.waiting.iter().position(|level| !level.is_empty()) else {
                self.running -= 1;
                return;
            };
            let Some(((start, _), waiter)) = self.waiting[level].pop_first() else { continue };
            self.clock = self.clock.max(start);
            self.live_started();
            // A waiter that gave up (deadline) has dropped its receiver: try the next one.
            if waiter.reply.send(()).is_ok() {
                return;
            }
            self.live_ended();
        }
    }

    /// Starts waiting background refreshes, oldest first, while live work leaves room.
    fn start_background(&mut self, settings: &ComputeSettings) {
        while let Some(heavy) = self.background.first_key_value().map(|(_, waiter)| waiter.heavy) {
            if !self.has_room_for_background(heavy, settings) {
                return;
            }
            let Some((_, waiter)) = self.background.pop_first() else { return };
            self.running += usize::from(waiter.heavy);
            // One that gave up has dropped its receiver: its slot goes back.
            if waiter.reply.send(()).is_err() {
                self.running -= usize::from(waiter.heavy);
            }
        }
    }

    /// Start-time fair queuing: the analysis starts at the later of the virtual clock and its
    /// tenant's last finish, and moves the tenant's finish on by its cost. Returns its start.
    fn charge(&mut self, tenant: &str, cost: Duration) -> u64 {
        let clock = self.clock;
        // Tenants at or behind the clock lose nothing by being forgotten: they start at the clock.
        if self.finish.len() > 10_000 {
            self.finish.retain(|_, finish| *finish > clock);
        }
        let finish = self.finish.entry(tenant.to_owned()).or_insert(clock);
        let start = (*finish).max(clock);
        *finish = start.saturating_add(u64::try_from(cost.as_micros()).unwrap_or(u64::MAX));
        start
    }
}
