//! One model's scheduling loop: takes submissions into the priority queues, expires what waited
//! too long, and sends a batch whenever one is due and the backend has room for it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::execute::{BatchReport, LabelCache, Waiting, run_batch};
use super::job::JobOutcome;
use super::metric;
use super::queue::{Dropped, PriorityQueues};
use super::settings::BatchingSettings;
use super::sizing::{LatencyFit, LatencyModel};
use crate::inference::backend::EmbeddingBackend;
use crate::records::JobStatus;

/// Everything one model's loop owns.
pub(super) struct ModelScheduler {
    pub model: Arc<str>,
    pub backend: Arc<dyn EmbeddingBackend>,
    pub settings: watch::Receiver<BatchingSettings>,
    pub submissions: mpsc::UnboundedReceiver<Waiting>,
    pub fit: watch::Sender<Option<LatencyFit>>,
    pub token: CancellationToken,
}

/// Converts a wall-clock deadline into the monotonic clock the queues use.
fn to_instant(deadline: SystemTime, now: Instant, wall_now: SystemTime) -> Instant {
    match deadline.duration_since(wall_now) {
        Ok(ahead) => now + ahead,
        // Already past: expires at the next look.
        Err(_) => now,
    }
}

impl ModelScheduler {
    /// Runs until cancelled, or until every submitter is gone and the queues are drained.
    /// Jobs still queued when it is cancelled are dropped unanswered: their handlers fail
    /// transiently and the bus redelivers them (nothing is committed for them).
    pub async fn run(mut self) {
        let mut settings = self.settings.borrow_and_update().clone();
        let mut queues: PriorityQueues<Waiting> = PriorityQueues::default();
        let mut latency = LatencyModel::default();
        let labels = Arc::new(LabelCache::default());
        let mut in_flight: JoinSet<BatchReport> = JoinSet::new();
        let mut open = true;
        let depth = ::metrics::gauge!(metric::QUEUE_DEPTH, "model" => self.model.to_string());
        let max_batch = ::metrics::gauge!(metric::MAX_BATCH_SIZE, "model" => self.model.to_string());
        max_batch.set(settings.max_batch_size as f64);

        loop {
            let now = Instant::now();
            for expired in queues.expire(now, &settings.policies) {
                let issued_at = expired.payload.request.issued_at;
                expired.payload.answer(JobOutcome::not_run(
                    JobStatus::Expired,
                    "waited past its deadline or its priority's queue timeout; not run",
                    issued_at,
                ));
            }
            let fit = if settings.adaptive { latency.fit() } else { None };
            while in_flight.len() < settings.max_concurrent_batches {
                let Some(size) = due_batch_size(&mut queues, &settings, fit, now) else {
                    break;
                };
                let batch: Vec<Waiting> = queues
                    .take_batch(size, now, settings.aging_interval, settings.similar_length_window)
                    .into_iter()
                    .map(|q| q.payload)
                    .collect();
                debug!(model = %self.model, jobs = batch.len(), size, "sending a batch");
                in_flight.spawn(run_batch(self.model.clone(), self.backend.clone(), labels.clone(), batch));
            }
            depth.set(queues.len() as f64);
            if !open && queues.is_empty() && in_flight.is_empty() {
                return;
            }

            let wake = next_wake(&mut queues, &settings, fit, in_flight.len() < settings.max_concurrent_batches);
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(
                wake.unwrap_or(now + Duration::from_secs(3600)),
            ));
            tokio::select! {
                () = self.token.cancelled() => return,
                Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Ok(report) = finished
                        && report.succeeded
                        && report.texts > 0
                    {
                        latency.observe(report.texts, report.latency);
                        self.fit.send_replace(latency.fit());
                    }
                }
                changed = self.settings.changed() => {
                    if changed.is_ok() {
                        settings = self.settings.borrow_and_update().clone();
                        max_batch.set(settings.max_batch_size as f64);
                        debug!(model = %self.model, ?settings, "batch settings changed");
                    }
                }
                submission = self.submissions.recv(), if open => match submission {
                    Some(first) => {
                        // Take everything already waiting in the channel before deciding, so
                        // a burst forms one batch instead of one per wake-up.
                        let now = Instant::now();
                        let wall_now = SystemTime::now();
                        let mut next = Some(first);
                        while let Some(job) = next {
                            enqueue(&mut queues, job, &settings, now, wall_now);
                            next = self.submissions.try_recv().ok();
                        }
                    }
                    None => open = false,
                },
                () = sleep, if wake.is_some() => {}
            }
        }
    }
}

fn enqueue(
    queues: &mut PriorityQueues<Waiting>,
    job: Waiting,
    settings: &BatchingSettings,
    now: Instant,
    wall_now: SystemTime,
) {
    let (inputs, priority) = (job.request.inputs.len(), job.request.priority);
    let length = job.request.inputs.iter().map(String::len).max().unwrap_or(0);
    let deadline = job.request.deadline.map(|deadline| to_instant(deadline, now, wall_now));
    if let Err((job, Dropped::QueueFull | Dropped::Expired)) =
        queues.push(job, (inputs, length), priority, deadline, now, &settings.policies)
    {
        let issued_at = job.request.issued_at;
        let limit = settings.policies.of(priority).max_queue_size;
        job.answer(JobOutcome::not_run(
            JobStatus::Rejected,
            format!("the {} queue is full ({limit} jobs waiting)", priority.as_str()),
            issued_at,
        ));
    }
}

/// The batch size to send now, or `None` to keep waiting. A batch is due when the queue holds
/// the target size (`max_batch_size`, or less when the latency fit says a full batch would
/// miss the most urgent deadline), a preferred size, when the oldest job has waited
/// `max_queue_delay`, or when waiting any longer would make the most urgent job late.
pub(super) fn due_batch_size(
    queues: &mut PriorityQueues<Waiting>,
    settings: &BatchingSettings,
    fit: Option<LatencyFit>,
    now: Instant,
) -> Option<usize> {
    if queues.is_empty() {
        return None;
    }
    let queued = queues.inputs();
    let urgent = queues.most_urgent();
    let target = match (fit, urgent) {
        (Some(fit), Some(deadline)) => {
            fit.largest_within(deadline.saturating_duration_since(now), settings.max_batch_size)
        }
        _ => settings.max_batch_size,
    };
    if queued >= target {
        return Some(target);
    }
    if let Some(preferred) =
        settings.preferred_batch_sizes.iter().copied().filter(|&p| p <= queued && p <= target).max()
    {
        return Some(preferred);
    }
    if queues.oldest().is_some_and(|oldest| now.saturating_duration_since(oldest) >= settings.max_queue_delay) {
        return Some(target);
    }
    if let (Some(fit), Some(deadline)) = (fit, urgent)
        && now + fit.predict(queued) + settings.max_queue_delay >= deadline
    {
        return Some(target);
    }
    None
}

/// When the loop must look again without news: the oldest job's delay running out, the
/// most urgent job's last moment to start, or the next timeout.
fn next_wake(
    queues: &mut PriorityQueues<Waiting>,
    settings: &BatchingSettings,
    fit: Option<LatencyFit>,
    room_for_a_batch: bool,
) -> Option<Instant> {
    let mut wake = queues.next_timeout();
    if room_for_a_batch {
        let delay_out = queues.oldest().map(|oldest| oldest + settings.max_queue_delay);
        let last_start = match (fit, queues.most_urgent()) {
            (Some(fit), Some(deadline)) => {
                deadline.checked_sub(fit.predict(queues.inputs()) + settings.max_queue_delay)
            }
            _ => None,
        };
        wake = wake.into_iter().chain(delay_out).chain(last_start).min();
    }
    wake
}
