//! `frontier health-check` against the real stack.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use common::*;

#[test]
fn health_check_passes_when_everything_is_up() {
    let settings = settings();
    require_kafka(&settings);
    assert!(frontier().args(["topics", "apply"]).status().unwrap().success());
    let out = frontier().arg("health-check").output().unwrap();
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
    let out = frontier().arg("health-check").env("FRONTIER_REDIS__URL", "redis://127.0.0.1:1").output().unwrap();
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
