//! The live dashboard: the page is public and locked down, its event stream needs a viewer key,
//! its numbers come from the stack's Prometheus (scraping this test's gateway), a source that is
//! down marks its panels rather than failing the page, and Debian's headless Chromium renders
//! the live charts without a console error.

use std::time::{Duration, Instant};

use frontier::gateway::dashboard::panels;
use frontier::gateway::keys::Role;
use serde_json::Value;

use super::World;
use super::common::{START_HINT, free_scraped_port, repo};

/// The page's path on the gateway.
const PAGE: &str = "/optimization/performance/dashboard";

/// How long a test waits for Prometheus to have scraped what the panels need (two scrapes of
/// 5 s make a rate).
const SCRAPE_PATIENCE: Duration = Duration::from_secs(90);

/// One server-sent event.
#[derive(Debug)]
struct SseEvent {
    name: String,
    data: Value,
}

/// Reads a dashboard event stream, one event at a time.
struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

impl EventReader {
    async fn open(world: &World, base: &str, key: &str) -> EventReader {
        let response =
            world.http.get(format!("{base}{PAGE}/events")).bearer_auth(key).send().await.expect("the gateway answers");
        assert_eq!(response.status(), 200, "the events stream opens for a viewer");
        EventReader { response, buffer: String::new() }
    }

    /// The next event (keep-alive comments skipped), within `patience`.
    async fn next(&mut self, patience: Duration) -> SseEvent {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return SseEvent { name, data: serde_json::from_str(&data).expect("event data is JSON") };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk()).await;
            let chunk = chunk.expect("an event within the patience").expect("the stream stays open");
            let chunk = chunk.expect("the stream does not end");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next sample event.
    async fn sample(&mut self, patience: Duration) -> Value {
        let event = self.next(patience).await;
        assert_eq!(event.name, "sample", "after the layout come samples: {event:?}");
        event.data
    }
}

/// Series names of `panel` in `sample`.
fn series_of(sample: &Value, panel: &str) -> Vec<String> {
    sample["panels"][panel]["series"]
        .as_array()
        .map(|series| series.iter().filter_map(|s| s["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_page_is_public_and_locked_down_but_its_events_need_a_key() {
    let mut world = World::new("dashboard-auth").await;
    let base = world.gateway(|_| {}).await;

    let page = world.http.get(format!("{base}{PAGE}")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the page needs no key (it holds no data); is it built? ops/dashboard/build");
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'"), "the page runs only its own bundle: {csp}");
    assert!(page.text().await.unwrap().contains("/optimization/performance/dashboard/assets/app.js"));

    let anonymous = world.http.get(format!("{base}{PAGE}/events")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let escape = world.http.get(format!("{base}{PAGE}/assets/..%2F..%2FCargo.toml")).send().await.unwrap();
    assert_eq!(escape.status(), 404, "asset names are flat: no way out of the bundle");
    world.finish().await;
}

#[tokio::test]
async fn a_source_that_is_down_marks_its_panels_and_the_stream_goes_on() {
    let mut world = World::new("dashboard-down").await;
    let key = world.key("acme", Role::Viewer).await;
    let base = world
        .gateway(|settings| {
            let dashboard = &mut settings.gateway.dashboard;
            dashboard.prometheus_url = "http://127.0.0.1:9".into();
            dashboard.alertmanager_url = Some("http://127.0.0.1:9".into());
            dashboard.refresh = Duration::from_millis(300);
        })
        .await;
    let mut events = EventReader::open(&world, &base, &key).await;
    let layout = events.next(Duration::from_secs(5)).await;
    assert_eq!(layout.name, "layout");
    for _ in 0..2 {
        let sample = events.sample(Duration::from_secs(10)).await;
        for panel in panels::panels() {
            let error = sample["panels"][panel.id]["error"].as_str().unwrap_or_default();
            assert!(error.starts_with("prometheus"), "panel {} says which source failed: {sample}", panel.id);
        }
        assert_eq!(sample["alerts"][0]["name"], "alerts unavailable", "{sample}");
    }
    world.finish().await;
}

#[tokio::test]
async fn chromium_renders_live_charts_from_prometheus_without_console_errors() {
    let browser_script = repo().join("dashboard/test/browser.mjs");
    assert!(
        repo().join("dashboard/node_modules/playwright-core").is_dir()
            && repo().join("dashboard/dist/app.js").is_file(),
        "the dashboard is not built: run ops/dashboard/build (ops/test does)"
    );
    // This test process is a scraped worker: Prometheus sees its gateway's metrics.
    let port = free_scraped_port();
    frontier::telemetry::serve_metrics(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .expect("the metrics exporter starts");
    frontier::telemetry::announce_worker("gateway");

    let mut world = World::new("dashboard-live").await;
    world.serving_worker().await;
    let key = world.key("acme", Role::Viewer).await;
    let operator = world.key("acme", Role::Operator).await;
    let base = world.gateway(|settings| settings.gateway.dashboard.refresh = Duration::from_secs(1)).await;

    // The stream itself: the layout names every panel, then samples carry Prometheus's numbers
    // once it has scraped this process twice (a rate needs two points).
    let mut events = EventReader::open(&world, &base, &key).await;
    let layout = events.next(Duration::from_secs(5)).await;
    assert_eq!(layout.name, "layout");
    let laid_out: Vec<&str> = layout.data["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|section| section["panels"].as_array().unwrap().iter())
        .filter_map(|panel| panel["id"].as_str())
        .collect();
    assert_eq!(laid_out, panels::panels().map(|panel| panel.id).collect::<Vec<_>>());

    let started = Instant::now();
    let sample = loop {
        // Traffic for the latency, cache and group panels: analyses answered by a serving
        // worker of this process, through the gateway.
        for symbol in ["SYN0001", "SYN0002", "SYN0003"] {
            let body = format!(r#"{{"params": {{"symbol": "{symbol}", "window_days": 30}}}}"#);
            world.post(&base, "/v1/analysis/market.volatility", Some(&operator), &body).await;
        }
        let sample = events.sample(Duration::from_secs(10)).await;
        let instances = series_of(&sample, "group_instances");
        let drawn = ["gateway_latency", "serve_latency", "cache_hit_ratio"];
        if instances.iter().any(|name| name == "gateway")
            && drawn.iter().all(|panel| !series_of(&sample, panel).is_empty())
        {
            break sample;
        }
        if let Some(error) = sample["panels"]["group_instances"]["error"].as_str() {
            panic!("Prometheus is not answering ({error}): {START_HINT}");
        }
        assert!(
            started.elapsed() < SCRAPE_PATIENCE,
            "Prometheus never showed this gateway (metrics on 127.0.0.1:{port}, job frontier): {sample}"
        );
    };
    assert!(sample["at_ms"].as_i64().unwrap() > 0);
    drop(events);

    // The page in a real browser.
    let screenshot = repo().join("target/dashboard.png");
    let url = format!("{base}{PAGE}#key={key}");
    // tokio's Command: the gateway serving the page runs on this test's runtime.
    let output = tokio::process::Command::new("node")
        .arg(&browser_script)
        .args(["--url", &url, "--screenshot"])
        .arg(&screenshot)
        .args(["--min-samples", "3", "--timeout-s", "60"])
        .output()
        .await
        .unwrap_or_else(|error| panic!("node is not installed ({error}): {START_HINT}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.code() != Some(2), "Chromium did not start: {stderr} ({START_HINT})");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("the browser script printed no report ({error}): {stdout} {stderr}"));
    assert!(output.status.success(), "the page never received its samples: {report}");
    for list in ["console_errors", "page_errors", "failed_requests"] {
        assert_eq!(report[list], Value::Array(Vec::new()), "{list}: {report}");
    }
    assert_eq!(report["state"], "live", "{report}");
    for panel in ["group_instances", "gateway_latency", "serve_latency", "cache_hit_ratio"] {
        assert!(report["panels"][panel]["points"].as_u64().unwrap_or(0) > 0, "panel {panel} drew nothing: {report}");
    }
    for panel in panels::panels() {
        assert!(report["panels"].get(panel.id).is_some(), "panel {} is on the page: {report}", panel.id);
    }
    assert!(screenshot.is_file(), "the screenshot is written to {}", screenshot.display());
    world.finish().await;
}
