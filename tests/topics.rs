//! Declarative topics against the real broker.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::time::Duration;

use common::*;
use frontier::bus::kafka;
use frontier::config::TopicOverrides;
use frontier::topics::{self, Change};

const BODY: &str = "partitions = 3\nreplication_factor = 1\nmin_insync_replicas = 1\nretention_ms = 3600000\ncleanup_policy = \"delete\"\n";

async fn plan_for(dir: &std::path::Path) -> topics::Plan {
    let settings = settings();
    require_kafka(&settings);
    let specs = topics::load_dir(dir, &TopicOverrides::default()).unwrap();
    let admin = kafka::admin(&settings.kafka).unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let cluster = topics::describe(&admin, &names, Duration::from_secs(10)).await.unwrap();
    topics::plan(&specs, &cluster)
}

async fn apply(plan: &topics::Plan) -> Result<(), topics::TopicsError> {
    let admin = kafka::admin(&settings().kafka).unwrap();
    topics::apply(&admin, plan, Duration::from_secs(30)).await
}

#[tokio::test]
async fn applying_twice_changes_nothing_the_second_time() {
    let (a, b) = (unique("apply.a"), unique("apply.b"));
    let with_zstd = format!("{BODY}\n[configs]\n\"compression.type\" = \"zstd\"\n");
    let dir = topic_dir(&[(&a, BODY), (&b, &with_zstd)]);

    let first = plan_for(dir.path()).await;
    assert_eq!(first.changes.len(), 2);
    assert!(first.changes.iter().all(|c| matches!(c, Change::Create(_))));
    apply(&first).await.unwrap();

    let second = plan_for(dir.path()).await;
    assert!(second.is_empty(), "second plan: {second}");
}

#[tokio::test]
async fn growing_partitions_and_changed_configs_are_applied_in_place() {
    let name = unique("grow");
    let dir = topic_dir(&[(&name, BODY)]);
    apply(&plan_for(dir.path()).await).await.unwrap();

    std::fs::write(
        dir.path().join(format!("{name}.toml")),
        format!(
            "name = \"{name}\"\n{}",
            BODY.replace("partitions = 3", "partitions = 5").replace("3600000", "7200000")
        ),
    )
    .unwrap();
    let plan = plan_for(dir.path()).await;
    assert!(plan.changes.contains(&Change::AddPartitions { topic: name.clone(), from: 3, to: 5 }), "{plan}");
    assert!(plan.changes.iter().any(|c| matches!(c, Change::AlterConfigs { diffs, .. } if diffs.iter().any(|d| d.key == "retention.ms" && d.desired == "7200000"))), "{plan}");
    apply(&plan).await.unwrap();
    assert!(plan_for(dir.path()).await.is_empty());
}

#[tokio::test]
async fn a_partition_decrease_is_refused_with_the_reason_and_nothing_is_applied() {
    let name = unique("shrink");
    let dir = topic_dir(&[(&name, BODY)]);
    apply(&plan_for(dir.path()).await).await.unwrap();

    let shrunk = BODY.replace("partitions = 3", "partitions = 2").replace("3600000", "7200000");
    std::fs::write(dir.path().join(format!("{name}.toml")), format!("name = \"{name}\"\n{shrunk}")).unwrap();
    let plan = plan_for(dir.path()).await;
    assert_eq!(plan.refused().len(), 1);
    let error = apply(&plan).await.unwrap_err().to_string();
    assert!(error.contains("cannot remove partitions"), "{error}");
    let after = plan_for(dir.path()).await;
    assert!(
        after.changes.iter().any(|c| matches!(c, Change::AlterConfigs { .. })),
        "the config change was not applied either: {after}"
    );
}

#[test]
fn the_cli_plan_and_apply_converge_on_the_repo_topic_files() {
    let settings = settings();
    require_kafka(&settings);
    let apply = frontier().args(["topics", "apply"]).output().unwrap();
    assert!(apply.status.success(), "{}", String::from_utf8_lossy(&apply.stderr));
    let plan = frontier().args(["topics", "plan"]).output().unwrap();
    assert!(plan.status.success());
    assert_eq!(String::from_utf8_lossy(&plan.stdout).trim(), "no changes: the cluster matches the topic files");
}
