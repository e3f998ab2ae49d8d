//! The scheduling rules, with a deterministic test backend (pure logic; the real model is
//! exercised by `tests/inference_batcher.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::execute::Waiting;
use super::queue::{Dropped, PriorityQueues};
use super::scheduler::due_batch_size;
use super::sizing::{LatencyFit, LatencyModel};
use super::*;
use crate::inference::backend::{BackendError, Embedded, EmbeddingBackend};
use crate::inference::model::LabelDescription;

const AGING: Duration = Duration::from_secs(1);

/// `similar_length_window` 0: batches in strict order.
const STRICT: usize = 0;

fn policies() -> PriorityPolicies {
    PriorityPolicies::default()
}

fn push(queues: &mut PriorityQueues<&'static str>, name: &'static str, priority: Priority, at: Instant) {
    queues.push(name, (1, 0), priority, None, at, &policies()).expect("room in the queue");
}

fn names(batch: Vec<queue::Queued<&'static str>>) -> Vec<&'static str> {
    batch.into_iter().map(|q| q.payload).collect()
}

#[test]
fn critical_jobs_overtake_lower_ones() {
    let (mut queues, t0) = (PriorityQueues::default(), Instant::now());
    push(&mut queues, "low", Priority::Low, t0);
    push(&mut queues, "normal", Priority::Normal, t0);
    push(&mut queues, "high", Priority::High, t0);
    push(&mut queues, "critical", Priority::Critical, t0 + Duration::from_millis(5));
    let order = names(queues.take_batch(4, t0 + Duration::from_millis(10), AGING, STRICT));
    assert_eq!(order, ["critical", "high", "normal", "low"]);
}

#[test]
fn aging_lifts_a_long_waiting_job_above_a_fresh_urgent_one() {
    let (mut queues, t0) = (PriorityQueues::default(), Instant::now());
    push(&mut queues, "old low", Priority::Low, t0);
    let later = t0 + 3 * AGING + Duration::from_millis(1);
    push(&mut queues, "fresh critical", Priority::Critical, later);
    assert_eq!(
        names(queues.take_batch(1, later, AGING, STRICT)),
        ["old low"],
        "three levels of aging make low critical, and older"
    );
    // Before it has aged, the critical job goes first.
    let (mut queues, t0) = (PriorityQueues::default(), Instant::now());
    push(&mut queues, "young low", Priority::Low, t0);
    push(&mut queues, "critical", Priority::Critical, t0 + AGING);
    assert_eq!(names(queues.take_batch(1, t0 + AGING, AGING, STRICT)), ["critical"]);
}

#[test]
fn a_full_queue_refuses_the_next_job_of_that_priority_only() {
    let mut policies = policies();
    policies.low.max_queue_size = 2;
    let (mut queues, now) = (PriorityQueues::default(), Instant::now());
    for name in ["a", "b"] {
        queues.push(name, (1, 0), Priority::Low, None, now, &policies).expect("room");
    }
    let refused = queues.push("c", (1, 0), Priority::Low, None, now, &policies);
    assert!(matches!(refused, Err(("c", Dropped::QueueFull))));
    queues.push("d", (1, 0), Priority::Normal, None, now, &policies).expect("another priority has its own queue");
    assert_eq!(queues.waiting(Priority::Low), 2);
}

#[test]
fn deadlines_and_reject_timeouts_expire_jobs_and_delay_timeouts_demote_them() {
    let mut policies = policies();
    policies.normal.default_timeout = Some(Duration::from_millis(100));
    policies.high.default_timeout = Some(Duration::from_millis(100));
    policies.high.timeout_action = TimeoutAction::Delay;
    policies.low.default_timeout = None;
    let (mut queues, t0) = (PriorityQueues::default(), Instant::now());
    queues.push("deadline", (1, 0), Priority::Critical, Some(t0 + Duration::from_millis(50)), t0, &policies).unwrap();
    queues.push("timeout", (1, 0), Priority::Normal, None, t0, &policies).unwrap();
    queues.push("delayed", (1, 0), Priority::High, None, t0, &policies).unwrap();
    queues.push("low", (1, 0), Priority::Low, None, t0 + Duration::from_millis(1), &policies).unwrap();

    let expired = queues.expire(t0 + Duration::from_millis(60), &policies);
    assert_eq!(expired.into_iter().map(|q| q.payload).collect::<Vec<_>>(), ["deadline"]);
    let expired = queues.expire(t0 + Duration::from_millis(150), &policies);
    assert_eq!(expired.into_iter().map(|q| q.payload).collect::<Vec<_>>(), ["timeout"]);
    // The high job timed out with `delay`: it is now normal, behind nothing but still ahead of low.
    assert_eq!(queues.len(), 2);
    assert_eq!(names(queues.take_batch(2, t0 + Duration::from_millis(150), AGING, STRICT)), ["delayed", "low"]);
}

#[test]
fn a_batch_stops_at_max_inputs_and_an_oversized_job_runs_alone() {
    let (mut queues, now) = (PriorityQueues::default(), Instant::now());
    queues.push("three", (3, 0), Priority::Normal, None, now, &policies()).unwrap();
    queues.push("four", (4, 0), Priority::Normal, None, now, &policies()).unwrap();
    queues.push("one", (1, 0), Priority::Normal, None, now, &policies()).unwrap();
    assert_eq!(
        names(queues.take_batch(6, now, AGING, STRICT)),
        ["three"],
        "four does not fit and one may not overtake it"
    );
    assert_eq!(names(queues.take_batch(6, now, AGING, STRICT)), ["four", "one"]);
    queues.push("huge", (100, 0), Priority::Normal, None, now, &policies()).unwrap();
    assert_eq!(names(queues.take_batch(6, now, AGING, STRICT)), ["huge"]);
    assert!(queues.is_empty());
    assert_eq!(queues.inputs(), 0);
}

/// Queues a one-input job whose text is `length` bytes long.
fn push_sized(queues: &mut PriorityQueues<&'static str>, name: &'static str, priority: Priority, length: usize) {
    queues.push(name, (1, length), priority, None, Instant::now(), &policies()).expect("room in the queue");
}

fn sorted(mut names: Vec<&'static str>) -> Vec<&'static str> {
    names.sort_unstable();
    names
}

#[test]
fn under_a_backlog_a_batch_takes_the_oldest_job_and_others_of_its_length() {
    let mut queues = PriorityQueues::default();
    for (name, length) in
        [("a50", 50), ("b10", 10), ("c90", 90), ("d52", 52), ("e11", 11), ("f48", 48), ("g91", 91), ("h12", 12)]
    {
        push_sized(&mut queues, name, Priority::Normal, length);
    }
    let now = Instant::now();
    assert_eq!(sorted(names(queues.take_batch(3, now, AGING, 8))), ["a50", "d52", "f48"]);
    assert_eq!(sorted(names(queues.take_batch(3, now, AGING, 8))), ["b10", "e11", "h12"]);
    assert_eq!(sorted(names(queues.take_batch(3, now, AGING, 8))), ["c90", "g91"]);
    assert!(queues.is_empty());
}

#[test]
fn grouping_by_length_never_lets_a_lower_priority_job_overtake() {
    let mut queues = PriorityQueues::default();
    push_sized(&mut queues, "normal 90 (oldest normal)", Priority::Normal, 90);
    push_sized(&mut queues, "normal 10", Priority::Normal, 10);
    push_sized(&mut queues, "normal 91", Priority::Normal, 91);
    push_sized(&mut queues, "high 10", Priority::High, 10);
    push_sized(&mut queues, "low 10", Priority::Low, 10);
    let batch = names(queues.take_batch(3, Instant::now(), AGING, 8));
    assert_eq!(sorted(batch), ["high 10", "normal 90 (oldest normal)", "normal 91"]);
}

#[test]
fn grouping_by_length_only_looks_as_far_as_its_window() {
    let mut queues = PriorityQueues::default();
    for (name, length) in [("a50", 50), ("b10", 10), ("c11", 11), ("d49", 49)] {
        push_sized(&mut queues, name, Priority::Normal, length);
    }
    // A window of 3 sees a50, b10 and c11: d49 is out of reach.
    assert_eq!(sorted(names(queues.take_batch(2, Instant::now(), AGING, 3))), ["a50", "c11"]);
}

#[test]
fn the_latency_fit_recovers_a_linear_curve() {
    let mut model = LatencyModel::default();
    assert!(model.fit().is_none());
    for size in [1usize, 8, 16, 32, 64, 4, 48] {
        model.observe(size, Duration::from_secs_f64((5.0 + 1.5 * size as f64) / 1000.0));
    }
    let fit = model.fit().expect("a fit after observations");
    assert!((fit.fixed_ms - 5.0).abs() < 1e-6 && (fit.per_input_ms - 1.5).abs() < 1e-6, "{fit:?}");
    assert_eq!(fit.largest_within(Duration::from_millis(53), 64), 32);
    assert_eq!(fit.largest_within(Duration::from_secs(1), 64), 64, "capped at the maximum");
    assert_eq!(fit.largest_within(Duration::from_millis(1), 64), 1, "the most urgent job still goes");
}

#[test]
fn one_batch_size_seen_predicts_latency_proportional_to_size() {
    let mut model = LatencyModel::default();
    model.observe(10, Duration::from_millis(20));
    let fit = model.fit().expect("fit");
    assert_eq!(fit.predict(20), Duration::from_millis(40));
}

fn waiting(inputs: usize, priority: Priority) -> (Waiting, oneshot::Receiver<JobOutcome>) {
    let (reply, answer) = oneshot::channel();
    let request = JobRequest {
        id: "job".into(),
        model: "m".into(),
        task: Task::Embed,
        inputs: vec!["x".into(); inputs],
        priority,
        issued_at: SystemTime::now(),
        deadline: None,
    };
    (Waiting { request, reply }, answer)
}

#[test]
fn adaptive_sizing_sends_the_largest_batch_that_meets_the_most_urgent_deadline() {
    let settings =
        BatchingSettings { max_batch_size: 64, preferred_batch_sizes: vec![], ..BatchingSettings::default() };
    let fit = LatencyFit { fixed_ms: 5.0, per_input_ms: 1.0 };
    let (mut queues, now) = (PriorityQueues::default(), Instant::now());
    let mut answers = Vec::new();
    for _ in 0..40 {
        let (job, answer) = waiting(1, Priority::Normal);
        queues.push(job, (1, 0), Priority::Normal, None, now, &settings.policies).unwrap();
        answers.push(answer);
    }
    // No deadline closer than the default timeouts: wait for the delay to fill a full batch.
    assert_eq!(due_batch_size(&mut queues, &settings, Some(fit), now), None);
    assert_eq!(due_batch_size(&mut queues, &settings, Some(fit), now + settings.max_queue_delay), Some(64));
    // One job due in 25 ms: 5 + 20 * 1 ms fits, so a batch of 20 goes now.
    let (job, _answer) = waiting(1, Priority::Critical);
    queues
        .push(job, (1, 0), Priority::Critical, Some(now + Duration::from_millis(25)), now, &settings.policies)
        .unwrap();
    assert_eq!(due_batch_size(&mut queues, &settings, Some(fit), now), Some(20));
    // Without adaptive sizing (no fit), the size is the maximum.
    assert_eq!(due_batch_size(&mut queues, &settings, None, now + settings.max_queue_delay), Some(64));
}

/// A deterministic backend: each text's vector depends only on the text; records the batches.
struct RecordingBackend {
    batches: Mutex<Vec<Vec<String>>>,
    per_batch: Duration,
}

impl RecordingBackend {
    fn new(per_batch: Duration) -> Arc<RecordingBackend> {
        Arc::new(RecordingBackend { batches: Mutex::new(Vec::new()), per_batch })
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().unwrap().clone()
    }
}

fn vector_of(text: &str) -> Vec<f32> {
    let sum: u32 = text.bytes().map(u32::from).sum();
    let raw = [1.0 + (sum % 7) as f32, (text.len() % 5) as f32, (sum % 3) as f32];
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    raw.iter().map(|x| x / norm).collect()
}

impl EmbeddingBackend for RecordingBackend {
    fn id(&self) -> &str {
        "recording"
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Embedded, BackendError>> {
        Box::pin(async move {
            self.batches.lock().unwrap().push(texts.clone());
            tokio::time::sleep(self.per_batch).await;
            Ok(Embedded { vectors: texts.iter().map(|t| vector_of(t)).collect(), instance: "recording-1".into() })
        })
    }
}

fn start(backend: Arc<RecordingBackend>, settings: BatchingSettings) -> Arc<InferenceBatcher> {
    let queue = ModelQueue { name: "m".into(), backend, settings };
    Arc::new(InferenceBatcher::start(vec![queue], CancellationToken::new()).expect("valid settings"))
}

fn request(id: &str, inputs: &[&str], priority: Priority) -> JobRequest {
    JobRequest {
        id: id.into(),
        model: "m".into(),
        task: Task::Embed,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        priority,
        issued_at: SystemTime::now(),
        deadline: None,
    }
}

async fn submit_all(batcher: &Arc<InferenceBatcher>, requests: Vec<JobRequest>) -> Vec<JobOutcome> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.submit(request).await.expect("answered") })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    outcomes
}

#[tokio::test]
async fn concurrent_jobs_within_the_delay_form_one_batch() {
    let backend = RecordingBackend::new(Duration::from_millis(5));
    let settings = BatchingSettings {
        max_queue_delay: Duration::from_millis(50),
        preferred_batch_sizes: vec![],
        ..Default::default()
    };
    let batcher = start(backend.clone(), settings);
    let texts: Vec<String> = (0..10).map(|i| format!("text {i}")).collect();
    let requests = texts.iter().enumerate().map(|(i, t)| request(&format!("j{i}"), &[t], Priority::Normal)).collect();
    let outcomes = submit_all(&batcher, requests).await;
    assert!(outcomes.iter().all(|o| o.status == JobStatus::Ok && o.batch_size == 10), "{outcomes:?}");
    assert_eq!(backend.batches().len(), 1);
    for (outcome, text) in outcomes.iter().zip(&texts) {
        assert_eq!(outcome.output, Some(JobOutput::Embeddings(vec![vector_of(text)])), "results fan back to their job");
        assert_eq!(outcome.instance, "recording-1");
    }
}

/// Batches the backend saw after `blocker` (the first), each sorted, for jobs queued while it ran.
async fn batches_behind_a_running_batch(settings: BatchingSettings, texts: &[&str]) -> Vec<Vec<String>> {
    let backend = RecordingBackend::new(Duration::from_millis(100));
    let batcher = start(backend.clone(), settings);
    let first = batcher.clone();
    let blocker = tokio::spawn(async move { first.submit(request("blocker", &["blocker"], Priority::Normal)).await });
    while backend.batches().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let requests = texts.iter().enumerate().map(|(i, t)| request(&format!("j{i}"), &[t], Priority::Normal)).collect();
    submit_all(&batcher, requests).await;
    blocker.await.expect("task").expect("answered");
    let mut batches = backend.batches().split_off(1);
    for batch in &mut batches {
        batch.sort();
    }
    batches
}

#[tokio::test]
async fn jobs_queued_behind_a_running_batch_are_batched_with_others_of_their_length() {
    let long = ["long headline a", "long headline b", "long headline c"];
    let texts = [long[0], "s1", long[1], "s2", long[2], "s3"];
    let grouped = BatchingSettings { max_batch_size: 2, preferred_batch_sizes: vec![], ..Default::default() };
    let batches = batches_behind_a_running_batch(grouped.clone(), &texts).await;
    assert_eq!(batches, [vec![long[0], long[1]], vec!["s1", "s2"], vec![long[2], "s3"]]);

    let strict = BatchingSettings { similar_length_window: 0, ..grouped };
    let batches = batches_behind_a_running_batch(strict, &texts).await;
    assert_eq!(batches, [vec![long[0], "s1"], vec![long[1], "s2"], vec![long[2], "s3"]]);
}

#[tokio::test]
async fn identical_texts_in_a_batch_are_embedded_once() {
    let backend = RecordingBackend::new(Duration::from_millis(1));
    let batcher =
        start(backend.clone(), BatchingSettings { max_queue_delay: Duration::from_millis(50), ..Default::default() });
    let requests = vec![
        request("a", &["same", "other"], Priority::Normal),
        request("b", &["same"], Priority::Normal),
        request("c", &["same", "same"], Priority::High),
    ];
    let outcomes = submit_all(&batcher, requests).await;
    let mut sent = backend.batches().concat();
    sent.sort();
    assert_eq!(sent, ["other", "same"]);
    assert_eq!(outcomes[2].output, Some(JobOutput::Embeddings(vec![vector_of("same"), vector_of("same")])));
    assert!(outcomes.iter().all(|o| o.batch_size == 5));
}

#[tokio::test]
async fn a_preferred_size_goes_out_without_waiting_for_the_delay() {
    let backend = RecordingBackend::new(Duration::from_millis(1));
    let settings = BatchingSettings {
        max_queue_delay: Duration::from_secs(30),
        preferred_batch_sizes: vec![4],
        ..Default::default()
    };
    let batcher = start(backend.clone(), settings);
    let started = Instant::now();
    let requests = (0..4).map(|i| request(&format!("j{i}"), &[&format!("t{i}")], Priority::Low)).collect();
    let outcomes =
        tokio::time::timeout(Duration::from_secs(5), submit_all(&batcher, requests)).await.expect("no 30 s wait");
    assert!(outcomes.iter().all(|o| o.status == JobStatus::Ok));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn settings_changed_while_running_take_effect() {
    let backend = RecordingBackend::new(Duration::from_millis(1));
    let batcher =
        start(backend.clone(), BatchingSettings { max_queue_delay: Duration::from_millis(30), ..Default::default() });
    let mut watched = batcher.watch_settings("m").expect("model");
    let changed =
        BatchingSettings { max_batch_size: 2, preferred_batch_sizes: vec![], ..batcher.settings("m").unwrap() };
    batcher.update_settings("m", changed.clone()).expect("valid");
    assert!(watched.has_changed().unwrap());
    assert_eq!(*watched.borrow_and_update(), changed);
    let requests = (0..6).map(|i| request(&format!("j{i}"), &[&format!("t{i}")], Priority::Normal)).collect();
    submit_all(&batcher, requests).await;
    assert!(backend.batches().iter().all(|batch| batch.len() <= 2), "{:?}", backend.batches());
    let invalid = BatchingSettings { max_batch_size: 0, ..Default::default() };
    assert!(matches!(batcher.update_settings("m", invalid), Err(BatcherError::InvalidSettings { .. })));
}

#[tokio::test]
async fn a_job_past_its_deadline_is_answered_expired_and_never_run() {
    let backend = RecordingBackend::new(Duration::from_millis(1));
    let batcher = start(backend.clone(), BatchingSettings::default());
    let mut late = request("late", &["too late"], Priority::Critical);
    late.deadline = Some(SystemTime::now() - Duration::from_millis(1));
    let outcome = batcher.submit(late).await.expect("answered");
    assert_eq!(outcome.status, JobStatus::Expired);
    assert_eq!((outcome.batch_size, outcome.instance.as_str()), (0, ""));
    assert!(backend.batches().is_empty());
}

#[tokio::test]
async fn a_job_arriving_at_a_full_queue_is_rejected() {
    // A slow backend keeps the first batch busy while the queue fills behind it.
    let backend = RecordingBackend::new(Duration::from_millis(300));
    let mut settings = BatchingSettings { max_batch_size: 1, preferred_batch_sizes: vec![], ..Default::default() };
    settings.policies.low.max_queue_size = 2;
    let batcher = start(backend.clone(), settings);
    let requests = (0..6).map(|i| request(&format!("j{i}"), &[&format!("t{i}")], Priority::Low)).collect();
    let outcomes = submit_all(&batcher, requests).await;
    let rejected = outcomes.iter().filter(|o| o.status == JobStatus::Rejected).count();
    assert!(rejected >= 2, "{outcomes:?}");
    assert!(
        outcomes.iter().filter(|o| o.status == JobStatus::Rejected).all(|o| o
            .error
            .as_deref()
            .unwrap()
            .contains("full"))
    );
}

#[tokio::test]
async fn label_descriptions_are_embedded_once_per_label_set() {
    let backend = RecordingBackend::new(Duration::from_millis(1));
    let batcher =
        start(backend.clone(), BatchingSettings { max_queue_delay: Duration::from_millis(1), ..Default::default() });
    let labels = Arc::new(
        LabelSet::new(vec![LabelDescription::new("up", "prices rise"), LabelDescription::new("down", "prices fall")])
            .unwrap(),
    );
    for id in ["first", "second"] {
        let mut job = request(id, &["stocks rally"], Priority::Normal);
        job.task = Task::Classify(labels.clone());
        let outcome = batcher.submit(job).await.expect("answered");
        let Some(JobOutput::Classifications(classes)) = outcome.output else { panic!("{outcome:?}") };
        assert_eq!(classes.len(), 1);
        assert!((classes[0].scores.iter().map(|s| s.score).sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let batches = backend.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].len(), 3, "the first batch embeds the text and both descriptions");
    assert_eq!(batches[1], ["stocks rally"], "the second finds the labels cached");
}

#[tokio::test]
async fn a_job_larger_than_a_batch_runs_in_chunks_that_let_an_urgent_job_through() {
    let backend = RecordingBackend::new(Duration::from_millis(50));
    let settings = BatchingSettings { max_batch_size: 4, preferred_batch_sizes: vec![], ..Default::default() };
    let batcher = start(backend.clone(), settings);
    let texts: Vec<String> = (0..20).map(|i| format!("big {i}")).collect();
    let big = {
        let (batcher, texts) = (batcher.clone(), texts.clone());
        tokio::spawn(async move {
            let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
            batcher.submit(request("big", &inputs, Priority::Low)).await
        })
    };
    while backend.batches().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let urgent = batcher.submit(request("urgent", &["urgent"], Priority::Critical)).await.expect("answered");
    let big = big.await.expect("task").expect("answered");

    let batches = backend.batches();
    assert!(batches.iter().all(|batch| batch.len() <= 4), "no batch over max_batch_size: {batches:?}");
    let urgent_at = batches.iter().position(|b| b.iter().any(|t| t == "urgent")).expect("urgent ran");
    let last_big = batches.iter().rposition(|b| b.iter().any(|t| t.starts_with("big"))).expect("big ran");
    assert!(urgent_at < last_big, "the urgent job ran before the big job's last chunk: {batches:?}");
    assert_eq!(urgent.status, JobStatus::Ok);
    assert_eq!(big.status, JobStatus::Ok);
    let expected: Vec<Vec<f32>> = texts.iter().map(|t| vector_of(t)).collect();
    assert_eq!(big.output, Some(JobOutput::Embeddings(expected)), "chunks join back in input order");
}

#[test]
fn a_failed_chunk_fails_the_whole_job() {
    let ok = JobOutcome {
        status: JobStatus::Ok,
        output: Some(JobOutput::Embeddings(vec![vec![1.0]])),
        error: None,
        instance: "i".into(),
        batch_size: 4,
        queue_time_ms: 5.0,
        inference_time_ms: 2.0,
    };
    let expired = JobOutcome::not_run(JobStatus::Expired, "deadline passed", SystemTime::now());
    let merged = JobOutcome::merge(vec![ok.clone(), expired]);
    assert_eq!(merged.status, JobStatus::Expired);
    assert_eq!(merged.output, None);
    assert_eq!(merged.inference_time_ms, 2.0);
    let both = JobOutcome::merge(vec![ok.clone(), ok]);
    assert_eq!(both.output, Some(JobOutput::Embeddings(vec![vec![1.0], vec![1.0]])));
}
