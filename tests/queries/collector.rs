//! The `pg_stat_statements` collector: what statements of any application did each interval,
//! as query events.

use std::time::Duration;

use frontier::queries::StatCollector;

use super::common::{catalog, create_topics, decoded_json, frontier, read_topic, settings, unique};
use super::{ORDERS, ScratchDatabase};

const LOOKUP: &str = "SELECT id, amount FROM orders WHERE customer = ";

#[tokio::test]
async fn an_interval_of_pg_stat_statements_becomes_one_event_per_shape_with_its_runs() {
    let database = ScratchDatabase::create(&["pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    let mut conn = database.connect().await;
    let mut collector = StatCollector::new();
    assert!(collector.poll(&mut conn, 1).await.unwrap().is_empty(), "the first read only sets the start");
    database.run_workload((0..30).map(|i| format!("{LOOKUP}{i}"))).await;

    let events = collector.poll(&mut conn, 2).await.unwrap();
    let lookup = events.iter().find(|e| e.sql.starts_with(LOOKUP)).unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!((lookup.calls, lookup.rows, lookup.occurred_at), (30, 30 * 40, 2));
    assert_eq!(lookup.database, database.name);
    assert!(lookup.duration_ms > 0.0);
    // Nothing ran in between: the next interval has no lookup.
    let next = collector.poll(&mut conn, 3).await.unwrap();
    assert!(next.iter().all(|e| !e.sql.starts_with(LOOKUP)), "{next:#?}");
    drop(conn);
    database.drop().await;
}

#[tokio::test]
async fn the_collect_command_publishes_intervals_to_the_query_events_topic() {
    let database = ScratchDatabase::create(&["pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    let settings = settings();
    let topic = unique("collected.events");
    create_topics(&settings, &[&topic], 1).await;
    let mut command = frontier()
        .args(["queries", "collect", "--database-url", &database.url, "--interval", "3s", "--intervals", "1"])
        .args(["--topic", &topic])
        .spawn()
        .unwrap();
    // After its first read (the starting point), before its second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    database.run_workload((0..25).map(|i| format!("{LOOKUP}{i}"))).await;
    let status = tokio::task::spawn_blocking(move || command.wait()).await.unwrap().unwrap();
    assert!(status.success());

    let events = decoded_json(&catalog(), &read_topic(&settings, &topic, 1, Duration::from_secs(10)));
    let lookup = events.iter().find(|e| e["sql"].as_str().is_some_and(|s| s.starts_with(LOOKUP)));
    let lookup = lookup.unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(lookup["calls"], 25);
    assert_eq!(lookup["database"], database.name.as_str());
    database.drop().await;
}
