//! [`InstancePool`]: several instances of one model behind one [`EmbeddingBackend`].
//!
//! Each batch goes to the less busy of two instances drawn at random (power of two choices on
//! outstanding batches: nearly as good as least-outstanding over all instances, without every
//! caller piling onto the same one). Each instance has a [`CircuitBreaker`]; a batch that fails
//! on an instance (unreachable, server error, model failure) is retried on another one, at most
//! [`PoolOptions::max_attempts`] instances in all, and counts against the first one's breaker. A
//! dead instance is thereby taken out after a few failures and put back by a half-open probe
//! after the cool-down, or sooner by [`InstancePool::watch_health`] when its `/health` answers.

mod breaker;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use breaker::{Admission, BreakerSettings, BreakerState, CircuitBreaker};

use super::{BackendError, Embedded, EmbeddingBackend, metrics as names};

/// How a pool picks, retries and checks its instances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolOptions {
    /// When an instance's breaker opens and how long it stays open.
    pub breaker: BreakerSettings,
    /// Instances one batch may be tried on before the pool gives up (each at most once).
    pub max_attempts: usize,
    /// How often [`InstancePool::watch_health`] asks every instance for its health.
    pub health_interval: Duration,
    /// How long one health check may take before it counts as failed.
    pub health_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            breaker: BreakerSettings::default(),
            max_attempts: 3,
            health_interval: Duration::from_secs(2),
            health_timeout: Duration::from_secs(2),
        }
    }
}

/// One instance as the pool sees it right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// The instance's [`EmbeddingBackend::id`].
    pub instance: String,
    /// Its breaker's state.
    pub state: BreakerState,
    /// Batches sent to it and not yet answered.
    pub outstanding: usize,
}

/// Why instances could not be pooled.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A pool needs at least one instance.
    #[error("pool {pool} has no instances")]
    Empty {
        /// The pool's id.
        pool: String,
    },
    /// Two instances share an id, so results and metrics could not tell them apart.
    #[error("pool {pool} has two instances with id {instance}")]
    DuplicateInstance {
        /// The pool's id.
        pool: String,
        /// The id given twice.
        instance: String,
    },
}

/// Several instances of one model, itself an [`EmbeddingBackend`]; see the module docs.
pub struct InstancePool {
    id: String,
    members: Vec<Member>,
    options: PoolOptions,
}

impl std::fmt::Debug for InstancePool {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("InstancePool").field("id", &self.id).field("status", &self.statuses()).finish()
    }
}

/// One instance with its load and breaker.
struct Member {
    backend: Arc<dyn EmbeddingBackend>,
    outstanding: AtomicUsize,
    breaker: Mutex<TrackedBreaker>,
}

/// A breaker plus the state last reported to metrics and logs, so every transition is reported
/// once, including the time-driven one from open to half-open.
struct TrackedBreaker {
    breaker: CircuitBreaker,
    reported: BreakerState,
}

impl InstancePool {
    /// Pools `members` (instances of the same model) under the id `id`.
    pub fn new(
        id: impl Into<String>,
        members: Vec<Arc<dyn EmbeddingBackend>>,
        options: PoolOptions,
    ) -> Result<Self, PoolError> {
        let id = id.into();
        if members.is_empty() {
            return Err(PoolError::Empty { pool: id });
        }
        for (index, member) in members.iter().enumerate() {
            if members[..index].iter().any(|earlier| earlier.id() == member.id()) {
                return Err(PoolError::DuplicateInstance { pool: id, instance: member.id().to_owned() });
            }
        }
        names::describe();
        let members: Vec<Member> = members
            .into_iter()
            .map(|backend| Member {
                backend,
                outstanding: AtomicUsize::new(0),
                breaker: Mutex::new(TrackedBreaker {
                    breaker: CircuitBreaker::new(options.breaker),
                    reported: BreakerState::Closed,
                }),
            })
            .collect();
        for member in &members {
            member.report_outstanding();
            metrics::gauge!(names::BREAKER_STATE, names::INSTANCE => member.id().to_owned())
                .set(BreakerState::Closed.gauge_value());
        }
        Ok(InstancePool { id, members, options })
    }

    /// Every instance's breaker state and load, in the order they were given.
    pub fn statuses(&self) -> Vec<InstanceStatus> {
        let now = now();
        self.members.iter().map(|member| member.status(now)).collect()
    }

    /// The status of the instance with id `instance`, if it is in the pool.
    pub fn status(&self, instance: &str) -> Option<InstanceStatus> {
        let now = now();
        self.members.iter().find(|member| member.id() == instance).map(|member| member.status(now))
    }

    /// Asks every instance for its health once, at the same time, and tells the breakers: a
    /// healthy open instance becomes half-open (its next batch probes it), an unhealthy closed
    /// one counts a failure. Returns when every check answered or timed out.
    pub async fn check_health(&self) {
        let timeout = self.options.health_timeout;
        let checks = self.members.iter().map(|member| async move {
            let healthy = match tokio::time::timeout(timeout, member.backend.health()).await {
                Ok(Ok(())) => true,
                Ok(Err(error)) => {
                    tracing::debug!(instance = member.id(), %error, "health check failed");
                    false
                }
                Err(_) => {
                    tracing::debug!(instance = member.id(), ?timeout, "health check timed out");
                    false
                }
            };
            metrics::counter!(names::HEALTH_PROBES, names::INSTANCE => member.id().to_owned(),
                "result" => if healthy { "ok" } else { "failed" })
            .increment(1);
            member.with_breaker(now(), |breaker, now| breaker.record_health(healthy, now));
        });
        futures::future::join_all(checks).await;
    }

    /// Checks every instance's health every [`PoolOptions::health_interval`] until `shutdown`
    /// is cancelled; see [`check_health`](Self::check_health). Run it on its own task.
    pub async fn watch_health(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.options.health_interval) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.check_health() => {}
            }
        }
    }

    /// Spawns [`watch_health`](Self::watch_health) on the current runtime.
    pub fn spawn_health_watch(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let pool = Arc::clone(self);
        tokio::spawn(async move { pool.watch_health(shutdown).await })
    }

    /// Draws an instance that has not been tried for this batch and whose breaker admits it:
    /// the one with fewer outstanding batches of two drawn at random.
    fn pick(&self, tried: &[bool]) -> Option<(usize, Admission)> {
        let mut raced = vec![false; self.members.len()];
        loop {
            let now = now();
            let candidates: Vec<usize> = (0..self.members.len())
                .filter(|&index| !tried[index] && !raced[index] && self.members[index].would_admit(now))
                .collect();
            let chosen = match candidates.len() {
                0 => return None,
                1 => candidates[0],
                count => {
                    let mut random = rand::rng();
                    let first = random.random_range(0..count);
                    // A second index different from the first, uniformly.
                    let mut second = random.random_range(0..count - 1);
                    if second >= first {
                        second += 1;
                    }
                    let (first, second) = (candidates[first], candidates[second]);
                    if self.members[second].outstanding() < self.members[first].outstanding() { second } else { first }
                }
            };
            let member = &self.members[chosen];
            match member.with_breaker(now, |breaker, now| breaker.admit(now)) {
                Some(admission) => return Some((chosen, admission)),
                // Another batch took the half-open probe slot between the look and the admit.
                None => raced[chosen] = true,
            }
        }
    }

    async fn embed_with_retries(&self, texts: Vec<String>) -> Result<Embedded, BackendError> {
        let mut tried = vec![false; self.members.len()];
        let mut failures: Vec<BackendError> = Vec::new();
        let max_attempts = self.options.max_attempts.max(1);
        while failures.len() < max_attempts {
            let Some((index, admission)) = self.pick(&tried) else { break };
            tried[index] = true;
            let member = &self.members[index];
            let attempt = Attempt::start(member, admission);
            let result = member.backend.embed(texts.clone()).await;
            let result = result.and_then(|embedded| check_count(member.id(), embedded, texts.len()));
            match result {
                Ok(embedded) => {
                    attempt.finish("ok", |breaker, admission, now| breaker.record_success(admission, now));
                    return Ok(embedded);
                }
                Err(error) if !error.is_retryable() => {
                    // The instance answered, so it is alive: the input is at fault, not the instance.
                    attempt.finish(error.kind(), |breaker, admission, now| breaker.record_success(admission, now));
                    return Err(error);
                }
                Err(error) => {
                    attempt.finish(error.kind(), |breaker, admission, now| breaker.record_failure(admission, now));
                    metrics::counter!(names::RETRIES, names::INSTANCE => member.id().to_owned()).increment(1);
                    warn!(pool = %self.id, instance = member.id(), %error, "batch failed on an instance; trying another");
                    failures.push(error);
                }
            }
        }
        Err(self.gave_up(&failures))
    }

    /// The error for a batch no instance could embed.
    fn gave_up(&self, failures: &[BackendError]) -> BackendError {
        let instance = self.id.clone();
        if failures.is_empty() {
            let mut reason = "no instance is available:".to_owned();
            for status in self.statuses() {
                // Writing to a String cannot fail.
                let _ = write!(reason, " {} {}", status.instance, status.state.as_str());
            }
            return BackendError::Unavailable { instance, reason };
        }
        let reason = format!(
            "failed on {} instance(s): {}",
            failures.len(),
            failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        );
        if failures.iter().all(|failure| matches!(failure, BackendError::Failed { .. })) {
            BackendError::Failed { instance, reason }
        } else {
            BackendError::Unavailable { instance, reason }
        }
    }
}

impl EmbeddingBackend for InstancePool {
    fn id(&self) -> &str {
        &self.id
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Embedded, BackendError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Embedded { vectors: Vec::new(), instance: self.id.clone() });
            }
            self.embed_with_retries(texts).await
        })
    }

    /// Healthy while at least one instance's breaker lets batches through.
    fn health(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let now = now();
            if self.members.iter().any(|member| member.would_admit(now)) { Ok(()) } else { Err(self.gave_up(&[])) }
        })
    }
}

/// A backend that answered with the wrong number of vectors is broken, not the input.
fn check_count(instance: &str, embedded: Embedded, expected: usize) -> Result<Embedded, BackendError> {
    if embedded.vectors.len() == expected {
        Ok(embedded)
    } else {
        Err(BackendError::Failed {
            instance: instance.to_owned(),
            reason: format!("answered {} vectors for {expected} texts", embedded.vectors.len()),
        })
    }
}

impl Member {
    fn id(&self) -> &str {
        self.backend.id()
    }

    fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    fn report_outstanding(&self) {
        metrics::gauge!(names::OUTSTANDING, names::INSTANCE => self.id().to_owned()).set(self.outstanding() as f64);
    }

    fn would_admit(&self, now: Instant) -> bool {
        self.lock().breaker.would_admit(now)
    }

    fn status(&self, now: Instant) -> InstanceStatus {
        let state = self.with_breaker(now, |breaker, now| breaker.state(now));
        InstanceStatus { instance: self.id().to_owned(), state, outstanding: self.outstanding() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackedBreaker> {
        // The breaker is plain data updated without panicking code in between, so a poisoned
        // lock (a panic elsewhere while holding it) still guards a consistent breaker.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` on the breaker and reports the transition it made, if any.
    fn with_breaker<R>(&self, now: Instant, change: impl FnOnce(&mut CircuitBreaker, Instant) -> R) -> R {
        let mut tracked = self.lock();
        let result = change(&mut tracked.breaker, now);
        let state = tracked.breaker.state(now);
        if state != tracked.reported {
            let from = tracked.reported;
            tracked.reported = state;
            drop(tracked);
            self.report_transition(from, state);
        }
        result
    }

    fn report_transition(&self, from: BreakerState, to: BreakerState) {
        let instance = self.id().to_owned();
        metrics::gauge!(names::BREAKER_STATE, names::INSTANCE => instance.clone()).set(to.gauge_value());
        metrics::counter!(names::BREAKER_TRANSITIONS, names::INSTANCE => instance.clone(), "to" => to.as_str())
            .increment(1);
        match to {
            BreakerState::Open => warn!(%instance, from = from.as_str(), "circuit breaker opened: instance taken out"),
            BreakerState::HalfOpen => info!(%instance, "circuit breaker half-open: next batch probes the instance"),
            BreakerState::Closed => info!(%instance, "circuit breaker closed: instance back in the pool"),
        }
    }
}

/// One batch on one instance: counts it as outstanding while it runs and, if its caller goes
/// away before the outcome (cancellation), hands a probe slot back on drop.
struct Attempt<'a> {
    member: &'a Member,
    admission: Admission,
    started: Instant,
    finished: bool,
}

impl<'a> Attempt<'a> {
    fn start(member: &'a Member, admission: Admission) -> Self {
        member.outstanding.fetch_add(1, Ordering::Relaxed);
        member.report_outstanding();
        Attempt { member, admission, started: now(), finished: false }
    }

    fn finish(mut self, outcome: &'static str, record: impl FnOnce(&mut CircuitBreaker, Admission, Instant)) {
        self.finished = true;
        let now = now();
        let instance = self.member.id().to_owned();
        metrics::histogram!(names::REQUEST_SECONDS, names::INSTANCE => instance.clone(), "outcome" => outcome)
            .record(now.saturating_duration_since(self.started).as_secs_f64());
        metrics::counter!(names::REQUESTS, names::INSTANCE => instance, "outcome" => outcome).increment(1);
        let admission = self.admission;
        self.member.with_breaker(now, |breaker, now| record(breaker, admission, now));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let admission = self.admission;
            self.member.with_breaker(now(), |breaker, _| breaker.record_abandoned(admission));
        }
        self.member.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.member.report_outstanding();
    }
}

/// The pool's clock: tokio's, so a runtime with paused time moves it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
