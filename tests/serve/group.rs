//! How the serving group hands its partitions over.

use super::*;

#[tokio::test]
async fn a_serving_group_hands_partitions_over_in_one_eager_round() {
    let mut world = World::new("group").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    // Answered: the instance is in its group and holds the partition.
    let response = instance.ask(&mut world, volatility("SYN0001", 30)).await;
    assert_eq!(response["status"], "ok", "{response}");

    let settings = &instance.settings;
    let group = settings.shared().group_id(&settings.workers.serve);
    let admin = kafka::admin(&settings.kafka).unwrap();
    let described = tokio::task::spawn_blocking(move || {
        frontier::bus::groups::describe_group(admin.inner(), &group, Duration::from_secs(10))
    })
    .await
    .unwrap()
    .unwrap();

    // A KIP-848 group is assigned by the broker (its default assignor); a classic one by its
    // members, eagerly: `range`, not the bus's default `cooperative-sticky`.
    let expected = if settings.kafka.uses_kip_848_groups() { "uniform" } else { "range" };
    assert_eq!((described.state.as_str(), described.members, described.assignor.as_str()), ("Stable", 1, expected));
    instance.stop().await;
    world.drop_schema().await;
}
