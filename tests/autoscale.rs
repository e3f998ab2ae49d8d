//! The autoscaler's view of a consumer group, read from the real Kafka of `ops/stack up`
//! without joining the group: backlog, members, lag in time, partition health.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::time::Duration;

use common::*;
use frontier::autoscale::{GroupSample, LagSampler, PartitionHealth, SampleError, partition_health};
use frontier::bus::KafkaSettings;

/// `count` small records spread over the topic's partitions by key.
async fn fill(topic: &str, count: usize) {
    let records = (0..count).map(|i| (Some(format!("key-{i}")), format!("message {i}").into_bytes())).collect();
    produce(&settings(), topic, records).await;
}

async fn sample(group: &str, topic: &str) -> Result<GroupSample, SampleError> {
    sample_on(&settings().kafka, group, topic).await
}

async fn sample_on(kafka: &KafkaSettings, group: &str, topic: &str) -> Result<GroupSample, SampleError> {
    let (kafka, group, topics) = (kafka.clone(), group.to_owned(), vec![topic.to_owned()]);
    tokio::task::spawn_blocking(move || {
        LagSampler::new(&kafka, Duration::from_secs(10)).unwrap().sample(&group, &topics)
    })
    .await
    .unwrap()
}

/// Development settings with consumer groups on `protocol` (`classic` or `consumer`).
fn kafka_on(protocol: &str) -> KafkaSettings {
    let mut kafka = settings().kafka;
    kafka.client.insert("group.protocol".into(), protocol.into());
    kafka
}

/// A member of a group on `kafka`'s protocol has read 30 of 90 messages: the sampler sees
/// it, the 60 waiting, and when the oldest was written; once it leaves, nobody reads them.
async fn backlog_members_and_oldest_waiting_message_are_read(kafka: &KafkaSettings) {
    let topic = unique("autoscale.backlog");
    create_topics(&settings(), &[&topic], 3).await;
    let written_at = frontier::clock::now_millis();
    fill(&topic, 90).await;
    let group = unique("autoscale.group");
    let member = member_on(kafka, &group, &topic, 30);

    let seen = sample_on(kafka, &group, &topic).await.unwrap();
    assert_eq!((seen.backlog(), seen.members, seen.partitions.len()), (60, 1, 3), "{seen:?}");
    assert!(seen.exists());
    assert_eq!(seen.state, "Stable", "{seen:?}");
    let waited = seen.lag_seconds().expect("the oldest waiting message's timestamp is read");
    let since_written = (frontier::clock::now_millis() - written_at) as f64 / 1000.0;
    assert!((0.0..=since_written + 1.0).contains(&waited), "waited {waited} s, written {since_written} s ago");

    // Once the member leaves, messages wait with nobody to read them: STOP.
    drop(member);
    let left = sample_on(kafka, &group, &topic).await.unwrap();
    assert_eq!((left.backlog(), left.members), (60, 0), "{left:?}");
    assert!(left.exists(), "its committed offsets remain: {left:?}");
    for partition in left.partitions.iter().filter(|p| p.lag() > 0) {
        assert_eq!(partition_health(&[partition.offsets], partition.start, left.members), PartitionHealth::Stop);
    }
}

#[tokio::test]
async fn a_classic_group_s_backlog_members_and_oldest_waiting_message_are_read_without_joining_it() {
    backlog_members_and_oldest_waiting_message_are_read(&kafka_on("classic")).await;
}

/// The classic DescribeGroups reads a KIP-848 group as dead with no members; the sampler
/// must not, or the autoscaler and rollouts would act on an empty group.
#[tokio::test]
async fn a_kip_848_group_s_backlog_members_and_oldest_waiting_message_are_read_without_joining_it() {
    backlog_members_and_oldest_waiting_message_are_read(&kafka_on("consumer")).await;
}

#[tokio::test]
async fn a_group_that_never_consumed_does_not_exist_and_lags_from_the_log_start() {
    let topic = unique("autoscale.unknown");
    create_topics(&settings(), &[&topic], 2).await;
    fill(&topic, 10).await;

    let seen = sample(&unique("autoscale.nobody"), &topic).await.unwrap();
    assert!(!seen.exists(), "{seen:?}");
    assert_eq!(seen.backlog(), 10);
}

#[tokio::test]
async fn a_topic_that_does_not_exist_is_an_error_naming_it() {
    require_kafka(&settings());
    let topic = unique("autoscale.missing");
    match sample(&unique("autoscale.group"), &topic).await {
        Err(SampleError::NoSuchTopic(named)) => assert_eq!(named, topic),
        other => panic!("expected NoSuchTopic, got {other:?}"),
    }
}

/// `frontier autoscale plan` on `topic` as the serving worker's input, read by `group`, with
/// `policy` as `FRONTIER_WORKERS__AUTOSCALER__GROUPS__SERVE__*` overrides (which make serve
/// the only sized group: none is by default).
fn plan_output(topic: &str, group: &str, policy: &[(&str, &str)]) -> String {
    let mut command = frontier();
    command
        .args(["autoscale", "plan", "--interval", "1"])
        .env("FRONTIER_WORKERS__SERVE__INPUT_TOPIC", topic)
        .env("FRONTIER_WORKERS__SERVE__GROUP_ID", group);
    for (key, value) in policy {
        command.env(format!("FRONTIER_WORKERS__AUTOSCALER__GROUPS__SERVE__{key}"), value);
    }
    let output = command.output().expect("frontier autoscale plan runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test]
async fn plan_does_not_grow_a_group_whose_messages_wait_with_no_member_beyond_its_minimum() {
    let topic = unique("autoscale.plan.stopped");
    create_topics(&settings(), &[&topic], 3).await;
    fill(&topic, 50).await;
    let group = unique("autoscale.plan.group");
    drop(member_after(&group, &topic, 10));

    let stdout = plan_output(&topic, &group, &[("MIN_INSTANCES", "2")]);
    assert!(stdout.contains(&format!("{group} (serve) on {topic}")), "{stdout}");
    assert!(stdout.contains("0 member(s), 3 partition(s), 40 waiting"), "{stdout}");
    // 40 messages would ask for more than the minimum; a stopped group only gets its bounds.
    assert!(
        stdout.contains("-> scale_up to 2 (bounds 2..3): partitions are STOP with 40 message(s) waiting"),
        "{stdout}"
    );
    assert!(stdout.contains("brought within bounds 2..3"), "{stdout}");
}

#[tokio::test]
async fn plan_sizes_a_backlog_with_keda_s_formula_capped_at_the_partitions() {
    let topic = unique("autoscale.plan.keda");
    create_topics(&settings(), &[&topic], 3).await;
    fill(&topic, 500).await;
    let group = unique("autoscale.plan.group");
    let _member = member_after(&group, &topic, 100);

    let stdout = plan_output(&topic, &group, &[("SIZING__KIND", "lag"), ("SIZING__LAG_THRESHOLD", "100")]);
    // 400 waiting / 100 = 4 instances, but the topic has 3 partitions.
    assert!(stdout.contains("1 member(s), 3 partition(s), 400 waiting"), "{stdout}");
    assert!(
        stdout.contains("-> scale_up to 3 (bounds 2..3): lag 400 / threshold 100 = 4; capped at max_instances 3"),
        "{stdout}"
    );
}
