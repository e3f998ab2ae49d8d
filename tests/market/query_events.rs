//! DB query events: one per statement, on Kafka.

use super::*;

#[tokio::test]
async fn every_query_publishes_a_db_query_event() {
    let settings = settings();
    let topic = unique("db-query-events");
    create_topics(&settings, &[&topic], 1).await;
    let sink = Arc::new(KafkaQueryEvents::from_catalog(&settings.kafka, &catalog(), &topic).expect("sink"));
    let schema = unique_schema();
    let store = store_in(&schema, sink.clone()).await;

    seed_prices(&store, &plan(1, 20, 3, None), |_, _| {}).await.expect("seeded"); // 2 statements
    store.latest_closes("SYN0001", 10).await.expect("history read");
    store.known_symbols().await.expect("symbols listed");
    store.flush_events(Duration::from_secs(10));
    assert_eq!(sink.counts().failed(), 0);

    let messages = read_topic(&settings, &topic, 4, Duration::from_secs(20));
    let events: Vec<Value> = decoded_json(&catalog(), &messages);
    assert_eq!(events.len(), 4, "{events:#?}");
    let rows: Vec<i64> = events.iter().map(|event| event["rows"].as_i64().unwrap()).collect();
    assert_eq!(rows, [1, 20, 10, 1]);
    for event in &events {
        let sql = event["sql"].as_str().unwrap();
        assert!(sql.contains("symbols") || sql.contains("prices"), "{sql}");
        assert!(!sql.contains("SYN0001"), "bound values stay out of the SQL: {sql}");
        assert_eq!(event["fingerprint"].as_str(), Some(frontier::queries::fingerprint(sql).as_str()));
        assert!(event["duration_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(event["database"], "frontier");
        assert_eq!(event["application"], "frontier-tests");
        assert_eq!(event["status"], "ok");
        assert_eq!(event["error"], Value::Null);
    }
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn a_failed_query_reports_an_error_event() {
    let (store, schema, events) = fresh_store().await;
    // The symbol is not registered, so the foreign key refuses the row.
    let orphan = [DailyClose { symbol: "ORPHAN".into(), day: TradingDay(1), close: 1.0 }];
    assert!(store.upsert_closes(&orphan).await.is_err());
    let recorded = events.events();
    let last = recorded.last().expect("an event");
    assert_eq!(last.status, QueryStatus::Error);
    assert_eq!(last.rows, 0);
    assert!(last.error.as_deref().unwrap_or_default().contains("foreign key"), "{last:?}");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn queries_do_not_wait_for_an_unreachable_kafka() {
    let mut unreachable = settings().kafka;
    unreachable.bootstrap_servers = "127.0.0.1:1".to_owned();
    unreachable.delivery_timeout = Duration::from_secs(1);
    let sink =
        Arc::new(KafkaQueryEvents::from_catalog(&unreachable, &catalog(), "frontier.db.query-events").expect("sink"));
    let schema = unique_schema();
    let store = store_in(&schema, sink.clone()).await;

    let started = std::time::Instant::now();
    for _ in 0..20 {
        store.known_symbols().await.expect("symbols listed");
    }
    // Waiting on each delivery would take 20 x the 1 s delivery timeout.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    store.flush_events(Duration::from_secs(5));
    assert_eq!(sink.counts().failed(), 20);
    assert_eq!(sink.counts().delivered(), 0);
    drop_schema(&store, &schema).await;
}
