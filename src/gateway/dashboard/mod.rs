//! The live dashboard at `/optimization/performance/dashboard`: a page built from `dashboard/`
//! (uPlot, bundled by esbuild: `ops/dashboard/build`) and one event stream of samples.
//!
//! ```text
//! GET /optimization/performance/dashboard              anyone   the page (no data in it)
//! GET /optimization/performance/dashboard/assets/{f}   anyone   its script and style
//! GET /optimization/performance/dashboard/events       viewer   layout, then a sample per refresh (SSE)
//! ```
//!
//! One sampler per gateway queries Prometheus and Alertmanager once per refresh, and only while
//! someone watches: a hundred open pages cost the same queries as one.

pub mod grafana;
pub mod panels;
pub mod sources;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use self::panels::SECTIONS;
use self::sources::MetricSources;
use super::ApiError;
use super::keys::Role;
use super::routes::{GatewayState, with_headers};
use crate::config::{InvalidSetting, positive};

/// The page's path.
pub const PAGE: &str = "/optimization/performance/dashboard";

/// `[gateway.dashboard]`: where the live page's numbers and files come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSettings {
    /// Base URL of the Prometheus that scrapes the workers (its `/api/v1/query`).
    pub prometheus_url: String,
    /// Base URL of Alertmanager, for the firing alerts; unset shows none.
    pub alertmanager_url: Option<String>,
    /// The built page (`dashboard/dist`, written by `ops/dashboard/build`).
    pub assets_dir: PathBuf,
    /// How often a sample is taken while someone watches.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// The longest one query may take; a slower source marks its panels, not the sample.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            prometheus_url: "http://127.0.0.1:9090".into(),
            alertmanager_url: Some("http://127.0.0.1:9093".into()),
            assets_dir: PathBuf::from("dashboard/dist"),
            refresh: Duration::from_secs(5),
            query_timeout: Duration::from_secs(3),
        }
    }
}

impl DashboardSettings {
    /// Checks the durations and URLs.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        positive("dashboard.refresh", self.refresh)?;
        positive("dashboard.query_timeout", self.query_timeout)?;
        let urls = std::iter::once(("dashboard.prometheus_url", Some(&self.prometheus_url)))
            .chain(std::iter::once(("dashboard.alertmanager_url", self.alertmanager_url.as_ref())));
        for (name, url) in urls {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(InvalidSetting::new(name, format!("`{url}` is not an http(s) URL")));
            }
        }
        Ok(())
    }
}

/// The sampler's side the routes hold: the newest sample and a bell to wake it.
#[derive(Debug, Clone)]
pub struct DashboardFeed {
    latest: watch::Receiver<Option<Arc<String>>>,
    wake: Arc<Notify>,
    layout: Arc<String>,
}

impl DashboardFeed {
    /// Starts the sampler on the current runtime; it stops with `shutdown`.
    pub fn start(
        settings: &DashboardSettings,
        tracker: &tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<DashboardFeed, reqwest::Error> {
        let sources =
            MetricSources::new(&settings.prometheus_url, settings.alertmanager_url.as_deref(), settings.query_timeout)?;
        let (publish, latest) = watch::channel(None);
        let wake = Arc::new(Notify::new());
        tracker.spawn(sample_while_watched(sources, settings.refresh, publish, wake.clone(), shutdown));
        Ok(DashboardFeed { latest, wake, layout: Arc::new(layout(settings.refresh).to_string()) })
    }
}

/// The page's layout event: sections and panels, without their queries.
fn layout(refresh: Duration) -> Value {
    let sections: Vec<Value> = SECTIONS
        .iter()
        .map(|section| {
            let panels: Vec<Value> = section
                .panels
                .iter()
                .map(|panel| json!({ "id": panel.id, "title": panel.title, "unit": panel.unit, "kind": panel.kind }))
                .collect();
            json!({ "title": section.title, "panels": panels })
        })
        .collect();
    json!({ "refresh_ms": refresh.as_millis() as u64, "sections": sections })
}

/// Takes a sample every `refresh` while a stream is open (the feed's own receiver is one), and
/// sleeps until woken otherwise.
async fn sample_while_watched(
    sources: MetricSources,
    refresh: Duration,
    publish: watch::Sender<Option<Arc<String>>>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        if publish.receiver_count() <= 1 {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
            }
        }
        let sample = tokio::select! {
            () = shutdown.cancelled() => return,
            sample = take_sample(&sources) => sample,
        };
        publish.send_replace(Some(Arc::new(sample.to_string())));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(refresh) => {}
        }
    }
}

/// Every panel's queries (concurrently) and the firing alerts, as one sample event's data.
async fn take_sample(sources: &MetricSources) -> Value {
    let panels = futures::future::join_all(panels::panels().map(|panel| async move {
        let answers = futures::future::join_all(panel.queries.iter().map(|query| sources.query(query))).await;
        let mut series = Vec::new();
        for answer in answers {
            match answer {
                Ok(values) => series.extend(values),
                Err(error) => {
                    super::metrics::dashboard_source_failed("prometheus");
                    tracing::debug!(panel = panel.id, %error, "a dashboard query failed");
                    return (panel.id, json!({ "error": error.to_string() }));
                }
            }
        }
        (panel.id, json!({ "series": series }))
    }))
    .await;
    let alerts = match sources.firing_alerts().await {
        Ok(alerts) => json!(alerts),
        Err(error) => {
            super::metrics::dashboard_source_failed("alertmanager");
            tracing::debug!(%error, "the dashboard's alert list failed");
            json!([{ "name": "alerts unavailable", "severity": "unknown", "summary": error.to_string(),
                     "source": "gateway", "since_ms": null }])
        }
    };
    let panels: Map<String, Value> = panels.into_iter().map(|(id, value)| (id.to_owned(), value)).collect();
    json!({ "at_ms": crate::clock::now_millis(), "panels": panels, "alerts": alerts })
}

/// `GET .../events`: the layout, then every new sample, until the caller leaves or the gateway
/// stops. Viewers and above; charged once to the quota when it opens.
pub async fn events(State(state): State<Arc<GatewayState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = state.admit(&headers, Role::Viewer).await?;
    let feed = &state.dashboard;
    let mut latest = feed.latest.clone();
    // The current sample, if any, goes out at once; later ones as they come.
    latest.mark_changed();
    feed.wake.notify_one();
    let opening = Event::default().event("layout").data(feed.layout.as_str());
    let shutdown = state.shutdown.clone();
    let samples = futures::stream::unfold((latest, shutdown), |(mut latest, shutdown)| async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                changed = latest.changed() => changed.ok()?,
            }
            let sample = latest.borrow_and_update().clone();
            if let Some(sample) = sample {
                let event = Event::default().event("sample").data(sample.as_str());
                return Some((Ok::<Event, Infallible>(event), (latest, shutdown)));
            }
        }
    });
    let stream = futures::StreamExt::chain(futures::stream::once(async { Ok(opening) }), samples);
    let response = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    Ok(with_headers(response, &caller.headers))
}

/// `GET /optimization/performance/dashboard`: the page. It holds no data, so it needs no key;
/// the key goes with the event stream's request.
pub async fn page(State(state): State<Arc<GatewayState>>) -> Response {
    asset(&state, "index.html").await
}

/// `GET .../assets/{file}`: the bundle's files (flat names only).
pub async fn assets(State(state): State<Arc<GatewayState>>, Path(file): Path<String>) -> Response {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain || file == "index.html" {
        return ApiError::not_found("no_such_asset", format!("no dashboard asset `{file}`")).into_response();
    }
    asset(&state, &file).await
}

/// One file of the built page with strict headers, or 404 / 503 saying what is missing.
async fn asset(state: &GatewayState, file: &str) -> Response {
    let dir = &state.settings.dashboard.assets_dir;
    let path = dir.join(file);
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && file != "index.html" => {
            return ApiError::not_found("no_such_asset", format!("no dashboard asset `{file}`")).into_response();
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "the dashboard page is unreadable");
            let message = format!(
                "the dashboard is not built at {} ({error}): run ops/dashboard/build (npm ci and npm run build in dashboard/)",
                dir.display()
            );
            return ApiError::unavailable("dashboard_not_built", message).into_response();
        }
    };
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime.essence_str()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    // The page runs only its own bundle and talks only to this gateway.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
