//! Prometheus (started by `ops/stack up`) scrapes the workers: its config and rules pass
//! promtool, and a running worker shows up with `up == 1` and its `frontier_` metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PROMETHEUS: &str = "http://127.0.0.1:9090";

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("promtool is not installed ({e}): {START_HINT}"));
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_prometheus_configs_pass_promtool() {
    promtool(&["check", "config", "ops/prometheus/local.yml"]);
    promtool(&["check", "config", "ops/prometheus/prometheus.yml"]);
}

#[test]
fn the_prometheus_rules_pass_promtool() {
    promtool(&["check", "rules", "ops/prometheus/rules.yml"]);
}

#[test]
fn the_autoscaler_alerts_fire_on_the_failures_they_name_and_not_on_a_blip() {
    promtool(&["test", "rules", "ops/prometheus/tests/autoscaler.yml"]);
}

#[test]
fn the_cdn_alerts_fire_on_the_failures_they_name_and_not_on_a_blip() {
    promtool(&["test", "rules", "ops/prometheus/tests/cdn.yml"]);
}

#[test]
fn the_bus_and_cache_alerts_fire_on_the_faults_they_name_even_on_a_counters_first_increment() {
    promtool(&["test", "rules", "ops/prometheus/tests/bus.yml"]);
}

#[test]
fn the_prometheus_rules_cover_every_built_in_rule_slo_and_signal() {
    let rules = std::fs::read_to_string(repo().join("ops/prometheus/rules.yml")).unwrap();
    let mut in_file: Vec<&str> = rules.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")).collect();
    in_file.sort();
    in_file.dedup();
    let defaults = frontier::sla::SlaConfig::default();
    let mut built_in: Vec<&str> = defaults
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .chain(defaults.slos.iter().map(|s| s.name.as_str()))
        .chain(defaults.signals.iter().map(|s| s.name.as_str()))
        .collect();
    built_in.sort();
    assert_eq!(in_file, built_in, "ops/prometheus/rules.yml and the built-in rules (src/sla) differ");
}

/// Runs an instant PromQL query and returns its result vector.
fn query(promql: &str) -> Vec<Value> {
    let body: Value = ureq::get(format!("{PROMETHEUS}/api/v1/query"))
        .query("query", promql)
        .call()
        .unwrap_or_else(|e| panic!("Prometheus is not answering on {PROMETHEUS} ({e}): {START_HINT}"))
        .body_mut()
        .read_json()
        .expect("Prometheus answers JSON");
    body["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn prometheus_scrapes_a_running_worker() {
    let settings = settings();
    require_kafka(&settings);
    query("up"); // fails with instructions when Prometheus is down
    assert!(frontier().args(["topics", "apply"]).status().unwrap().success());
    let port = free_scraped_port();
    let mut worker = frontier()
        .args(["run", "passthrough"])
        .env("FRONTIER_METRICS__LISTEN", format!("127.0.0.1:{port}"))
        .env("FRONTIER_WORKERS__PASSTHROUGH__GROUP_ID", unique("prometheus.group"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let instance = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut scraped = false;
    while !scraped && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        scraped = !query(&format!("up{{job=\"frontier\",instance=\"{instance}\"}} == 1")).is_empty();
    }
    let metrics = query(&format!("count by (__name__) ({{__name__=~\"frontier_.+\",instance=\"{instance}\"}})"));
    let _ = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status();
    let _ = worker.wait();
    assert!(scraped, "Prometheus never saw {instance} up (scrape config ops/prometheus/local.yml)");
    assert!(!metrics.is_empty(), "no frontier_ metric scraped from {instance}");
}

/// The `_count` of `frontier_bus_stage_duration_seconds` per stage in a /metrics page, for `worker`.
fn stage_counts(page: &str, worker: &str) -> Vec<(String, u64)> {
    let worker_label = format!("worker=\"{worker}\"");
    let mut counts: Vec<(String, u64)> = page
        .lines()
        .filter(|line| line.starts_with("frontier_bus_stage_duration_seconds_count{") && line.contains(&worker_label))
        .filter_map(|line| {
            let stage = line.split("stage=\"").nth(1)?.split('"').next()?.to_owned();
            let count = line.rsplit(' ').next()?.parse().ok()?;
            Some((stage, count))
        })
        .collect();
    counts.sort();
    counts
}

#[tokio::test]
async fn a_worker_times_every_stage_of_its_messages_on_its_metrics_page() {
    let settings = settings();
    require_kafka(&settings);
    let [input, output] = process::topics(&settings, "stages", ["in", "out"]).await;
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut worker = process::Worker::start(
        "passthrough",
        &[
            ("FRONTIER_METRICS__LISTEN", format!("127.0.0.1:{port}")),
            ("FRONTIER_WORKERS__PASSTHROUGH__INPUT_TOPIC", input.clone()),
            ("FRONTIER_WORKERS__PASSTHROUGH__OUTPUT_TOPIC", output.clone()),
            ("FRONTIER_WORKERS__PASSTHROUGH__GROUP_ID", unique("stages.group")),
        ],
    );
    let catalog = catalog();
    let records = (0..5).map(|i| (None, request_bytes(&catalog, &format!("stage-{i}")))).collect();
    produce(&settings, &input, records).await;
    process::await_messages(&settings, &mut worker, &output, 5);

    // A message's stages are recorded when its offset is stored, just after its copy is
    // acknowledged: give the loop a moment.
    let expected: Vec<(String, u64)> =
        ["deliver", "handle", "kafka", "settle", "wait"].iter().map(|stage| (stage.to_string(), 5)).collect();
    let started = Instant::now();
    let mut counts = Vec::new();
    while counts != expected && started.elapsed() < process::PATIENCE {
        worker.assert_running();
        let page = ureq::get(format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .ok()
            .and_then(|mut response| response.body_mut().read_to_string().ok())
            .unwrap_or_default();
        counts = stage_counts(&page, "passthrough");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        counts,
        expected,
        "each of the 5 messages is timed in every stage; the worker's log:\n{}",
        worker.log_text()
    );
}
