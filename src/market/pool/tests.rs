use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

fn admission(cost_ms: u64, priority: Priority, tenant: &str) -> Admission<'_> {
    Admission { cost: Duration::from_millis(cost_ms), priority, tenant, deadline: None, background: false }
}

fn background(cost_ms: u64) -> Admission<'static> {
    Admission { background: true, ..admission(cost_ms, Priority::Low, "warm") }
}

fn pool() -> AnalysisPool {
    AnalysisPool::new(ComputeSettings { max_heavy_waiting: 3, ..ComputeSettings::default() })
}

/// `count` cheap live analyses admitted and running.
async fn cheap_live(pool: &AnalysisPool, count: usize) -> Vec<Permit> {
    futures::future::try_join_all((0..count).map(|_| pool.admit(admission(1, Priority::Low, "t")))).await.unwrap()
}

/// Yields until `done` holds of the pool's load (waiters registering from other tasks).
async fn until(pool: &AnalysisPool, done: impl Fn(Load) -> bool) {
    while !done(pool.load()) {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn an_analysis_over_the_cost_limit_is_refused_before_any_work() {
    let refused = pool().admit(admission(3_000, Priority::Normal, "t")).await.unwrap_err();
    assert_eq!(refused.code(), "too_expensive");
}

#[tokio::test]
async fn cheap_analyses_never_wait_for_heavy_ones() {
    let pool = pool();
    let _running = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
    let cheap = pool.admit(admission(1, Priority::Low, "t")).await.unwrap();
    assert_eq!(cheap.nice(), 0);
    assert_eq!(pool.load(), Load { heavy_running: 1, heavy_waiting: 0, live_running: 2, background_waiting: 0 });
}

#[tokio::test]
async fn a_freed_slot_goes_to_the_most_urgent_then_the_fairest_waiter() {
    let pool = AnalysisPool::new(ComputeSettings::default());
    let running = pool.admit(admission(500, Priority::Normal, "a")).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    // Tenant a queues two more; tenant b one, after them; a critical one comes last.
    for (name, tenant, priority) in [
        ("a2", "a", Priority::Normal),
        ("a3", "a", Priority::Normal),
        ("b1", "b", Priority::Normal),
        ("c1", "c", Priority::Critical),
    ] {
        let (task_pool, order) = (pool.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let permit = task_pool.admit(admission(500, priority, tenant)).await.unwrap();
            order.lock().unwrap().push(name);
            drop(permit);
        }));
        let queued = waiters.len();
        until(&pool, |load| load.heavy_waiting == queued).await;
    }
    drop(running);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    // Critical first; then b, whose first analysis starts before a's second and third.
    assert_eq!(*order.lock().unwrap(), ["c1", "b1", "a2", "a3"]);
}

#[tokio::test]
async fn a_full_waiting_line_refuses_with_overloaded() {
    let pool = pool();
    let _running = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move { pool.admit(admission(500, Priority::Normal, "t")).await.map(drop) }));
    }
    until(&pool, |load| load.heavy_waiting == 3).await;
    let refused = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap_err();
    assert_eq!(refused.code(), "overloaded");
}

#[tokio::test]
async fn a_waiter_whose_deadline_passes_gives_up_and_loses_no_slot() {
    let pool = pool();
    let running = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
    let late = Admission {
        deadline: Some(Instant::now() + Duration::from_millis(20)),
        ..admission(500, Priority::Normal, "t")
    };
    assert_eq!(pool.admit(late).await.unwrap_err(), Refused::DeadlinePassed);
    drop(running);
    assert_eq!(pool.load(), Load::default());
    let next = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
    assert_eq!(next.nice(), 10);
}

#[tokio::test]
async fn a_background_refresh_runs_at_once_on_an_idle_pool_at_the_low_os_priority() {
    let pool = pool();
    let refresh = pool.admit(background(1)).await.unwrap();
    assert_eq!(refresh.nice(), 10);
    assert_eq!(pool.load(), Load::default());
}

#[tokio::test]
async fn a_background_refresh_waits_while_live_analyses_fill_the_pool_and_starts_when_they_end() {
    let pool = pool();
    let live = cheap_live(&pool, 2).await;
    let refresh = tokio::spawn({
        let pool = pool.clone();
        async move { pool.admit(background(1)).await.map(drop) }
    });
    until(&pool, |load| load.background_waiting == 1).await;
    drop(live);
    refresh.await.unwrap().unwrap();
    assert_eq!(pool.load(), Load::default());
}

#[tokio::test]
async fn a_background_refresh_waits_while_a_live_analysis_waits_for_a_heavy_slot() {
    let pool = pool();
    let running = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
    let live = tokio::spawn({
        let pool = pool.clone();
        async move { pool.admit(admission(500, Priority::Low, "t")).await.map(drop) }
    });
    until(&pool, |load| load.heavy_waiting == 1).await;
    let refresh = tokio::spawn({
        let pool = pool.clone();
        async move { pool.admit(background(1)).await.map(drop) }
    });
    until(&pool, |load| load.background_waiting == 1).await;
    drop(running);
    live.await.unwrap().unwrap();
    refresh.await.unwrap().unwrap();
    assert_eq!(pool.load(), Load::default());
}

#[tokio::test]
async fn a_live_request_is_served_before_a_background_refresh_that_came_first() {
    let pool = pool();
    let running = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let refresh = tokio::spawn({
        let (pool, order) = (pool.clone(), order.clone());
        async move {
            let permit = pool.admit(background(500)).await.unwrap();
            order.lock().unwrap().push("background");
            drop(permit);
        }
    });
    until(&pool, |load| load.background_waiting == 1).await;
    let live = tokio::spawn({
        let (pool, order) = (pool.clone(), order.clone());
        async move {
            let permit = pool.admit(admission(500, Priority::Low, "t")).await.unwrap();
            order.lock().unwrap().push("live");
            drop(permit);
        }
    });
    until(&pool, |load| load.heavy_waiting == 1).await;
    drop(running);
    live.await.unwrap();
    refresh.await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["live", "background"]);
}

#[tokio::test]
async fn a_background_refresh_that_finds_no_room_within_its_wait_yields_and_marks_the_pool_busy() {
    let pool =
        AnalysisPool::new(ComputeSettings { background_wait: Duration::from_millis(20), ..ComputeSettings::default() });
    let _live = pool.admit(admission(500, Priority::Normal, "t")).await.unwrap();
    let _other = pool.admit(admission(1, Priority::Normal, "t")).await.unwrap();
    let refused = pool.admit(background(1)).await.unwrap_err();
    assert_eq!(refused.code(), "yielded");
    assert!(pool.take_busy());
    assert_eq!(pool.load().background_waiting, 0);
}

#[tokio::test]
async fn live_analyses_filling_the_pool_over_a_whole_look_make_it_busy_until_they_end() {
    let pool = pool();
    pool.take_busy();
    let live = cheap_live(&pool, 3).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(pool.take_busy(), "three live analyses nearly all along are over the background limit of two");
    drop(live);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!pool.take_busy(), "idle since the last look");
}

#[tokio::test]
async fn live_analyses_meeting_for_a_moment_do_not_make_the_pool_busy() {
    let pool = pool();
    pool.take_busy();
    let live = cheap_live(&pool, 2).await;
    drop(live);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!pool.take_busy());
}
