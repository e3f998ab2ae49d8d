//! `frontier seed`, the binary: summary, rows and cache invalidations.

use super::*;

#[tokio::test]
async fn seed_command_prints_its_summary_and_publishes_invalidations() {
    let settings = settings();
    let invalidations = unique("cache-invalidations");
    let query_events = unique("db-query-events");
    create_topics(&settings, &[&invalidations, &query_events], 1).await;
    let schema = unique_schema();

    let output = frontier()
        .args([
            "seed",
            "--symbols",
            "3",
            "--days",
            "40",
            "--seed",
            "7",
            "--names",
            "AAPL",
            "--benchmark",
            "MKT",
            "--schema",
            &schema,
        ])
        .args(["--invalidations-topic", &invalidations, "--query-events-topic", &query_events])
        .output()
        .expect("frontier seed runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("seeded 4 symbol(s) x 40 day(s)"), "{stdout}");
    assert!(stdout.contains("160 row(s) written, 160 new or changed"), "{stdout}");
    assert!(stdout.contains("published 5 cache invalidation(s)"), "{stdout}");

    let messages = read_topic(&settings, &invalidations, 5, Duration::from_secs(20));
    let mut tags: Vec<String> = decoded_json(&catalog(), &messages)
        .into_iter()
        .flat_map(|invalidation| {
            assert_eq!(invalidation["source"], "frontier seed");
            invalidation["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|tag| tag.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    tags.sort();
    // Each changed symbol, and the symbols table for the cached symbol lookups.
    assert_eq!(tags, ["symbol:AAPL", "symbol:MKT", "symbol:SYN0002", "symbol:SYN0003", "table:symbols"]);
    assert!(!read_topic(&settings, &query_events, 1, Duration::from_secs(10)).is_empty(), "no query events");

    let store = store_in(&schema, Arc::new(RecordedQueryEvents::default())).await;
    assert_eq!(store.count_closes(&["AAPL", "MKT", "SYN0002", "SYN0003"]).await.unwrap(), 160);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn rerunning_the_seed_command_publishes_no_invalidations() {
    let settings = settings();
    let invalidations = unique("cache-invalidations");
    let query_events = unique("db-query-events");
    create_topics(&settings, &[&invalidations, &query_events], 1).await;
    let schema = unique_schema();
    let run = || {
        frontier()
            .args(["seed", "--symbols", "2", "--days", "10", "--schema", &schema])
            .args(["--invalidations-topic", &invalidations, "--query-events-topic", &query_events])
            .output()
            .expect("frontier seed runs")
    };
    assert!(run().status.success());
    let second = run();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{stdout}");
    assert!(stdout.contains("20 row(s) written, 0 new or changed"), "{stdout}");
    assert!(stdout.contains("published 0 cache invalidation(s)"), "{stdout}");
    // The first run's two symbols and its registrations; nothing from the second.
    assert_eq!(read_topic(&settings, &invalidations, 4, Duration::from_secs(5)).len(), 3);

    let store = store_in(&schema, Arc::new(RecordedQueryEvents::default())).await;
    drop_schema(&store, &schema).await;
}
