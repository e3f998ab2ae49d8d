//! The hot path: `observe` allocates nothing in steady state, and keeps up with the issue's
//! 200,000 events/s target.
//!
//! Allocations are counted per thread by a counting allocator installed for this test binary
//! (it only adds a thread-local increment to every allocation, so other tests are unaffected).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use super::support::*;
use crate::records::{CacheLayer, RequestCompleted, RequestStatus};
use crate::sla::{SlaConfig, SlaMonitor};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // try_with: during thread teardown the counter may be gone; those allocations do not matter.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING_ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// `count` events of `series` series starting at `from_ms`, `per_second` a second, with ids of
/// one fixed length and a repeating latency and outcome mix.
fn traffic(from_ms: i64, count: usize, per_second: usize, series: usize) -> impl Iterator<Item = RequestCompleted> {
    (0..count).map(move |i| {
        let at = from_ms + (i / per_second) as i64 * SECOND + (i % per_second) as i64 * SECOND / per_second as i64;
        let status = match i % 100 {
            0 => RequestStatus::Error,
            1 => RequestStatus::Timeout,
            _ => RequestStatus::Ok,
        };
        let mut event = event(&format!("req-{i:012}"), 1.0 + (i % 997) as f64 * 0.7, status, at);
        event.kind = format!("kind-{}", i % series);
        event.cache_layer = if i % 3 == 0 { CacheLayer::None } else { CacheLayer::Redis };
        event
    })
}

#[test]
fn observe_allocates_nothing_once_its_series_and_buckets_exist() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    // Warm-up with the same traffic for longer than the longest ring (39 ten-minute buckets),
    // so every slot has its histogram, grown to the latencies seen, and its exemplar ids.
    let warm_up_minutes = 400;
    for event in traffic(T0, warm_up_minutes * 60 * 50, 50, 3) {
        monitor.observe(&event, event.occurred_at);
    }
    let from = T0 + warm_up_minutes as i64 * MINUTE;
    let steady: Vec<RequestCompleted> = traffic(from, 20 * 60 * 50, 50, 3).collect();

    let before = allocations();
    for event in &steady {
        monitor.observe(event, event.occurred_at);
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "{allocated} allocations while observing {} events", steady.len());
    assert_eq!(monitor.drops().total(), 0);
}

/// Run in release to measure: `cargo test --release --lib sla::tests::hot_path -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn observe_sustains_two_hundred_thousand_events_a_second() {
    let mut monitor = SlaMonitor::new(SlaConfig::default()).unwrap();
    let events: Vec<RequestCompleted> = traffic(T0, 3_000_000, 20_000, 40).collect();
    let started = Instant::now();
    for (i, event) in events.iter().enumerate() {
        monitor.observe(event, event.occurred_at);
        if i % 20_000 == 19_999 {
            // The consumer loop evaluates every second of traffic.
            monitor.evaluate(event.occurred_at);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = events.len() as f64 / seconds;
    println!("{} events over 40 series in {seconds:.2} s: {rate:.0} events/s on one core", events.len());
    assert!(rate > 200_000.0, "{rate:.0} events/s");
}

/// Run in release to measure: `cargo test --release --lib sla::tests::hot_path -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn evaluating_a_hundred_series_with_hours_of_history_takes_milliseconds() {
    use crate::sla::{Comparison, Sli, SliWindow, ThresholdRule};
    let mut config = SlaConfig { max_series: 1_000, ..SlaConfig::default() };
    // Percentiles over every window, so the 1h and 6h merges are measured too.
    for (name, window) in [("P99Over1h", SliWindow::OneHour), ("P99Over6h", SliWindow::SixHours)] {
        config.rules.push(ThresholdRule::new(name, Sli::LatencyP99, Comparison::Above, 5_000.0, window));
    }
    let mut monitor = SlaMonitor::new(config).unwrap();
    let series = 100;
    let history_s = 7 * 3_600;
    for event in traffic(T0, series * history_s, series, series) {
        monitor.observe(&event, event.occurred_at);
    }
    let next: Vec<RequestCompleted> = traffic(T0 + history_s as i64 * SECOND, series * 60, series, series).collect();
    let started = Instant::now();
    for (second, batch) in next.chunks(series).enumerate() {
        for event in batch {
            monitor.observe(event, event.occurred_at);
        }
        monitor.evaluate(T0 + (history_s + second) as i64 * SECOND);
    }
    let per_evaluation_ms = started.elapsed().as_secs_f64() * 1000.0 / 60.0;
    println!("evaluate over {series} series with 7h of history: {per_evaluation_ms:.2} ms per call");
    assert!(per_evaluation_ms < 100.0);
}
