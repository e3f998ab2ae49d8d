//! The monitor's one owner: a thread of its own that applies observations, evaluations and
//! gauge exports in the order they were sent. Handlers and the tick only hand it commands (an
//! async wait when it is behind), so no tokio thread ever blocks on the monitor while it
//! evaluates, and nothing outside this thread holds a reference into it: callers get copies
//! ([`MonitorSnapshot`]).
//!
//! Commands go through an inbox the owner empties whole, and only the command that finds it
//! empty wakes the owner: at 200,000 events a second a channel that woke the thread for each
//! one cost a third of the throughput.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{Notify, oneshot};
use tracing::info;

use super::metric;
use crate::records::{AutoscaleDecision, QueryEvent, RequestCompleted, SloCounters, SlowQueryFinding, WorkerStatus};
use crate::sla::{AlertTransition, DropCounts, Observation, SlaMonitor, Sli, SliWindow};

/// Observations waiting for the owner at most; a handler waits (asynchronously) beyond that.
const QUEUE: usize = 8192;

/// The SLIs exported as gauges, with their label values.
const EXPORTED_SLIS: [(Sli, &str); 7] = [
    (Sli::LatencyP50, "latency_p50"),
    (Sli::LatencyP95, "latency_p95"),
    (Sli::LatencyP99, "latency_p99"),
    (Sli::Throughput, "throughput"),
    (Sli::ErrorRate, "error_rate"),
    (Sli::TimeoutRate, "timeout_rate"),
    (Sli::CacheHitRatio, "cache_hit_ratio"),
];

/// One input of the monitor, decoded.
#[derive(Debug)]
pub(super) enum Input {
    /// A finished request.
    Request(RequestCompleted),
    /// A database statement.
    Query(QueryEvent),
    /// A worker's self-report: boxed, as the largest record (it would size every command for
    /// the hot path's request events) and a rare one (one per instance every 10 s).
    Status(Box<WorkerStatus>),
    /// An autoscaler decision.
    Decision(AutoscaleDecision),
    Finding(SlowQueryFinding),
}

/// What the monitor's counters say at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSnapshot {
    /// Events counted into windows.
    pub accepted: u64,
    /// Events dropped, by reason.
    pub drops: DropCounts,
    /// Alerts firing.
    pub firing: usize,
}

impl MonitorSnapshot {
    /// Events taken in, accepted or dropped.
    pub fn taken_in(&self) -> u64 {
        self.accepted + self.drops.total()
    }
}

enum Command {
    Observe { input: Input, now_ms: i64 },
    Evaluate { now_ms: i64, export_gauges: bool, reply: oneshot::Sender<Vec<AlertTransition>> },
    Snapshot { reply: oneshot::Sender<MonitorSnapshot> },
    Checkpoint { now_ms: i64, reply: oneshot::Sender<Vec<SloCounters>> },
}

/// Why the owner no longer answers: its thread ended (a bug: it panicked).
#[derive(Debug, thiserror::Error)]
#[error("the SLA monitor's thread stopped")]
pub struct OwnerStopped;

/// Commands waiting for the owner, and whether the sending side is gone.
struct Inbox {
    state: Mutex<Pending>,
    /// Signalled when the inbox goes from empty to not (or closes): the owner waits on it.
    filled: Condvar,
    /// Notified when the owner empties the inbox: senders waiting for room wait on it.
    emptied: Notify,
}

#[derive(Default)]
struct Pending {
    commands: Vec<Command>,
    closed: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Only plain pushes and swaps happen under this lock: nothing is left half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a command, waiting (asynchronously) while the inbox is full.
    async fn send(&self, command: Command, thread: &JoinHandle<()>) -> Result<(), OwnerStopped> {
        loop {
            let room = self.emptied.notified();
            {
                let mut pending = self.lock();
                if thread.is_finished() {
                    return Err(OwnerStopped);
                }
                if pending.commands.len() < QUEUE {
                    pending.commands.push(command);
                    if pending.commands.len() == 1 {
                        self.filled.notify_one();
                    }
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Everything sent so far, waiting while there is nothing; `None` once closed and empty.
    fn take(&self) -> Option<Vec<Command>> {
        let mut pending = self.lock();
        while pending.commands.is_empty() && !pending.closed {
            pending = self.filled.wait(pending).unwrap_or_else(PoisonError::into_inner);
        }
        if pending.commands.is_empty() {
            return None;
        }
        let taken = std::mem::take(&mut pending.commands);
        drop(pending);
        self.emptied.notify_waiters();
        Some(taken)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_one();
    }
}

/// The sending side; dropping it ends the owner thread once it has applied what it was sent.
pub(super) struct MonitorOwner {
    inbox: Arc<Inbox>,
    thread: JoinHandle<()>,
}

impl MonitorOwner {
    /// Moves `monitor` to a thread of its own.
    pub(super) fn start(monitor: SlaMonitor) -> std::io::Result<MonitorOwner> {
        let inbox = Arc::new(Inbox { state: Mutex::default(), filled: Condvar::new(), emptied: Notify::new() });
        let owned = inbox.clone();
        let thread = std::thread::Builder::new().name("sla-monitor".into()).spawn(move || own(monitor, &owned))?;
        Ok(MonitorOwner { inbox, thread })
    }

    /// Hands one input to the monitor.
    pub(super) async fn observe(&self, input: Input, now_ms: i64) -> Result<(), OwnerStopped> {
        self.inbox.send(Command::Observe { input, now_ms }, &self.thread).await
    }

    /// Evaluates every rule after the inputs sent before; recomputes the gauges too when asked.
    pub(super) async fn evaluate(
        &self,
        now_ms: i64,
        export_gauges: bool,
    ) -> Result<Vec<AlertTransition>, OwnerStopped> {
        let (reply, answer) = oneshot::channel();
        self.inbox.send(Command::Evaluate { now_ms, export_gauges, reply }, &self.thread).await?;
        answer.await.map_err(|_| OwnerStopped)
    }

    /// The SLO counters of the hours that changed since the last call (see
    /// [`SlaMonitor::checkpoint`]), after the inputs sent before.
    pub(super) async fn checkpoint(&self, now_ms: i64) -> Result<Vec<SloCounters>, OwnerStopped> {
        let (reply, answer) = oneshot::channel();
        self.inbox.send(Command::Checkpoint { now_ms, reply }, &self.thread).await?;
        answer.await.map_err(|_| OwnerStopped)
    }

    /// The counters after the inputs sent before.
    pub(super) async fn snapshot(&self) -> Result<MonitorSnapshot, OwnerStopped> {
        let (reply, answer) = oneshot::channel();
        self.inbox.send(Command::Snapshot { reply }, &self.thread).await?;
        answer.await.map_err(|_| OwnerStopped)
    }
}

impl Drop for MonitorOwner {
    fn drop(&mut self) {
        self.inbox.close();
    }
}

/// The owner thread: applies commands, a whole inbox at a time, until it is closed.
fn own(mut monitor: SlaMonitor, inbox: &Inbox) {
    let accepted = ::metrics::counter!(metric::ACCEPTED);
    while let Some(commands) = inbox.take() {
        for command in commands {
            apply(&mut monitor, command, &accepted);
        }
    }
    info!("the SLA monitor's owner stopped");
}

fn apply(monitor: &mut SlaMonitor, command: Command, accepted: &::metrics::Counter) {
    match command {
        Command::Observe { input, now_ms } => {
            let observation = match input {
                Input::Request(event) => monitor.observe(&event, now_ms),
                Input::Query(statement) => monitor.observe_query(&statement, now_ms),
                Input::Status(status) => monitor.observe_status(*status, now_ms),
                Input::Decision(decision) => monitor.observe_decision(decision, now_ms),
                Input::Finding(finding) => monitor.observe_finding(finding, now_ms),
            };
            if let Observation::Accepted = observation {
                accepted.increment(1);
            }
        }
        Command::Evaluate { now_ms, export_gauges, reply } => {
            let transitions = monitor.evaluate(now_ms);
            if export_gauges {
                export(monitor, now_ms);
            }
            // The tick that asked is only gone when the process stops at its shutdown
            // deadline: nothing can be sent then anyway.
            let _ = reply.send(transitions);
        }
        Command::Snapshot { reply } => {
            let snapshot = MonitorSnapshot {
                accepted: monitor.accepted(),
                drops: monitor.drops().clone(),
                firing: monitor.alert_book().firing().count(),
            };
            let _ = reply.send(snapshot);
        }
        Command::Checkpoint { now_ms, reply } => {
            let _ = reply.send(monitor.checkpoint(now_ms));
        }
    }
}

/// Sets every SLI, burn-rate and signal gauge from the monitor.
fn export(monitor: &mut SlaMonitor, now_ms: i64) {
    for (signal, labels, value) in monitor.signal_values(now_ms) {
        let mut pairs: Vec<::metrics::Label> = vec![::metrics::Label::new("signal", signal.as_str())];
        pairs.extend(labels.into_iter().map(|(key, value)| ::metrics::Label::new(key, value)));
        ::metrics::gauge!(metric::SIGNAL, pairs).set(value);
    }
    for (service, kind) in monitor.series_keys() {
        for window in SliWindow::ALL {
            let Some(sli) = monitor.sli(&service, &kind, window) else { continue };
            for (which, label) in EXPORTED_SLIS {
                if let Some(value) = sli.value(which) {
                    ::metrics::gauge!(metric::SLI, "service" => service.clone(), "kind" => kind.clone(),
                        "sli" => label, "window" => window.label())
                    .set(value);
                }
            }
        }
    }
    for reading in monitor.burn_rates() {
        ::metrics::gauge!(metric::BURN_RATE, "slo" => reading.slo, "service" => reading.service,
            "kind" => reading.kind, "window" => reading.window)
        .set(reading.burn_rate);
    }
    for (reason, count) in monitor.drops().iter() {
        ::metrics::counter!(metric::DROPPED, "reason" => reason.as_str()).absolute(count);
    }
    ::metrics::gauge!(metric::FIRING).set(monitor.alert_book().firing().count() as f64);
}
