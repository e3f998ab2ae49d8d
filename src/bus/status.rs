//! Every worker's self-report: a `WorkerStatus` (`schemas/worker_status.avsc`) on
//! `bus.status_topic` every `bus.status_interval` — its consumer group's lag on the partitions it
//! owns, its memory, CPU and file-descriptor use, the share of its time it spent handling
//! messages and the messages it dead-lettered — which the SLA monitor turns into consumer-lag,
//! resource-exhaustion and dead-letter alerts, and the autoscaler into true rates per instance.
//! Written once here, so every worker reports.
//!
//! Figures come from Linux's `/proc` and cgroup v2 files; on a platform without them the field
//! is null rather than a guess.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use super::codec::{KnownSchema, SchemaCatalog};
use super::worker::Outbound;
use crate::records::WorkerStatus;

/// A consumer group's lag on this instance's partitions, updated from librdkafka's statistics
/// (`statistics.interval.ms`); negative until the first statistics arrive.
#[derive(Debug, Clone)]
pub struct LagReading(Arc<AtomicI64>);

impl Default for LagReading {
    fn default() -> Self {
        LagReading(Arc::new(AtomicI64::new(-1)))
    }
}

impl LagReading {
    pub(super) fn set(&self, lag: i64) {
        self.0.store(lag, Ordering::Relaxed);
    }

    /// Messages behind, if statistics have arrived.
    pub fn get(&self) -> Option<i64> {
        let lag = self.0.load(Ordering::Relaxed);
        (lag >= 0).then_some(lag)
    }
}

/// Messages dead-lettered since the previous status report: counted where a dead letter is
/// sent, read (and reset) by each report.
#[derive(Debug, Default)]
pub struct DeadLetterCount(AtomicU64);

impl DeadLetterCount {
    pub(super) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// How much of the time a worker spends handling messages: busy while at least one message is
/// in its `handle`, measured by the loop and read (and reset) by each status report.
#[derive(Debug, Default)]
pub struct BusyClock {
    state: std::sync::Mutex<BusyState>,
}

#[derive(Debug, Default)]
struct BusyState {
    in_flight: u32,
    /// When the current busy stretch began (`in_flight` > 0).
    since: Option<Instant>,
    /// Busy time since the last report, closed stretches only.
    busy: std::time::Duration,
}

impl BusyClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, BusyState> {
        // Counters only: whatever a panicking holder left is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks one message as being handled until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>) -> BusyGuard {
        self.start(Instant::now());
        BusyGuard(self.clone())
    }

    /// Busy time since the previous call (an open stretch counts up to now).
    pub fn take(&self) -> std::time::Duration {
        self.take_at(Instant::now())
    }

    fn start(&self, now: Instant) {
        let mut state = self.lock();
        if state.in_flight == 0 {
            state.since = Some(now);
        }
        state.in_flight += 1;
    }

    fn finish(&self, now: Instant) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0
            && let Some(since) = state.since.take()
        {
            state.busy += now.saturating_duration_since(since);
        }
    }

    fn take_at(&self, now: Instant) -> std::time::Duration {
        let mut state = self.lock();
        let open = state.since.map(|since| now.saturating_duration_since(since)).unwrap_or_default();
        if state.since.is_some() {
            state.since = Some(now);
        }
        std::mem::take(&mut state.busy) + open
    }
}

/// One message in a worker's `handle`; leaving it may end a busy stretch.
#[derive(Debug)]
pub struct BusyGuard(Arc<BusyClock>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.finish(Instant::now());
    }
}

/// Builds one worker's status records.
#[derive(Debug)]
pub struct StatusReporter {
    schema: Arc<KnownSchema>,
    topic: Arc<str>,
    service: &'static str,
    instance: String,
    group: String,
    lag: LagReading,
    busy: Arc<BusyClock>,
    dead_letters: Arc<DeadLetterCount>,
    /// CPU time used and when, at the previous report.
    last_cpu: Option<(u64, Instant)>,
    /// When the previous report was made (the busy share's denominator).
    last_report: Instant,
}

impl StatusReporter {
    /// A reporter for worker `service` in `group`; `None` if the catalog has no
    /// `worker_status.avsc` (an older schema folder): reporting is then off.
    pub fn new(
        catalog: &SchemaCatalog,
        topic: &str,
        service: &'static str,
        group: &str,
        lag: LagReading,
        busy: Arc<BusyClock>,
        dead_letters: Arc<DeadLetterCount>,
    ) -> Option<Self> {
        let schema = catalog.schema_of::<WorkerStatus>().ok()?;
        Some(StatusReporter {
            schema,
            topic: Arc::from(topic),
            service,
            instance: crate::telemetry::instance_id(),
            group: group.to_string(),
            lag,
            busy,
            dead_letters,
            last_cpu: None,
            last_report: Instant::now(),
        })
    }

    /// This process's id in reports: host and pid.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The next status record, keyed by consumer group so one SLA monitor sees a whole group;
    /// `None` only if encoding fails (a schema that does not fit the record: logged).
    pub fn next_record(&mut self) -> Option<Outbound> {
        let cpu_ns = cpu_time_ns();
        let now = Instant::now();
        let cpu_utilization = match (cpu_ns, self.last_cpu) {
            (Some(used), Some((before, at))) => {
                let wall_ns = now.duration_since(at).as_nanos() as f64;
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                (wall_ns > 0.0).then(|| (used.saturating_sub(before) as f64 / wall_ns / cores).min(1.0))
            }
            _ => None,
        };
        if let Some(used) = cpu_ns {
            self.last_cpu = Some((used, now));
        }
        let wall = now.duration_since(self.last_report).as_secs_f64();
        let busy_share = (wall > 0.0).then(|| (self.busy.take().as_secs_f64() / wall).min(1.0));
        self.last_report = now;
        let (open_fds, max_fds) = descriptors();
        let record = WorkerStatus {
            service: self.service.to_owned(),
            instance: self.instance.clone(),
            consumer_group: Some(self.group.clone()),
            consumer_lag: self.lag.get(),
            rss_bytes: resident_bytes(),
            memory_limit_bytes: memory_limit_bytes(),
            cpu_utilization,
            open_fds,
            max_fds,
            occurred_at: crate::clock::now_millis(),
            busy_share,
            dead_lettered: Some(i64::try_from(self.dead_letters.take()).unwrap_or(i64::MAX)),
        };
        match SchemaCatalog::encode(&self.schema, &record) {
            Ok(payload) => Some(Outbound::new(self.topic.clone(), Some(self.group.as_bytes().to_vec()), payload)),
            Err(error) => {
                tracing::error!(%error, "cannot encode a worker status; reporting skipped");
                None
            }
        }
    }
}

/// CPU time the process has used, nanoseconds (`/proc/self/schedstat`: exact, no clock-tick
/// conversion).
fn cpu_time_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Resident set size from `/proc/self/status` (`VmRSS: 1234 kB`).
fn resident_bytes() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The cgroup v2 memory limit, else the machine's memory (`max` means no cgroup limit).
fn memory_limit_bytes() -> Option<i64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|text| {
        let path = text.lines().find_map(|line| line.strip_prefix("0::"))?.trim().to_string();
        std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max")).ok()
    });
    if let Some(limit) = cgroup.and_then(|text| text.trim().parse::<i64>().ok()) {
        return Some(limit);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Open descriptors (`/proc/self/fd` entries) and the soft limit (`/proc/self/limits`).
fn descriptors() -> (Option<i64>, Option<i64>) {
    let open = std::fs::read_dir("/proc/self/fd").ok().map(|entries| entries.count() as i64);
    let limit = std::fs::read_to_string("/proc/self/limits").ok().and_then(|text| {
        let line = text.lines().find(|line| line.starts_with("Max open files"))?;
        line["Max open files".len()..].split_whitespace().next()?.parse().ok()
    });
    (open, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reports_plausible_resource_figures_on_linux() {
        let rss = resident_bytes().expect("VmRSS on Linux");
        let limit = memory_limit_bytes().expect("a memory limit on Linux");
        assert!(rss > 0 && rss < limit, "rss {rss} limit {limit}");
        let (open, max) = descriptors();
        let (open, max) = (open.expect("fd count"), max.expect("fd limit"));
        assert!(open > 2 && open < max, "open {open} max {max}");
        assert!(cpu_time_ns().expect("schedstat") > 0);
    }
}

#[cfg(test)]
mod busy_tests {
    use std::time::{Duration, Instant};

    use super::BusyClock;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn overlapping_messages_count_their_union_once() {
        let (clock, t) = (BusyClock::default(), Instant::now());
        clock.start(at(t, 0));
        clock.start(at(t, 10));
        clock.finish(at(t, 30));
        clock.finish(at(t, 50));
        clock.start(at(t, 80));
        clock.finish(at(t, 90));
        assert_eq!(clock.take_at(at(t, 100)), Duration::from_millis(60));
        assert_eq!(clock.take_at(at(t, 200)), Duration::ZERO, "taken time is reset");
    }

    #[test]
    fn a_stretch_still_open_at_a_report_is_split_between_reports() {
        let (clock, t) = (BusyClock::default(), Instant::now());
        clock.start(at(t, 0));
        assert_eq!(clock.take_at(at(t, 40)), Duration::from_millis(40));
        clock.finish(at(t, 70));
        assert_eq!(clock.take_at(at(t, 100)), Duration::from_millis(30));
    }
}
