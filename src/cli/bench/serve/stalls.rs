//! How late the bench process's async threads answer: a task asks for a 5 ms sleep, over and
//! over, and records every wake-up that came late. It sees the runtime as a whole falling
//! behind (every worker thread blocked or busy at once), which delays every instance, the
//! publisher and the collector together; a single blocked worker, whose queued tasks wait while
//! the others run, does not show here (`perf sched timehist` does). A bucket whose p99 is far
//! above its longest stall is slow somewhere else.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The sleep asked for.
const PERIOD: Duration = Duration::from_millis(5);
/// Lateness below this is the timer's own granularity, not a stall.
const NOTABLE: Duration = Duration::from_millis(2);

/// Late wake-ups since the probe started: when each was due, and how late it came.
#[derive(Debug, Clone, Default)]
pub(super) struct StallProbe {
    late: Arc<Mutex<Vec<(Instant, Duration)>>>,
}

impl StallProbe {
    /// Starts probing on the current runtime until `shutdown`.
    pub(super) fn start(shutdown: CancellationToken) -> StallProbe {
        let probe = StallProbe::default();
        let late = probe.late.clone();
        tokio::spawn(async move {
            loop {
                let due = Instant::now() + PERIOD;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep_until(due.into()) => {}
                }
                let lateness = Instant::now().saturating_duration_since(due);
                if lateness >= NOTABLE {
                    // A poisoned lock only means a reader panicked; the samples are still sound.
                    late.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((due, lateness));
                }
            }
        });
        probe
    }

    /// The longest stall (ms) in each `bucket` from `started`, for `buckets` buckets.
    pub(super) fn longest_per_bucket(&self, started: Instant, bucket: Duration, buckets: usize) -> Vec<f64> {
        let mut longest = vec![0.0; buckets];
        let late = self.late.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (due, lateness) in late.iter().filter(|(due, _)| *due >= started) {
            if let Some(slot) = longest.get_mut(super::phase::bucket_index(started, *due, bucket)) {
                *slot = f64::max(*slot, lateness.as_secs_f64() * 1000.0);
            }
        }
        longest
    }
}
