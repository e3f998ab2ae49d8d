//! Configuration as an operator meets it: files per environment, FRONTIER_* overrides, and
//! errors that name the key. No services needed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use common::*;

fn config(env: &[(&str, &str)]) -> std::process::Output {
    let mut command = frontier();
    command.arg("config");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn environment_variables_override_the_file() {
    let out =
        config(&[("FRONTIER_KAFKA__BOOTSTRAP_SERVERS", "broker-a:9093"), ("FRONTIER_BUS__SHUTDOWN_TIMEOUT", "7s")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("bootstrap_servers = \"broker-a:9093\""), "{stdout}");
    assert!(stdout.contains("shutdown_timeout = \"7s\""), "{stdout}");
}

#[test]
fn the_environment_picks_the_file() {
    let out = frontier().args(["config", "--environment", "production"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kafka-0.prod.internal:9092"), "{stdout}");
    assert!(stdout.contains("format = \"json\""), "{stdout}");
}

#[test]
fn kafka_client_settings_pass_through_with_secrets_masked() {
    let out = config(&[
        ("FRONTIER_KAFKA__CLIENT__SASL_PASSWORD", "hunter2"),
        ("FRONTIER_KAFKA__CLIENT__SESSION_TIMEOUT_MS", "6000"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("session_timeout_ms = \"6000\""), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn an_invalid_value_stops_the_start_naming_the_key() {
    let out = config(&[("FRONTIER_KAFKA__LINGER", "soon")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`kafka.linger`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unknown_key_is_refused_not_ignored() {
    let out = config(&[("FRONTIER_BUS__MAX_INFLIGHT", "5")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("`bus.max_inflight`") && stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn settings_the_bus_owns_cannot_be_overridden() {
    let out = config(&[("FRONTIER_KAFKA__CLIENT__ENABLE_AUTO_OFFSET_STORE", "true")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("`kafka.client.enable.auto.offset.store`") && stderr.contains("reserved"), "{stderr}");
}

#[test]
fn an_unknown_environment_is_refused() {
    let out = frontier().args(["config", "--environment", "qa"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown environment `qa`"));
}

#[test]
fn an_autoscaled_group_must_name_a_worker() {
    let out = config(&[("FRONTIER_WORKERS__AUTOSCALER__GROUPS__SERVICE__MIN_INSTANCES", "2")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("workers.autoscaler.groups.service") && stderr.contains("serve"), "{stderr}");
}
