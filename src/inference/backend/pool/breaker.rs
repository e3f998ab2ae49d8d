//! The per-instance circuit breaker: pure state, every call given the time, so tests drive it
//! with a made-up clock.
//!
//! Closed: every batch goes through; it opens after `consecutive_failures` failures in a row, or
//! when at least `error_rate_min_requests` batches finished within `error_rate_window` and the
//! share of failures among them reached `error_rate_threshold`. Open: nothing goes through until
//! `cool_down` has passed (or a health probe says the instance is back); then half-open: exactly
//! one batch, the probe, goes through; its success closes the breaker, its failure re-opens it
//! for another cool-down.
//!
//! Outcomes of batches admitted before the latest opening are ignored (each [`Admission`]
//! remembers the breaker's generation): a batch that was already in flight when the instance
//! died must not re-open, extend or close anything.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// Share of failed batches (0..=1) within the window that opens the breaker.
    pub error_rate_threshold: f64,
    /// How far back the error rate looks.
    pub error_rate_window: Duration,
    /// Batches the window must hold before its error rate counts, so two failures out of three
    /// on a quiet instance do not open it.
    pub error_rate_min_requests: u32,
    /// How long an open breaker waits before letting one probe through.
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            consecutive_failures: 5,
            error_rate_threshold: 0.5,
            error_rate_window: Duration::from_secs(30),
            error_rate_min_requests: 20,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// What a breaker lets through, as reported in metrics and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Healthy: every batch goes through.
    Closed,
    /// Cooled down: one probe batch may go through.
    HalfOpen,
    /// Taken out: no batch goes through.
    Open,
}

impl BreakerState {
    /// The value of the breaker-state gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }

    /// Lower-case name for labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// A breaker's permission for one batch, handed back with its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether this batch is the half-open probe that decides the breaker's state.
    pub probe: bool,
    generation: u64,
}

/// The state machine itself; the pool holds one per instance behind a mutex.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    phase: Phase,
    /// Bumped on every opening, so late outcomes of older admissions are recognised.
    generation: u64,
    consecutive_failures: u32,
    window: OutcomeWindow,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        CircuitBreaker {
            settings,
            phase: Phase::Closed,
            generation: 0,
            consecutive_failures: 0,
            window: OutcomeWindow::new(settings.error_rate_window),
        }
    }

    /// The state at `now`: an open breaker whose cool-down has passed reads as half-open.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if now >= until => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether [`admit`](Self::admit) would let a batch through at `now`, without taking the
    /// probe slot.
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Closed => true,
            Phase::Open { until } => now >= until,
            Phase::HalfOpen { probe_in_flight } => !probe_in_flight,
        }
    }

    /// Lets one batch through, or not. Past the cool-down the first batch becomes the probe and
    /// every other waits until the probe's outcome.
    pub fn admit(&mut self, now: Instant) -> Option<Admission> {
        match self.phase {
            Phase::Closed => Some(Admission { probe: false, generation: self.generation }),
            Phase::Open { until } if now < until => None,
            Phase::Open { .. } | Phase::HalfOpen { probe_in_flight: false } => {
                self.phase = Phase::HalfOpen { probe_in_flight: true };
                Some(Admission { probe: true, generation: self.generation })
            }
            Phase::HalfOpen { probe_in_flight: true } => None,
        }
    }

    /// Records that an admitted batch succeeded (or was refused for its input, which still
    /// proves the instance answers).
    pub fn record_success(&mut self, admission: Admission, now: Instant) {
        if admission.generation != self.generation {
            return;
        }
        match self.phase {
            Phase::Closed => {
                self.consecutive_failures = 0;
                self.window.record(now, false);
            }
            Phase::HalfOpen { .. } if admission.probe => self.close(),
            Phase::HalfOpen { .. } | Phase::Open { .. } => {}
        }
    }

    /// Records that an admitted batch failed on the instance (unreachable, server error, model
    /// failure).
    pub fn record_failure(&mut self, admission: Admission, now: Instant) {
        if admission.generation != self.generation {
            return;
        }
        match self.phase {
            Phase::Closed => self.count_failure(now),
            Phase::HalfOpen { .. } if admission.probe => self.open(now),
            Phase::HalfOpen { .. } | Phase::Open { .. } => {}
        }
    }

    /// Gives the probe slot back when an admitted probe ended with no outcome (its caller was
    /// cancelled), so the next batch can probe instead of the breaker waiting forever.
    pub fn record_abandoned(&mut self, admission: Admission) {
        if admission.generation == self.generation
            && admission.probe
            && self.phase == (Phase::HalfOpen { probe_in_flight: true })
        {
            self.phase = Phase::HalfOpen { probe_in_flight: false };
        }
    }

    /// Records a health check of the instance. A healthy open instance becomes half-open at once
    /// (its next batch is the probe) rather than waiting out the cool-down; an unhealthy closed
    /// one counts a failure; anything else is left as it is.
    pub fn record_health(&mut self, healthy: bool, now: Instant) {
        match (self.phase, healthy) {
            (Phase::Open { .. }, true) => self.phase = Phase::HalfOpen { probe_in_flight: false },
            (Phase::Closed, false) => self.count_failure(now),
            _ => {}
        }
    }

    fn count_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.window.record(now, true);
        let (finished, failed) = self.window.counts(now);
        let rate_reached = finished >= u64::from(self.settings.error_rate_min_requests.max(1))
            && failed as f64 >= self.settings.error_rate_threshold * finished as f64;
        if self.consecutive_failures >= self.settings.consecutive_failures.max(1) || rate_reached {
            self.open(now);
        }
    }

    fn open(&mut self, now: Instant) {
        self.phase = Phase::Open { until: now + self.settings.cool_down };
        self.generation += 1;
        self.consecutive_failures = 0;
        self.window.clear();
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.consecutive_failures = 0;
        self.window.clear();
    }
}

/// Outcome counts over a sliding window, in ten buckets so memory stays fixed however many
/// batches an instance answers.
#[derive(Debug, Clone)]
struct OutcomeWindow {
    bucket_width: Duration,
    window: Duration,
    /// (bucket start, finished, failed), oldest first.
    buckets: VecDeque<(Instant, u64, u64)>,
}

const WINDOW_BUCKETS: u32 = 10;

impl OutcomeWindow {
    fn new(window: Duration) -> Self {
        let bucket_width = (window / WINDOW_BUCKETS).max(Duration::from_millis(1));
        OutcomeWindow { bucket_width, window, buckets: VecDeque::new() }
    }

    fn record(&mut self, now: Instant, failed: bool) {
        self.expire(now);
        match self.buckets.back_mut() {
            Some((start, finished, failures)) if now < *start + self.bucket_width => {
                *finished += 1;
                *failures += u64::from(failed);
            }
            _ => self.buckets.push_back((now, 1, u64::from(failed))),
        }
    }

    /// Batches finished and failed within the window ending at `now`.
    fn counts(&mut self, now: Instant) -> (u64, u64) {
        self.expire(now);
        self.buckets.iter().fold((0, 0), |(finished, failed), (_, f, e)| (finished + f, failed + e))
    }

    fn expire(&mut self, now: Instant) {
        while let Some((start, _, _)) = self.buckets.front() {
            if now.saturating_duration_since(*start + self.bucket_width) >= self.window {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up clock: a fixed origin plus whatever the test advances it by.
    struct TestClock {
        origin: Instant,
        elapsed: Duration,
    }

    impl TestClock {
        fn new() -> Self {
            TestClock { origin: Instant::now(), elapsed: Duration::ZERO }
        }
        fn now(&self) -> Instant {
            self.origin + self.elapsed
        }
        fn advance(&mut self, by: Duration) {
            self.elapsed += by;
        }
    }

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            error_rate_threshold: 0.5,
            error_rate_window: Duration::from_secs(10),
            error_rate_min_requests: 10,
            cool_down: Duration::from_secs(5),
        }
    }

    fn fail(breaker: &mut CircuitBreaker, clock: &TestClock) {
        let admission = breaker.admit(clock.now()).expect("admitted");
        breaker.record_failure(admission, clock.now());
    }

    fn succeed(breaker: &mut CircuitBreaker, clock: &TestClock) {
        let admission = breaker.admit(clock.now()).expect("admitted");
        breaker.record_success(admission, clock.now());
    }

    #[test]
    fn a_new_breaker_is_closed_and_admits_every_batch() {
        let clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        assert_eq!(breaker.state(clock.now()), BreakerState::Closed);
        for _ in 0..100 {
            let admission = breaker.admit(clock.now()).expect("closed admits");
            assert!(!admission.probe);
        }
    }

    #[test]
    fn consecutive_failures_open_the_breaker() {
        let clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        fail(&mut breaker, &clock);
        fail(&mut breaker, &clock);
        assert_eq!(breaker.state(clock.now()), BreakerState::Closed);
        fail(&mut breaker, &clock);
        assert_eq!(breaker.state(clock.now()), BreakerState::Open);
        assert!(breaker.admit(clock.now()).is_none());
        assert!(!breaker.would_admit(clock.now()));
    }

    #[test]
    fn a_success_resets_the_consecutive_failure_count() {
        let clock = TestClock::new();
        // A window that never fills, so only the consecutive count can open it.
        let mut breaker = CircuitBreaker::new(BreakerSettings { error_rate_min_requests: 1000, ..settings() });
        for _ in 0..10 {
            fail(&mut breaker, &clock);
            fail(&mut breaker, &clock);
            succeed(&mut breaker, &clock);
        }
        assert_eq!(breaker.state(clock.now()), BreakerState::Closed);
    }

    #[test]
    fn an_error_rate_over_the_threshold_opens_the_breaker() {
        let clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        // Alternate: never 3 failures in a row, but half the batches fail.
        for _ in 0..4 {
            succeed(&mut breaker, &clock);
            fail(&mut breaker, &clock);
        }
        assert_eq!(breaker.state(clock.now()), BreakerState::Closed, "8 batches: under the minimum of 10");
        succeed(&mut breaker, &clock);
        fail(&mut breaker, &clock);
        assert_eq!(breaker.state(clock.now()), BreakerState::Open, "5 failures of 10 reach 50%");
    }

    #[test]
    fn failures_older_than_the_window_do_not_count_towards_the_rate() {
        let mut clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        for _ in 0..4 {
            succeed(&mut breaker, &clock);
            fail(&mut breaker, &clock);
        }
        clock.advance(Duration::from_secs(30));
        for _ in 0..4 {
            succeed(&mut breaker, &clock);
            succeed(&mut breaker, &clock);
            fail(&mut breaker, &clock);
        }
        // In the window: 12 batches, 4 failures (33%).
        assert_eq!(breaker.state(clock.now()), BreakerState::Closed);
    }

    #[test]
    fn an_open_breaker_turns_half_open_after_the_cool_down_and_admits_one_probe() {
        let mut clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        (0..3).for_each(|_| fail(&mut breaker, &clock));
        clock.advance(Duration::from_millis(4_999));
        assert_eq!(breaker.state(clock.now()), BreakerState::Open);
        assert!(breaker.admit(clock.now()).is_none());
        clock.advance(Duration::from_millis(1));
        assert_eq!(breaker.state(clock.now()), BreakerState::HalfOpen);
        let probe = breaker.admit(clock.now()).expect("the probe");
        assert!(probe.probe);
        assert!(breaker.admit(clock.now()).is_none(), "one probe at a time");
        assert!(!breaker.would_admit(clock.now()));
    }

    #[test]
    fn a_successful_probe_closes_the_breaker() {
        let mut clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        (0..3).for_each(|_| fail(&mut breaker, &clock));
        clock.advance(Duration::from_secs(5));
        let probe = breaker.admit(clock.now()).expect("the probe");
        breaker.record_success(probe, clock.now());
        assert_eq!(breaker.state(clock.now()), BreakerState::Closed);
        let next = breaker.admit(clock.now()).expect("closed admits");
        assert!(!next.probe);
    }

    #[test]
    fn a_failed_probe_reopens_the_breaker_for_another_cool_down() {
        let mut clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        (0..3).for_each(|_| fail(&mut breaker, &clock));
        clock.advance(Duration::from_secs(5));
        let probe = breaker.admit(clock.now()).expect("the probe");
        clock.advance(Duration::from_secs(1));
        breaker.record_failure(probe, clock.now());
        assert_eq!(breaker.state(clock.now()), BreakerState::Open);
        clock.advance(Duration::from_millis(4_999));
        assert!(breaker.admit(clock.now()).is_none(), "the cool-down restarts at the failed probe");
        clock.advance(Duration::from_millis(1));
        assert!(breaker.admit(clock.now()).expect("the next probe").probe);
    }

    #[test]
    fn outcomes_of_batches_admitted_before_the_breaker_opened_are_ignored() {
        let mut clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        let in_flight: Vec<Admission> = (0..5).map(|_| breaker.admit(clock.now()).expect("closed")).collect();
        for admission in &in_flight[..3] {
            breaker.record_failure(*admission, clock.now());
        }
        assert_eq!(breaker.state(clock.now()), BreakerState::Open);
        clock.advance(Duration::from_secs(5));
        let probe = breaker.admit(clock.now()).expect("the probe");
        // A late success from before the opening must not close it, a late failure must not
        // re-open it: only the probe decides.
        breaker.record_success(in_flight[3], clock.now());
        assert_eq!(breaker.state(clock.now()), BreakerState::HalfOpen);
        breaker.record_failure(in_flight[4], clock.now());
        assert_eq!(breaker.state(clock.now()), BreakerState::HalfOpen);
        breaker.record_success(probe, clock.now());
        assert_eq!(breaker.state(clock.now()), BreakerState::Closed);
    }

    #[test]
    fn an_abandoned_probe_frees_the_probe_slot() {
        let mut clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        (0..3).for_each(|_| fail(&mut breaker, &clock));
        clock.advance(Duration::from_secs(5));
        let probe = breaker.admit(clock.now()).expect("the probe");
        breaker.record_abandoned(probe);
        assert!(breaker.admit(clock.now()).expect("another probe").probe);
    }

    #[test]
    fn a_healthy_check_makes_an_open_breaker_half_open_before_the_cool_down() {
        let clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        (0..3).for_each(|_| fail(&mut breaker, &clock));
        breaker.record_health(false, clock.now());
        assert_eq!(breaker.state(clock.now()), BreakerState::Open);
        breaker.record_health(true, clock.now());
        assert_eq!(breaker.state(clock.now()), BreakerState::HalfOpen);
        assert!(breaker.admit(clock.now()).expect("the probe").probe);
    }

    #[test]
    fn failed_health_checks_open_a_closed_breaker() {
        let clock = TestClock::new();
        let mut breaker = CircuitBreaker::new(settings());
        breaker.record_health(true, clock.now());
        (0..3).for_each(|_| breaker.record_health(false, clock.now()));
        assert_eq!(breaker.state(clock.now()), BreakerState::Open);
    }
}
