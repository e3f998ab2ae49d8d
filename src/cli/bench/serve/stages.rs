//! Where the serving instances' time goes, second by second: the bench installs a metrics
//! recorder that keeps only the bus's stage histograms of the serving worker
//! (`frontier_bus_stage_duration_seconds{worker="serve"}`: kafka, wait, handle, deliver,
//! settle) and the parts of `handle` a slow answer can wait in (a computation, its turn on a
//! core, a PostgreSQL connection of the price store, a Redis command), so a slow 5 s bucket of a
//! phase shows which stage held its requests up. Every other metric stays a no-op, as it was
//! before the probe: the figures stay comparable with earlier runs.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use metrics::{Counter, Gauge, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use crate::bus::metrics::{STAGE_SECONDS, STAGES};
use crate::workers::WorkerConfig;
use crate::workers::serve::ServeSettings;

/// What the probe keeps, in the order printed: the bus's stages, then `compute`
/// (`frontier_cache_compute_duration_seconds`: every computation of the process, the warmer's
/// included), `turn` (`frontier_analysis_turn_wait_seconds`), `acquire`
/// (`frontier_db_pool_acquire_duration_seconds{pool="prices"}`) and `redis`
/// (`frontier_cache_redis_duration_seconds`, every command).
pub(super) const PROBED: [&str; 9] =
    ["kafka", "wait", "handle", "deliver", "settle", "compute", "turn", "acquire", "redis"];

/// Which of [`PROBED`] a histogram is, if any.
fn probed(key: &Key) -> Option<usize> {
    let label = |name: &str| key.labels().find(|label| label.key() == name).map(|label| label.value().to_owned());
    let part = |name: &str| PROBED.iter().position(|probed| *probed == name);
    match key.name() {
        STAGE_SECONDS if label("worker").as_deref() == Some(ServeSettings::NAME) => {
            label("stage").filter(|stage| STAGES.contains(&stage.as_str())).and_then(|stage| part(&stage))
        }
        crate::cache::metric::COMPUTE_SECONDS => part("compute"),
        crate::market::TURN_WAIT_SECONDS => part("turn"),
        crate::db::POOL_ACQUIRE_SECONDS if label("pool").as_deref() == Some(crate::market::POOL_NAME) => {
            part("acquire")
        }
        crate::cache::metric::REDIS_SECONDS => part("redis"),
        _ => None,
    }
}

/// One histogram per probed series, in microseconds.
type StageHistograms = [Histogram<u64>; PROBED.len()];

/// The serving worker's stage timings per second since the probe started.
#[derive(Clone, Default)]
pub(super) struct StageProbe {
    /// `None` when another recorder was installed first (a test running benches in-process).
    seconds: Option<Arc<Seconds>>,
}

impl std::fmt::Debug for StageProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageProbe").field("installed", &self.seconds.is_some()).finish()
    }
}

struct Seconds {
    started: Instant,
    /// Index: whole seconds since `started`.
    slots: Mutex<Vec<StageHistograms>>,
}

impl Seconds {
    fn record(&self, stage: usize, seconds: f64) {
        let second = self.started.elapsed().as_secs() as usize;
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        while slots.len() <= second {
            slots.push(empty_histograms());
        }
        // Auto-resizing: recording cannot fail (`saturating_record` would clamp to the
        // current range instead of growing it).
        let _ = slots[second][stage].record((seconds * 1e6) as u64);
    }
}

fn empty_histograms() -> StageHistograms {
    // Two significant figures, resized as values come: a few KiB per stage and second.
    std::array::from_fn(|_| Histogram::new(2).unwrap_or_else(|_| unreachable!("2 significant figures are valid")))
}

impl StageProbe {
    /// Installs the probe's recorder as the process's metrics recorder; without it (one was
    /// installed already) the probe reports nothing.
    pub(super) fn install() -> StageProbe {
        let seconds = Arc::new(Seconds { started: Instant::now(), slots: Mutex::default() });
        match metrics::set_global_recorder(StageRecorder { seconds: seconds.clone() }) {
            Ok(()) => StageProbe { seconds: Some(seconds) },
            Err(_) => {
                eprintln!("[bench] stage timings unavailable: this process has a metrics recorder already");
                StageProbe { seconds: None }
            }
        }
    }

    /// For each probed series, its p99 (ms) in each `bucket` from `started`, for `buckets`
    /// buckets, by the second its values were recorded (a message's stages when its offset was
    /// stored); `None` for a bucket with none.
    pub(super) fn p99_per_bucket(
        &self,
        started: Instant,
        bucket: Duration,
        buckets: usize,
    ) -> Option<[Vec<Option<f64>>; PROBED.len()]> {
        let seconds = self.seconds.as_ref()?;
        let slots = seconds.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut merged: Vec<StageHistograms> = (0..buckets).map(|_| empty_histograms()).collect();
        for (second, slot) in slots.iter().enumerate() {
            // The middle of the second: values recorded in it fall either side of its start.
            let at = seconds.started + Duration::from_millis(second as u64 * 1000 + 500);
            let Some(since) = at.checked_duration_since(started) else { continue };
            let index = (since.as_secs_f64() / bucket.as_secs_f64()) as usize;
            let Some(target) = merged.get_mut(index) else { continue };
            for (into, from) in target.iter_mut().zip(slot) {
                // Both auto-resize: adding cannot fail.
                let _ = into.add(from);
            }
        }
        Some(std::array::from_fn(|stage| {
            merged
                .iter()
                .map(|histograms| {
                    let histogram = &histograms[stage];
                    (!histogram.is_empty()).then(|| histogram.value_at_quantile(0.99) as f64 / 1000.0)
                })
                .collect()
        }))
    }
}

/// Keeps the histograms of [`PROBED`]; every other metric is dropped.
struct StageRecorder {
    seconds: Arc<Seconds>,
}

/// One stage's histogram handle.
struct StageSink {
    stage: usize,
    seconds: Arc<Seconds>,
}

impl metrics::HistogramFn for StageSink {
    fn record(&self, value: f64) {
        self.seconds.record(self.stage, value);
    }
}

impl Recorder for StageRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        match probed(key) {
            Some(stage) => metrics::Histogram::from_arc(Arc::new(StageSink { stage, seconds: self.seconds.clone() })),
            None => metrics::Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> (StageProbe, StageRecorder) {
        let seconds = Arc::new(Seconds { started: Instant::now(), slots: Mutex::default() });
        (StageProbe { seconds: Some(seconds.clone()) }, StageRecorder { seconds })
    }

    #[test]
    fn the_probe_keeps_the_serving_workers_stages_and_drops_every_other_metric() {
        let (probe, recorder) = probe();
        metrics::with_local_recorder(&recorder, || {
            let stage = |worker: &'static str, stage: &'static str| metrics::histogram!(STAGE_SECONDS, "worker" => worker, "stage" => stage);
            for _ in 0..99 {
                stage("serve", "kafka").record(0.002);
            }
            stage("serve", "kafka").record(0.4);
            stage("serve", "kafka").record(0.4);
            stage("serve", "settle").record(0.010);
            // Another worker's stages and other histograms are not the serving instances'.
            stage("cache-warmer", "wait").record(3.0);
            metrics::histogram!("frontier_handle_duration_seconds", "worker" => "serve").record(3.0);
            // The parts of `handle`: the price store's pool, not another.
            metrics::histogram!(crate::market::TURN_WAIT_SECONDS).record(0.020);
            metrics::histogram!(crate::db::POOL_ACQUIRE_SECONDS, "pool" => "prices").record(0.030);
            metrics::histogram!(crate::db::POOL_ACQUIRE_SECONDS, "pool" => "recommendations").record(3.0);
        });
        let started = probe.seconds.as_ref().unwrap().started - Duration::from_secs(1);
        let [kafka, wait, handle, deliver, settle, compute, turn, acquire, redis] =
            probe.p99_per_bucket(started, Duration::from_secs(5), 1).unwrap();
        assert_eq!(kafka.len(), 1);
        // 2 of 101 values took 400 ms: the p99 is theirs, within two significant figures.
        assert!((kafka[0].unwrap() - 400.0).abs() < 4.0, "{kafka:?}");
        assert!((settle[0].unwrap() - 10.0).abs() < 0.1, "{settle:?}");
        assert!((turn[0].unwrap() - 20.0).abs() < 0.2, "{turn:?}");
        assert!((acquire[0].unwrap() - 30.0).abs() < 0.3, "{acquire:?}");
        assert_eq!(
            [wait, handle, deliver, compute, redis],
            [vec![None], vec![None], vec![None], vec![None], vec![None]]
        );
    }

    #[test]
    fn a_bucket_holds_the_seconds_whose_middle_falls_in_it() {
        let (probe, recorder) = probe();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!(STAGE_SECONDS, "worker" => "serve", "stage" => "wait").record(0.005);
        });
        let started = probe.seconds.as_ref().unwrap().started;
        // Second 0's middle is 0.5 s after the probe started: bucket 0 from `started`, and
        // nothing for a phase that started after it.
        let from_start = probe.p99_per_bucket(started, Duration::from_secs(5), 2).unwrap();
        let wait = &from_start[1];
        assert!(wait[0].is_some_and(|ms| (ms - 5.0).abs() < 0.1) && wait[1].is_none(), "{wait:?}");
        let later = probe.p99_per_bucket(started + Duration::from_secs(1), Duration::from_secs(5), 2).unwrap();
        assert_eq!(later[1], vec![None, None]);
    }
}
