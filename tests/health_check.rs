//! `frontier health-check` against the real stack.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use common::*;

/// Consumer groups of this test's own (none of them ever consumed), so groups other tests or
/// the demo left behind do not judge it.
fn fresh_groups() -> (&'static str, String) {
    ("FRONTIER_KAFKA__GROUP_PREFIX", unique("health"))
}

#[test]
fn health_check_passes_when_everything_is_up() {
    let settings = settings();
    require_kafka(&settings);
    assert!(frontier().args(["topics", "apply"]).status().unwrap().success());
    let (key, prefix) = fresh_groups();
    let out = frontier().arg("health-check").env(key, prefix).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for service in ["kafka", "topics", "redis", "postgres"] {
        assert!(stdout.lines().any(|l| l.starts_with(service) && l.contains(" ok ")), "{service} not ok:\n{stdout}");
    }
}

#[test]
fn health_check_fails_naming_the_service_that_is_down() {
    let settings = settings();
    require_kafka(&settings);
    // Nothing listens on port 1.
    let (key, prefix) = fresh_groups();
    let out = frontier()
        .arg("health-check")
        .env(key, prefix)
        .env("FRONTIER_REDIS__URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.lines().any(|l| l.starts_with("redis") && l.contains("FAILED")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("kafka") && l.contains(" ok ")), "{stdout}");
}

#[test]
fn health_check_names_missing_topics() {
    let settings = settings();
    require_kafka(&settings);
    let missing = unique("never.created");
    let dir = topic_dir(&[(
        &missing,
        "partitions = 1\nreplication_factor = 1\nmin_insync_replicas = 1\nretention_ms = 1000\ncleanup_policy = \"delete\"\n",
    )]);
    let out = frontier().arg("health-check").env("FRONTIER_PATHS__TOPICS", path_str(dir.path())).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains(&missing) && stdout.contains("frontier topics apply"), "{stdout}");
}

/// The passthrough worker's topics, group prefix and a status report every 2 s, all of this
/// test's own, as environment variables for `frontier`.
async fn passthrough_world(settings: &frontier::settings::Settings) -> Vec<(&'static str, String)> {
    let (input, output, status) = (unique("health.in"), unique("health.out"), unique("health.status"));
    create_topics(settings, &[&input, &output, &status], 1).await;
    vec![
        ("FRONTIER_KAFKA__GROUP_PREFIX", unique("health")),
        ("FRONTIER_WORKERS__PASSTHROUGH__INPUT_TOPIC", input),
        ("FRONTIER_WORKERS__PASSTHROUGH__OUTPUT_TOPIC", output),
        ("FRONTIER_BUS__STATUS_TOPIC", status),
        ("FRONTIER_BUS__STATUS_INTERVAL", "2s".into()),
    ]
}

/// `frontier health-check --format json` in `env`: its exit success and report.
fn json_report(env: &[(&str, String)]) -> (bool, serde_json::Value) {
    let mut command = frontier();
    command.args(["health-check", "--format", "json"]);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}):\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success(), report)
}

fn passthrough(report: &serde_json::Value) -> serde_json::Value {
    let workers = report["workers"].as_array().expect("a workers list");
    workers
        .iter()
        .find(|w| w["worker"] == "passthrough")
        .cloned()
        .unwrap_or_else(|| panic!("no passthrough in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_is_reported_with_its_members_reporting_instance_and_lag() {
    let settings = settings();
    require_kafka(&settings);
    assert!(frontier().args(["topics", "apply"]).status().unwrap().success());
    let env = passthrough_world(&settings).await;
    let mut worker = common::process::Worker::start("passthrough", &env);
    let started = std::time::Instant::now();
    let (healthy, report) = loop {
        worker.assert_running();
        let (healthy, report) = json_report(&env);
        let seen = passthrough(&report);
        if seen["members"] == 1 && seen["instances"].as_array().is_some_and(|i| i.len() == 1) {
            break (healthy, report);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the worker never showed up:\n{report:#}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let seen = passthrough(&report);
    assert!(healthy, "{report:#}");
    assert_eq!((seen["result"]["ok"].as_bool(), seen["lag"].as_u64()), (Some(true), Some(0)), "{seen:#}");
    assert!(seen["instances"][0]["reported_s_ago"].as_f64().unwrap() < 10.0, "{seen:#}");
    let services: Vec<&str> =
        report["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(services, ["kafka", "topics", "redis", "postgres"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_group_that_stopped_with_messages_waiting_fails_the_check() {
    let settings = settings();
    require_kafka(&settings);
    assert!(frontier().args(["topics", "apply"]).status().unwrap().success());
    let env = passthrough_world(&settings).await;
    let value = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap();
    let (input, group) = (
        value("FRONTIER_WORKERS__PASSTHROUGH__INPUT_TOPIC"),
        format!("{}.passthrough", value("FRONTIER_KAFKA__GROUP_PREFIX")),
    );
    produce(&settings, &input, vec![(None, b"first".to_vec())]).await;
    // The group consumed once and left: it is deployed, and nobody consumes it now.
    drop(member_after(&group, &input, 1));
    produce(&settings, &input, (0..3).map(|n| (None, format!("late {n}").into_bytes())).collect()).await;

    let (healthy, report) = json_report(&env);
    let seen = passthrough(&report);
    assert!(!healthy, "{report:#}");
    assert_eq!((seen["members"].as_u64(), seen["lag"].as_u64()), (Some(0), Some(3)), "{seen:#}");
    assert!(seen["result"]["detail"].as_str().unwrap().contains("3 message(s) wait"), "{seen:#}");

    let mut services_only = frontier();
    services_only.args(["health-check", "--services-only"]).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = services_only.output().unwrap();
    assert!(out.status.success(), "the services alone are fine: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("worker "), "no worker is judged");
}
