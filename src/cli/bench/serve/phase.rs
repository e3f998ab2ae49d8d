//! One phase of `frontier bench serve`: the answers it collected and what it prints of them,
//! the latency summary and the p99 per 5 s bucket of publish time against the 20 ms goal.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{stages, stalls};
use crate::cli::percentile;

/// How many of a phase's 5 s buckets miss [`BUCKET_GOAL_MS`] at p99.
#[derive(Debug, Clone, Copy)]
pub(super) struct Missed {
    /// Over all its requests.
    pub(super) all: usize,
    /// Over the requests a cache layer answered.
    pub(super) cached: usize,
    /// Buckets in the phase.
    pub(super) buckets: usize,
}

/// One answered request: which layer answered and how long it took from publish.
#[derive(Debug, Clone)]
pub(in crate::cli::bench) struct Answered {
    pub(super) id: String,
    /// When it was published.
    pub(super) sent: Instant,
    pub(super) layer: String,
    pub(super) status: String,
    pub(super) latency_ms: f64,
    /// The part of `latency_ms` until the instance had the answer ready (the response's own
    /// `latency_ms`: publish, Kafka, fetch, queue, handling); the rest is the way back
    /// (produce, Kafka, the collector's fetch).
    pub(super) ready_ms: f64,
}

impl Answered {
    /// An ok answer a cache layer gave.
    pub(super) fn is_cached(&self) -> bool {
        self.layer != "none" && self.status == "ok"
    }
}

/// The goal of every 5 s bucket of every phase: p99 at most this (ms).
pub(super) const BUCKET_GOAL_MS: f64 = 20.0;

/// What one phase measured.
#[derive(Debug, Default)]
pub(super) struct Phase {
    pub(super) answered: Vec<Answered>,
    pub(super) sent: usize,
    pub(super) elapsed: Duration,
    pub(super) started: Option<Instant>,
    /// How long its publishing was scheduled to take (requests / rate): the timeline has the
    /// buckets of that span, so the last request, due at its very end, is not a bucket alone.
    pub(super) scheduled: Duration,
    /// The process's async-thread stalls, for the timeline.
    pub(super) stalls: stalls::StallProbe,
    /// The serving instances' stage timings, for the timeline.
    pub(super) stages: stages::StageProbe,
}

impl Phase {
    pub(super) fn latencies(&self, keep: impl Fn(&Answered) -> bool) -> Vec<f64> {
        let mut all: Vec<f64> = self.answered.iter().filter(|a| keep(a)).map(|a| a.latency_ms).collect();
        all.sort_by(f64::total_cmp);
        all
    }

    /// The p99 latency (ms) of the kept requests published in each `bucket` of the phase;
    /// `None` for a bucket with none of them.
    pub(super) fn p99_timeline(
        &self,
        bucket: Duration,
        keep: impl Fn(&Answered) -> bool,
        latency: impl Fn(&Answered) -> f64,
    ) -> Vec<Option<f64>> {
        let Some(started) = self.started else { return Vec::new() };
        let buckets = self.buckets(bucket);
        // A request published late (the publisher behind its schedule) counts in the last.
        let index_of = |a: &Answered| bucket_index(started, a.sent, bucket).min(buckets.saturating_sub(1));
        let mut latencies = vec![Vec::new(); buckets];
        for answered in self.answered.iter().filter(|a| keep(a)) {
            latencies[index_of(answered)].push(latency(answered));
        }
        latencies
            .into_iter()
            .map(|mut bucket| {
                bucket.sort_by(f64::total_cmp);
                (!bucket.is_empty()).then(|| percentile(&bucket, 99.0))
            })
            .collect()
    }

    /// How many `bucket`s the timeline has: those of the scheduled span, or, for a phase
    /// without a schedule, up to its last answer's.
    fn buckets(&self, bucket: Duration) -> usize {
        if !self.scheduled.is_zero() {
            return (self.scheduled.as_secs_f64() / bucket.as_secs_f64()).ceil() as usize;
        }
        let Some(started) = self.started else { return 0 };
        self.answered.iter().map(|a| bucket_index(started, a.sent, bucket)).max().map_or(0, |last| last + 1)
    }

    /// The phase's timeline per 5 s of publish time: p99 of all requests, p99 of those a cache
    /// layer answered, and the process's longest async-thread stall. Returns the text and the
    /// buckets missing [`BUCKET_GOAL_MS`], for all requests and for cached answers.
    pub(super) fn timeline(&self) -> (String, Missed) {
        let bucket = Duration::from_secs(5);
        let all = self.p99_timeline(bucket, |_| true, |a| a.latency_ms);
        let buckets = all.len();
        let ready = self.p99_timeline(bucket, |_| true, |a| a.ready_ms);
        let cached = self.p99_timeline(bucket, Answered::is_cached, |a| a.latency_ms);
        let cached_ready = self.p99_timeline(bucket, Answered::is_cached, |a| a.ready_ms);
        let stalls = match self.started {
            Some(started) => self.stalls.longest_per_bucket(started, bucket, buckets),
            None => Vec::new(),
        };
        let over = |line: &[Option<f64>]| line.iter().flatten().filter(|ms| **ms > BUCKET_GOAL_MS).count();
        let missed = Missed { all: over(&all), cached: over(&cached), buckets };
        let join = |line: Vec<Option<f64>>| {
            line.iter()
                .map(|ms| ms.map_or_else(|| "-".to_string(), |ms| format!("{ms:.0}")))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut text = format!(
            "  p99 ms per 5 s of publish time: {}\n    until ready in the instance:  {}\n    cached answers only:          {}\n      until ready in the instance: {}\n    longest async-thread stall:   {}",
            join(all),
            join(ready),
            join(cached),
            join(cached_ready),
            join(stalls.into_iter().map(Some).collect())
        );
        if let Some(started) = self.started
            && let Some(stages) = self.stages.p99_per_bucket(started, bucket, buckets)
        {
            text.push_str("\n    p99 ms per stage, by when each offset was stored (then parts of handle):");
            for (stage, line) in stages::PROBED.iter().zip(stages) {
                text.push_str(&format!("\n      {stage:8} {}", join(line)));
            }
        }
        (text, missed)
    }

    /// Prints `heading` with the latency of the phase's answered requests and how many were
    /// answered, then its timeline; returns the buckets missed.
    pub(super) fn report(&self, heading: &str) -> Missed {
        let answered = format!("answered {} of {}", self.answered.len(), self.sent);
        println!("{heading}  {}  {answered}", summary(&self.latencies(|a| a.status == "ok")));
        self.print_timeline()
    }

    /// Prints the phase's timeline; returns the buckets missed.
    pub(super) fn print_timeline(&self) -> Missed {
        let (text, missed) = self.timeline();
        println!("{text}");
        missed
    }

    pub(super) fn layer_counts(&self, keep: impl Fn(&Answered) -> bool) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for answered in self.answered.iter().filter(|a| keep(a)) {
            *counts.entry(answered.layer.as_str()).or_default() += 1;
        }
        counts
    }
}

/// Which `bucket` from `started` the instant `at` falls in (the first for one before it).
pub(super) fn bucket_index(started: Instant, at: Instant, bucket: Duration) -> usize {
    (at.saturating_duration_since(started).as_secs_f64() / bucket.as_secs_f64()) as usize
}

/// The percentiles a comparison of two phases sets side by side (100 is the largest).
pub(super) const COMPARED: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 100.0];

pub(super) fn summary(sorted: &[f64]) -> String {
    format!(
        "p50 {:7.2} ms  p95 {:7.2} ms  p99 {:7.2} ms  (n={})",
        percentile(sorted, 50.0),
        percentile(sorted, 95.0),
        percentile(sorted, 99.0),
        sorted.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered_at(started: Instant, after: Duration, latency_ms: f64) -> Answered {
        Answered {
            id: "test".into(),
            sent: started + after,
            layer: "memory".into(),
            status: "ok".into(),
            latency_ms,
            ready_ms: latency_ms,
        }
    }

    #[test]
    fn the_request_due_at_the_end_of_the_schedule_counts_in_the_last_bucket() {
        let started = Instant::now();
        let answered = vec![
            answered_at(started, Duration::from_millis(100), 5.0),
            answered_at(started, Duration::from_millis(9_000), 6.0),
            // Due at 10 s exactly, published a little after.
            answered_at(started, Duration::from_millis(10_002), 30.0),
        ];
        let phase = Phase { answered, started: Some(started), scheduled: Duration::from_secs(10), ..Phase::default() };
        let timeline = phase.p99_timeline(Duration::from_secs(5), |_| true, |a| a.latency_ms);
        assert_eq!(timeline.len(), 2);
        assert_eq!(timeline[0], Some(5.0));
        assert!(timeline[1].is_some_and(|p99| p99 > 6.0 && p99 <= 30.0));
    }

    #[test]
    fn a_phase_without_a_schedule_spans_its_answers() {
        let started = Instant::now();
        let answered = vec![answered_at(started, Duration::from_millis(12_000), 5.0)];
        let phase = Phase { answered, started: Some(started), ..Phase::default() };
        assert_eq!(phase.p99_timeline(Duration::from_secs(5), |_| true, |a| a.latency_ms), vec![None, None, Some(5.0)]);
    }
}
