//! Migrations, price history and aligned histories.

use super::*;

#[tokio::test]
async fn migrations_run_idempotently() {
    let (store, schema, _) = fresh_store().await;
    store.migrate().await.expect("second migration run");
    let again = store_in(&schema, Arc::new(RecordedQueryEvents::default())).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(again.pool())
        .await
        .expect("migrations table read");
    let files = std::fs::read_dir(common::repo().join("migrations")).expect("migrations folder").count();
    assert_eq!(applied as usize, files);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn history_returns_the_latest_window_in_day_order() {
    let (store, schema, _) = fresh_store().await;
    let history: Vec<(i32, f64)> = (1..=10).map(|day| (20_000 + day, f64::from(day))).collect();
    store_closes(&store, "HIST", &history).await;

    let latest = store.latest_closes("HIST", 4).await.expect("history read");
    let days: Vec<i32> = latest.iter().map(|row| row.day.0).collect();
    let closes: Vec<f64> = latest.iter().map(|row| row.close).collect();
    assert_eq!(days, [20_007, 20_008, 20_009, 20_010]);
    assert_eq!(closes, [7.0, 8.0, 9.0, 10.0]);
    assert!(store.latest_closes("NOPE", 4).await.unwrap().is_empty());
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn aligned_histories_keep_only_the_days_every_symbol_has() {
    let (store, schema, _) = fresh_store().await;
    let a: Vec<(i32, f64)> = (1..=10).map(|day| (day, f64::from(day))).collect();
    let b: Vec<(i32, f64)> = (1..=10).filter(|&day| day != 8).map(|day| (day, 100.0 + f64::from(day))).collect();
    store_closes(&store, "A", &a).await;
    store_closes(&store, "B", &b).await;

    let aligned = store.aligned_closes(&["B", "A"], 4).await.expect("aligned read");
    let days: Vec<i32> = aligned.days.iter().map(|day| day.0).collect();
    assert_eq!(days, [6, 7, 9, 10]);
    assert_eq!(aligned.closes_of("A"), [6.0, 7.0, 9.0, 10.0]);
    assert_eq!(aligned.closes_of("B"), [106.0, 107.0, 109.0, 110.0]);
    drop_schema(&store, &schema).await;
}

/// Asserts `aligned` is what the aligned statement itself answers for A and B over 120 days,
/// and that those are 120 days.
async fn assert_as_the_aligned_statement_answers(store: &PriceStore, aligned: &frontier::market::AlignedCloses) {
    let rows: Vec<(String, i32, f64)> = sqlx::query_as(frontier::market::store::sql::ALIGNED_CLOSES)
        .bind(["A", "B"])
        .bind(2_i64)
        .bind(120_i64)
        .fetch_all(store.pool())
        .await
        .expect("aligned statement");
    let of = |wanted: &str| -> Vec<(i32, f64)> {
        rows.iter().filter(|(symbol, ..)| symbol == wanted).map(|&(_, day, close)| (day, close)).collect()
    };
    let days: Vec<i32> = of("A").iter().map(|(day, _)| *day).collect();
    assert_eq!(aligned.days.iter().map(|day| day.0).collect::<Vec<_>>(), days);
    assert_eq!(days.len(), 120);
    for symbol in ["A", "B"] {
        assert_eq!(
            aligned.closes_of(symbol),
            of(symbol).iter().map(|(_, close)| *close).collect::<Vec<_>>(),
            "{symbol}"
        );
    }
}

#[tokio::test]
async fn aligned_histories_on_calendars_a_few_holidays_apart_are_read_as_latest_closes() {
    let (store, schema, events) = fresh_store().await;
    // 300 days; A misses three of B's days and B two of A's within the window.
    let a: Vec<(i32, f64)> =
        (1..=300).filter(|day| ![250, 280, 299].contains(day)).map(|d| (d, f64::from(d))).collect();
    let b: Vec<(i32, f64)> =
        (1..=300).filter(|day| ![260, 290].contains(day)).map(|d| (d, 1e3 + f64::from(d))).collect();
    store_closes(&store, "A", &a).await;
    store_closes(&store, "B", &b).await;
    let before = events.events().len();

    let aligned = store.aligned_closes(&["B", "A"], 120).await.expect("aligned read");

    assert_as_the_aligned_statement_answers(&store, &aligned).await;
    let ran = &events.events()[before..];
    assert!(ran.iter().all(|event| event.sql != frontier::market::store::sql::ALIGNED_CLOSES), "{ran:?}");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn aligned_histories_on_calendars_far_apart_fall_back_to_the_aligned_statement() {
    let (store, schema, events) = fresh_store().await;
    // B trades every other day: 120 common days reach back 240 days, past what was read of A.
    let a: Vec<(i32, f64)> = (1..=300).map(|day| (day, f64::from(day))).collect();
    let b: Vec<(i32, f64)> = (1..=300).step_by(2).map(|day| (day, 1e3 + f64::from(day))).collect();
    store_closes(&store, "A", &a).await;
    store_closes(&store, "B", &b).await;
    let before = statements_run(&events, frontier::market::store::sql::ALIGNED_CLOSES);

    let aligned = store.aligned_closes(&["A", "B"], 120).await.expect("aligned read");

    assert_as_the_aligned_statement_answers(&store, &aligned).await;
    assert_eq!(statements_run(&events, frontier::market::store::sql::ALIGNED_CLOSES) - before, 1);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn reads_asked_together_go_out_as_one_statement_each_answered_with_its_own_window() {
    let (store, schema, events) = fresh_store().await;
    let a: Vec<(i32, f64)> = (1..=10).map(|day| (day, f64::from(day))).collect();
    let b: Vec<(i32, f64)> = (1..=10).map(|day| (day, 100.0 + f64::from(day))).collect();
    store_closes(&store, "A", &a).await;
    store_closes(&store, "B", &b).await;
    let before = events.events().len();

    // A current-thread test runtime: every read is asked before the first statement starts.
    let asked = [("A", 4), ("B", 2), ("A", 7), ("NOPE", 3), ("A", 4)];
    let answers =
        futures::future::try_join_all(asked.iter().map(|(symbol, count)| store.latest_closes(symbol, *count)))
            .await
            .expect("reads");
    let closes: Vec<Vec<f64>> = answers.iter().map(|rows| rows.iter().map(|row| row.close).collect()).collect();
    assert_eq!(closes[0], [7.0, 8.0, 9.0, 10.0]);
    assert_eq!(closes[1], [109.0, 110.0]);
    assert_eq!(closes[2], [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
    assert!(closes[3].is_empty(), "an unknown symbol has no closes");
    assert_eq!(closes[4], closes[0]);
    assert_eq!(answers[1][0].symbol, "B");
    assert_eq!(answers[1][0].day.0, 9);
    assert_eq!(events.events().len() - before, 1, "five reads, one statement");
    drop_schema(&store, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_reads_of_a_busy_store_share_few_statements_and_all_get_their_windows() {
    let (store, schema, events) = fresh_store().await;
    let history: Vec<(i32, f64)> = (1..=300).map(|day| (day, f64::from(day))).collect();
    store_closes(&store, "HIST", &history).await;
    let before = events.events().len();

    let reads = (0..200).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { (i, store.latest_closes("HIST", 20 + i % 50).await) })
    });
    for read in futures::future::join_all(reads).await {
        let (i, rows) = read.unwrap();
        let rows = rows.expect("read");
        assert_eq!(rows.len(), 20 + i % 50);
        assert_eq!(rows.last().map(|row| row.close), Some(300.0), "the latest close comes last");
    }
    let statements = events.events().len() - before;
    assert!(statements < 200, "{statements} statements for 200 reads: none were gathered");
    drop_schema(&store, &schema).await;
}
