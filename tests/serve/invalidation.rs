//! Invalidations reaching every instance, and Redis going away and coming back.

use frontier::records::CacheInvalidation;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use super::*;
use crate::common::redis::PrivateRedis;

#[tokio::test]
async fn a_tag_invalidation_reaches_a_second_instance_whose_next_answer_is_recomputed() {
    let mut world = World::new("invalidate").await;
    let redis = stack_redis(&world.settings).await;
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = world.instance("a", world.cache_settings(&disk_a), Some(&redis)).await;
    let b = world.instance("b", world.cache_settings(&disk_b), Some(&redis)).await;
    assert_eq!(layer(&a.ask(&mut world, volatility("SYN0002", 30)).await), "none");
    assert_eq!(layer(&b.ask(&mut world, volatility("SYN0002", 30)).await), "redis");
    assert_eq!(layer(&b.ask(&mut world, volatility("SYN0002", 30)).await), "memory");

    let order = CacheInvalidation {
        id: uuid::Uuid::new_v4().to_string(),
        tags: vec!["symbol:SYN0002".into()],
        keys: Vec::new(),
        reason: "test: prices of SYN0002 corrected".into(),
        source: "tests".into(),
        issued_at: frontier::clock::now_millis(),
    };
    let schema = world.catalog.by_file("cache_invalidation.avsc").unwrap();
    let payload = SchemaCatalog::encode(&schema, &order).unwrap();
    let producer = kafka::producer(&world.settings.kafka).unwrap();
    let topic = world.settings.cache.invalidations_topic.clone();
    let delivered =
        producer.send(FutureRecord::<str, [u8]>::to(&topic).key("SYN0002").payload(&payload), Timeout::Never).await;
    let delivery = delivered.map_err(|(e, _)| e).expect("invalidation published");
    let deadline = Instant::now() + PATIENCE;
    while b.worker.cache().watermark().offset(delivery.partition) < delivery.offset {
        assert!(Instant::now() < deadline, "the second instance did not apply the invalidation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = b.ask(&mut world, volatility("SYN0002", 30)).await;
    assert_eq!(layer(&after), "none", "recomputed after the invalidation: {after}");
    assert_eq!(b.worker.computations(), 1);
    a.stop().await;
    b.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn requests_are_answered_while_redis_is_down_and_redis_is_used_again_once_it_is_back() {
    let mut world = World::new("outage").await;
    let port = PrivateRedis::free_port();
    let mut redis = PrivateRedis::start(port).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis.url())).await;
    assert_eq!(instance.ask(&mut world, volatility("SYN0001", 20)).await["status"], "ok");
    assert!(instance.worker.cache().redis_is_up());

    redis.stop();
    for window in [21, 22, 23] {
        let response = instance.ask(&mut world, volatility("SYN0001", window)).await;
        assert_eq!(
            (response["status"].as_str(), layer(&response)),
            (Some("ok"), "none"),
            "answered without Redis: {response}"
        );
    }
    assert!(!instance.worker.cache().redis_is_up());

    let _restarted = PrivateRedis::start(port).await;
    // Past the retry backoff (200 ms), the next request probes Redis again and writes to it.
    let deadline = Instant::now() + PATIENCE;
    let mut window = 24;
    while !instance.worker.cache().redis_is_up() {
        assert!(Instant::now() < deadline, "Redis was not used again after it came back");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(instance.ask(&mut world, volatility("SYN0001", window)).await["status"], "ok");
        window += 1;
    }
    let fresh = volatility("SYN0001", 200);
    assert_eq!(layer(&instance.ask(&mut world, fresh.clone()).await), "none");
    instance.worker.cache().clear_memory().await;
    instance.worker.cache().clear_disk().await;
    let mut again = fresh;
    again["id"] = json!(uuid::Uuid::new_v4().to_string());
    assert_eq!(
        layer(&instance.ask(&mut world, again).await),
        "redis",
        "the entry written after the restart is in Redis"
    );
    instance.stop().await;
    world.drop_schema().await;
}
