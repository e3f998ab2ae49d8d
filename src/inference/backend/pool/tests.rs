//! The pool against fake instances: picking, retrying, taking out and putting back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use super::*;

/// What a fake instance answers to each batch.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Vectors,
    Unavailable,
    Refused,
    Failed,
}

/// An instance that answers from a script (then `default` forever), optionally holding every
/// batch until released.
struct FakeInstance {
    id: String,
    script: Mutex<VecDeque<Answer>>,
    default: Answer,
    calls: AtomicUsize,
    healthy: AtomicBool,
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl FakeInstance {
    fn new(id: &str, default: Answer) -> Arc<Self> {
        Arc::new(FakeInstance {
            id: id.to_owned(),
            script: Mutex::new(VecDeque::new()),
            default,
            calls: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            gate: None,
        })
    }

    fn gated(id: &str, gate: Arc<tokio::sync::Semaphore>) -> Arc<Self> {
        Arc::new(FakeInstance {
            id: id.to_owned(),
            script: Mutex::new(VecDeque::new()),
            default: Answer::Vectors,
            calls: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            gate: Some(gate),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl EmbeddingBackend for FakeInstance {
    fn id(&self) -> &str {
        &self.id
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Embedded, BackendError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                let _permit = gate.acquire().await.expect("gate stays open");
            }
            let answer = self.script.lock().unwrap().pop_front().unwrap_or(self.default);
            let instance = self.id.clone();
            let reason = "scripted".to_owned();
            match answer {
                Answer::Vectors => Ok(Embedded { vectors: texts.iter().map(|_| vec![1.0, 0.0]).collect(), instance }),
                Answer::Unavailable => Err(BackendError::Unavailable { instance, reason }),
                Answer::Refused => Err(BackendError::Refused { instance, reason }),
                Answer::Failed => Err(BackendError::Failed { instance, reason }),
            }
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            if self.healthy.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(BackendError::Unavailable { instance: self.id.clone(), reason: "down".to_owned() })
            }
        })
    }
}

fn options() -> PoolOptions {
    PoolOptions {
        breaker: BreakerSettings {
            consecutive_failures: 2,
            error_rate_threshold: 0.5,
            error_rate_window: Duration::from_secs(10),
            error_rate_min_requests: 100,
            cool_down: Duration::from_secs(5),
        },
        max_attempts: 3,
        health_interval: Duration::from_secs(1),
        health_timeout: Duration::from_secs(1),
    }
}

fn pool(members: &[&Arc<FakeInstance>]) -> InstancePool {
    let members = members.iter().map(|member| Arc::clone(member) as Arc<dyn EmbeddingBackend>).collect();
    InstancePool::new("pool", members, options()).expect("valid pool")
}

fn texts(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("text {index}")).collect()
}

fn state_of(pool: &InstancePool, instance: &str) -> BreakerState {
    pool.status(instance).expect("member").state
}

#[tokio::test]
async fn a_batch_that_fails_on_one_instance_is_answered_by_another() {
    let dead = FakeInstance::new("dead", Answer::Unavailable);
    let alive = FakeInstance::new("alive", Answer::Vectors);
    let pool = pool(&[&dead, &alive]);
    for _ in 0..10 {
        let embedded = pool.embed(texts(3)).await.expect("retried on the live instance");
        assert_eq!(embedded.instance, "alive");
        assert_eq!(embedded.vectors.len(), 3);
    }
}

#[tokio::test]
async fn a_refused_batch_is_not_retried() {
    let refusing = FakeInstance::new("a", Answer::Refused);
    let other = FakeInstance::new("b", Answer::Refused);
    let pool = pool(&[&refusing, &other]);
    let error = pool.embed(texts(1)).await.expect_err("refused");
    assert!(matches!(error, BackendError::Refused { .. }), "{error}");
    assert_eq!(refusing.calls() + other.calls(), 1);
    assert_eq!(state_of(&pool, "a"), BreakerState::Closed);
    assert_eq!(state_of(&pool, "b"), BreakerState::Closed);
}

#[tokio::test]
async fn batches_go_to_the_instance_with_fewer_outstanding_batches() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let busy = FakeInstance::gated("busy", Arc::clone(&gate));
    let idle = FakeInstance::new("idle", Answer::Vectors);
    let pool = Arc::new(pool(&[&busy, &idle]));
    // Occupy `busy` with a batch that waits on the gate. Until it does, the draw may send
    // batches there; keep sending until one is stuck on `busy`.
    let mut stuck = None;
    for _ in 0..64 {
        let pool = Arc::clone(&pool);
        let task = tokio::spawn(async move { pool.embed(texts(1)).await });
        tokio::task::yield_now().await;
        if busy.calls() > 0 {
            stuck = Some(task);
            break;
        }
        assert_eq!(task.await.expect("task").expect("embedded").instance, "idle");
    }
    let stuck = stuck.expect("the draw picked `busy` at least once in 64 batches");
    assert_eq!(pool.status("busy").expect("member").outstanding, 1);
    for _ in 0..20 {
        assert_eq!(pool.embed(texts(1)).await.expect("embedded").instance, "idle");
    }
    gate.add_permits(1);
    assert_eq!(stuck.await.expect("task").expect("embedded").instance, "busy");
    assert_eq!(pool.status("busy").expect("member").outstanding, 0);
}

#[tokio::test]
async fn an_instance_that_keeps_failing_is_taken_out() {
    let dead = FakeInstance::new("dead", Answer::Unavailable);
    let alive = FakeInstance::new("alive", Answer::Vectors);
    let pool = pool(&[&dead, &alive]);
    for _ in 0..50 {
        pool.embed(texts(1)).await.expect("embedded");
    }
    assert_eq!(state_of(&pool, "dead"), BreakerState::Open);
    assert_eq!(dead.calls(), 2, "two failures open the breaker; then no batch goes there");
}

#[tokio::test]
async fn an_open_instance_is_probed_after_the_cool_down_and_closed_when_it_answers() {
    let flaky = FakeInstance::new("flaky", Answer::Vectors);
    flaky.script.lock().unwrap().extend([Answer::Failed, Answer::Failed]);
    // tokio's paused clock needs its test-util feature; a short real cool-down will do.
    let mut options = options();
    options.breaker.cool_down = Duration::from_millis(50);
    let pool = InstancePool::new("pool", vec![flaky.clone() as Arc<dyn EmbeddingBackend>], options).expect("valid");
    for _ in 0..2 {
        assert!(matches!(pool.embed(texts(1)).await, Err(BackendError::Failed { .. })));
    }
    assert_eq!(state_of(&pool, "flaky"), BreakerState::Open);
    let error = pool.embed(texts(1)).await.expect_err("no instance admits a batch");
    assert!(matches!(error, BackendError::Unavailable { .. }), "{error}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(state_of(&pool, "flaky"), BreakerState::HalfOpen);
    assert_eq!(pool.embed(texts(1)).await.expect("the probe").instance, "flaky");
    assert_eq!(state_of(&pool, "flaky"), BreakerState::Closed);
}

#[tokio::test]
async fn a_healthy_check_puts_an_open_instance_back_before_the_cool_down() {
    let flaky = FakeInstance::new("flaky", Answer::Vectors);
    flaky.script.lock().unwrap().extend([Answer::Unavailable, Answer::Unavailable]);
    flaky.healthy.store(false, Ordering::SeqCst);
    let pool = pool(&[&flaky]);
    for _ in 0..2 {
        pool.embed(texts(1)).await.expect_err("unavailable");
    }
    pool.check_health().await;
    assert_eq!(state_of(&pool, "flaky"), BreakerState::Open, "still down");
    flaky.healthy.store(true, Ordering::SeqCst);
    pool.check_health().await;
    assert_eq!(state_of(&pool, "flaky"), BreakerState::HalfOpen);
    pool.embed(texts(1)).await.expect("the probe succeeds");
    assert_eq!(state_of(&pool, "flaky"), BreakerState::Closed);
}

#[tokio::test]
async fn a_batch_is_tried_on_at_most_max_attempts_instances() {
    let members: Vec<Arc<FakeInstance>> =
        (0..5).map(|index| FakeInstance::new(&format!("i{index}"), Answer::Failed)).collect();
    let pool = pool(&members.iter().collect::<Vec<_>>());
    let error = pool.embed(texts(1)).await.expect_err("every instance fails");
    assert!(matches!(error, BackendError::Failed { .. }), "{error}");
    assert_eq!(members.iter().map(|member| member.calls()).sum::<usize>(), 3);
}

#[tokio::test]
async fn watching_health_stops_when_cancelled() {
    let pool = Arc::new(pool(&[&FakeInstance::new("a", Answer::Vectors)]));
    let shutdown = CancellationToken::new();
    let watch = pool.spawn_health_watch(shutdown.clone());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), watch).await.expect("stopped").expect("no panic");
}

#[test]
fn a_pool_needs_distinct_instances() {
    let a = FakeInstance::new("a", Answer::Vectors);
    let members: Vec<Arc<dyn EmbeddingBackend>> = vec![a.clone(), a];
    assert!(matches!(InstancePool::new("p", members, options()), Err(PoolError::DuplicateInstance { .. })));
    assert!(matches!(InstancePool::new("p", Vec::new(), options()), Err(PoolError::Empty { .. })));
}
