//! Admission of analyses by estimated cost: cheap ones run at once, heavy ones take turns on a
//! few slots, by priority and, within a priority, fairly between tenants; the unaffordable are
//! refused.
//!
//! Why: 150 analyses of 1.6 s each arriving together ran 150 at a time on 173 threads and 1.3 GB,
//! and ordinary requests waited 13-16 s behind them. Here at most `heavy_slots` heavy analyses
//! run at once, on threads the OS ranks below everything else (`heavy_nice`), so cheap requests
//! and the bus keep the cores; a tenant sending many heavy requests waits behind its own, not in
//! front of others (start-time fair queuing on estimated cost); and after a burst the heap is
//! handed back to the system.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::config::InvalidSetting;
use crate::records::Priority;

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
    /// Nice value (0 to 19) of the threads running heavy analyses, so the OS serves cheap
    /// requests and the consumer loop first.
    pub heavy_nice: i32,
}

impl Default for ComputeSettings {
    fn default() -> Self {
        ComputeSettings {
            max_cost: Duration::from_secs(2),
            heavy_cost: Duration::from_millis(20),
            heavy_slots: 1,
            max_heavy_waiting: 1000,
            heavy_nice: 10,
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
        Ok(())
    }
}

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
}

impl Refused {
    /// The answer's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::TooExpensive { .. } => "too_expensive",
            Refused::Overloaded { .. } => "overloaded",
            Refused::DeadlinePassed => "deadline_exceeded",
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
}

/// The right to run one analysis; a heavy one's slot is given back on drop.
#[derive(Debug)]
pub struct Permit {
    heavy: Option<Arc<Shared>>,
}

impl Permit {
    /// The nice value the analysis's CPU work should run at (0 for a cheap one).
    pub fn nice(&self) -> i32 {
        self.heavy.as_ref().map_or(0, |shared| shared.settings.heavy_nice)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(shared) = self.heavy.take() {
            shared.release();
        }
    }
}

tokio::task_local! {
    /// The nice value the CPU work of the analysis running in this task takes (see
    /// [`Permit::nice`]); absent means 0.
    pub static NICE: i32;
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
    running: usize,
    /// Waiting heavy analyses by priority level (0 most urgent), each level ordered by start tag.
    waiting: [BTreeMap<(u64, u64), Waiter>; 4],
    /// Virtual time: the start tag of the analysis admitted last.
    clock: u64,
    /// Each tenant's finish tag: where its next analysis starts.
    finish: HashMap<String, u64>,
    /// Ties between equal start tags go to the earlier arrival.
    arrivals: u64,
}

#[derive(Debug)]
struct Waiter {
    reply: oneshot::Sender<()>,
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

    /// Waits until the analysis may run: at once when it is cheap, for a heavy slot otherwise.
    pub async fn admit(&self, admission: Admission<'_>) -> Result<Permit, Refused> {
        self.affordable(admission.cost)?;
        if admission.cost < self.shared.settings.heavy_cost {
            return Ok(Permit { heavy: None });
        }
        let (key, level, answer) = {
            let mut state = self.shared.lock();
            let waiting: usize = state.waiting.iter().map(BTreeMap::len).sum();
            if waiting == 0 && state.running < self.shared.settings.heavy_slots {
                state.running += 1;
                state.charge(admission.tenant, admission.cost);
                return Ok(Permit { heavy: Some(self.shared.clone()) });
            }
            if waiting >= self.shared.settings.max_heavy_waiting {
                return Err(Refused::Overloaded { waiting });
            }
            let (reply, answer) = oneshot::channel();
            let start = state.charge(admission.tenant, admission.cost);
            state.arrivals += 1;
            let key = (start, state.arrivals);
            let level = admission.priority.level();
            state.waiting[level].insert(key, Waiter { reply });
            (key, level, answer)
        };
        // The receiver stays alive until the outcome is decided here, so a slot sent to this
        // waiter is never lost: either taken, or given back below.
        let mut answer = answer;
        let granted = match admission.deadline {
            Some(deadline) => matches!(tokio::time::timeout_at(deadline.into(), &mut answer).await, Ok(Ok(()))),
            None => (&mut answer).await.is_ok(),
        };
        if granted {
            return Ok(Permit { heavy: Some(self.shared.clone()) });
        }
        let mut state = self.shared.lock();
        if state.waiting[level].remove(&key).is_none() {
            // Granted just as the deadline passed: the slot is ours to give back.
            drop(state);
            self.shared.release();
        }
        Err(Refused::DeadlinePassed)
    }

    /// Heavy analyses running and waiting now.
    pub fn load(&self) -> (usize, usize) {
        let state = self.shared.lock();
        (state.running, state.waiting.iter().map(BTreeMap::len).sum())
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Counters and queues stay consistent across a panic elsewhere: keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives a slot back: to the most urgent, fairest waiter, or to the pool.
    fn release(&self) {
        let mut state = self.lock();
        loop {
            let Some(level) = state.waiting.iter().position(|level| !level.is_empty()) else {
                state.running -= 1;
                let idle = state.running == 0;
                drop(state);
                if idle {
                    trim_heap();
                }
                return;
            };
            let Some(((start, _), waiter)) = state.waiting[level].pop_first() else { continue };
            state.clock = state.clock.max(start);
            // A waiter that gave up (deadline) has dropped its receiver: try the next one.
            if waiter.reply.send(()).is_ok() {
                return;
            }
        }
    }
}

impl State {
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

/// Hands freed heap memory back to the system after a burst of heavy analyses (glibc keeps it
/// otherwise: 1.18 GB stayed resident after one).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs `work` on the blocking pool at nice value `nice` (restored afterwards, since the
/// thread goes back to the pool), so heavy work yields the cores to everything else.
pub async fn run_blocking<T: Send + 'static>(
    nice: i32,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let _niced = (nice > 0).then(|| Niced::set(nice));
        work()
    })
    .await
}

/// This thread's nice value for a while.
struct Niced {
    before: i32,
}

impl Niced {
    fn set(nice: i32) -> Niced {
        let before = thread_nice();
        set_thread_nice(nice);
        Niced { before }
    }
}

impl Drop for Niced {
    fn drop(&mut self) {
        set_thread_nice(self.before);
    }
}

#[cfg(target_os = "linux")]
fn thread_nice() -> i32 {
    // SAFETY: gettid and getpriority take plain integers and touch no memory of ours.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(target_os = "linux")]
fn set_thread_nice(nice: i32) {
    // SAFETY: as above. On Linux PRIO_PROCESS with a thread id sets that thread's nice value.
    // Lowering it again needs no privilege only back to where it was (RLIMIT_NICE); a refusal
    // leaves the thread as it is, which costs fairness, not correctness.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
    }
}

#[cfg(not(target_os = "linux"))]
fn thread_nice() -> i32 {
    0
}

#[cfg(not(target_os = "linux"))]
fn set_thread_nice(_nice: i32) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(cost_ms: u64, priority: Priority, tenant: &str) -> Admission<'_> {
        Admission { cost: Duration::from_millis(cost_ms), priority, tenant, deadline: None }
    }

    fn pool() -> AnalysisPool {
        AnalysisPool::new(ComputeSettings { max_heavy_waiting: 3, ..ComputeSettings::default() })
    }

    #[tokio::test]
    async fn an_analysis_over_the_cost_limit_is_refused_before_any_work() {
        let refused = pool().admit(admission(3_000, Priority::Normal, "t")).await.unwrap_err();
        assert_eq!(refused.code(), "too_expensive");
    }

    #[tokio::test]
    async fn cheap_analyses_never_wait_for_heavy_ones() {
        let pool = pool();
        let _running = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
        let cheap = pool.admit(admission(1, Priority::Low, "t")).await.unwrap();
        assert_eq!(cheap.nice(), 0);
        assert_eq!(pool.load(), (1, 0));
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_most_urgent_then_the_fairest_waiter() {
        let pool = AnalysisPool::new(ComputeSettings::default());
        let running = pool.admit(admission(500, Priority::Normal, "a")).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        // Tenant a queues two more; tenant b one, after them; a critical one comes last.
        for (name, tenant, priority) in [
            ("a2", "a", Priority::Normal),
            ("a3", "a", Priority::Normal),
            ("b1", "b", Priority::Normal),
            ("c1", "c", Priority::Critical),
        ] {
            let (task_pool, order) = (pool.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let permit = task_pool.admit(admission(500, priority, tenant)).await.unwrap();
                order.lock().unwrap().push(name);
                drop(permit);
            }));
            while pool.load().1 < waiters.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(running);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        // Critical first; then b, whose first analysis starts before a's second and third.
        assert_eq!(*order.lock().unwrap(), ["c1", "b1", "a2", "a3"]);
    }

    #[tokio::test]
    async fn a_full_waiting_line_refuses_with_overloaded() {
        let pool = pool();
        let _running = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
        let mut waiters = Vec::new();
        for _ in 0..3 {
            let pool = pool.clone();
            waiters
                .push(tokio::spawn(async move { pool.admit(admission(500, Priority::Normal, "t")).await.map(drop) }));
        }
        while pool.load().1 < 3 {
            tokio::task::yield_now().await;
        }
        let refused = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap_err();
        assert_eq!(refused.code(), "overloaded");
    }

    #[tokio::test]
    async fn a_waiter_whose_deadline_passes_gives_up_and_loses_no_slot() {
        let pool = pool();
        let running = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
        let late = Admission {
            deadline: Some(Instant::now() + Duration::from_millis(20)),
            ..admission(500, Priority::Normal, "t")
        };
        assert_eq!(pool.admit(late).await.unwrap_err(), Refused::DeadlinePassed);
        drop(running);
        assert_eq!(pool.load(), (0, 0));
        let next = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
        assert_eq!(next.nice(), 10);
    }
}
