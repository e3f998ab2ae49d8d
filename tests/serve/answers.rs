//! Answers with the analytic's numbers, from each layer, and one computation for many.

use super::*;

#[tokio::test]
async fn a_request_is_answered_with_the_numbers_of_the_analytic_computed_directly() {
    let mut world = World::new("numbers").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    let sent = volatility("SYN0002", 60);
    let response = instance.ask(&mut world, sent.clone()).await;
    let expected = computed_directly(&world.store, &sent).await;

    assert_eq!(response["status"], "ok", "{response}");
    assert_eq!(layer(&response), "none");
    assert_eq!(response["result"], expected, "the answer is the analytic's, number for number");
    assert_eq!(response["served_by"], json!(instance.worker.instance()));
    assert!(response["error"].is_null() && response["cache_age_ms"].is_null());

    // The request-completed event went to the metrics topic, keyed by service, with the key.
    let mut metrics = Responses::by_field(&world.settings, &world.settings.workers.serve.metrics_topic, "id");
    let event = metrics.wait(sent["id"].as_str().unwrap()).await;
    assert_eq!(
        (event["service"].as_str(), event["status"].as_str(), event["cache_layer"].as_str()),
        (Some("serve"), Some("ok"), Some("none"))
    );
    assert!(event["cache_key"].as_str().unwrap().starts_with("market.volatility:"));
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn the_same_request_again_is_answered_from_memory() {
    let mut world = World::new("memory").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    let first = instance.ask(&mut world, volatility("SYN0001", 30)).await;
    let second = instance.ask(&mut world, volatility("SYN0001", 30)).await;
    assert_eq!((layer(&first), layer(&second)), ("none", "memory"));
    assert_eq!(first["result"], second["result"]);
    assert!(second["cache_age_ms"].as_i64().is_some());
    assert_eq!(instance.worker.computations(), 1);
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn a_second_instance_is_answered_from_redis() {
    let mut world = World::new("redis").await;
    let redis = stack_redis(&world.settings).await;
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = world.instance("a", world.cache_settings(&disk_a), Some(&redis)).await;
    let b = world.instance("b", world.cache_settings(&disk_b), Some(&redis)).await;
    let first = a.ask(&mut world, volatility("SYN0003", 45)).await;
    let second = b.ask(&mut world, volatility("SYN0003", 45)).await;
    assert_eq!((layer(&first), layer(&second)), ("none", "redis"));
    assert_eq!(first["result"], second["result"]);
    assert_eq!(b.worker.computations(), 0);
    a.stop().await;
    b.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn an_instance_without_memory_and_redis_entries_is_answered_from_disk() {
    let mut world = World::new("disk").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    let first = instance.ask(&mut world, volatility("SYN0001", 90)).await;
    instance.worker.cache().clear_memory().await;
    delete_prefix(&redis, &world.redis_prefix).await;
    let second = instance.ask(&mut world, volatility("SYN0001", 90)).await;
    assert_eq!((layer(&first), layer(&second)), ("none", "disk"));
    assert_eq!(first["result"], second["result"]);
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn a_hundred_concurrent_identical_requests_compute_once() {
    let mut world = World::new("coalesce").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    let queries_before = world.queries();
    let requests: Vec<Value> = (0..100).map(|_| request("portfolio.risk", json!({"symbols": ["SYN0001", "SYN0002"], "weights": {"SYN0001": 0.5, "SYN0002": 0.5}, "window_days": 120}), None)).collect();
    futures::future::join_all(requests.iter().map(|r| instance.send(r))).await;
    let mut results = Vec::new();
    for sent in &requests {
        let response = world.responses.wait(sent["id"].as_str().unwrap()).await;
        assert_eq!(response["status"], "ok", "{response}");
        results.push(response["result"].clone());
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "every answer is the same");
    assert_eq!(instance.worker.computations(), 1, "one computation for 100 identical requests");
    let queries_of_100 = world.queries() - queries_before;
    let before_one = world.queries();
    computed_directly(&world.store, &requests[0]).await;
    assert_eq!(
        queries_of_100,
        world.queries() - before_one,
        "the queries of one computation for 100 identical requests"
    );
    instance.stop().await;
    world.drop_schema().await;
}
