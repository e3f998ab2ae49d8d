//! The bench's traffic: a steady page-fetch load through the edge, probes that time when a
//! changed page turns fresh, the origin's fetch counter, and whole page loads (the page and
//! what it references) through the edge and from a plain origin of the unoptimized site.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::cdn::Manifest;

const EDGE: &str = "http://127.0.0.1:6081";

/// Counts each request the origin answers, by path and content encoding (one per object the
/// edge holds).
pub async fn count_origin_fetch(
    State(counts): State<Arc<DashMap<String, u64>>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let encoding = response.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    *counts.entry(format!("{path}|{encoding}")).or_insert(0) += 1;
    response
}

/// Waits until Varnish sees the bench's origin as healthy (it probes every second).
pub async fn wait_for_backend() -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        let url = format!("{EDGE}/healthz?{}", uuid::Uuid::new_v4());
        if client.get(url).send().await.is_ok_and(|response| response.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("Varnish never saw the bench's origin on 127.0.0.1:8088 as healthy")
}

/// One page fetch of the load.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent.
    pub sent: Instant,
    /// The page (site path without the leading slash).
    pub page: String,
    /// The `ETag` served.
    pub etag: String,
    /// How long it took.
    pub millis: f64,
}

/// A steady load of page fetches through the edge.
pub struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Starts `rate` fetches per second of random `pages`, with a browser's mix of encodings.
    pub fn start(pages: Vec<String>, rate: u32) -> Load {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (recorded, stopped) = (samples.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
            for n in 0u64.. {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stopped.cancelled() => break,
                }
                let Ok(permit) = in_flight.clone().try_acquire_owned() else { continue };
                let page = pages[(n.wrapping_mul(2_654_435_761) % pages.len() as u64) as usize].clone();
                let encoding = match n % 10 {
                    0..=6 => "br, gzip",
                    7 | 8 => "gzip",
                    _ => "identity",
                };
                let (client, recorded) = (client.clone(), recorded.clone());
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let response =
                        client.get(format!("{EDGE}/{page}")).header(header::ACCEPT_ENCODING, encoding).send().await;
                    if let Ok(response) = response {
                        let etag =
                            response.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        let ok = response.bytes().await.is_ok();
                        if ok && let Ok(mut samples) = recorded.lock() {
                            samples.push(Sample { sent, page, etag, millis: sent.elapsed().as_secs_f64() * 1000.0 });
                        }
                    }
                    drop(permit);
                });
            }
        });
        Load { samples, stop, task }
    }

    /// The fetches sent at or after `since`, once they are answered.
    pub fn samples_since(&self, since: Instant) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|samples| samples.iter().filter(|s| s.sent >= since).cloned().collect())
            .unwrap_or_default()
    }

    /// Stops the load; fetches answered and their p99 in milliseconds.
    pub async fn stop(self) -> (usize, f64) {
        self.stop.cancel();
        let _ = self.task.await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let millis: Vec<f64> = self.samples.lock().map(|s| s.iter().map(|s| s.millis).collect()).unwrap_or_default();
        (millis.len(), super::percentile(&millis, 0.99))
    }
}

/// Starts polling each changed page through the edge every 10 ms (identity, as the purger's
/// verification does) until it serves its new `ETag`; resolves to each page's milliseconds
/// from `started`.
pub fn probe_until_fresh(
    changed: &BTreeMap<String, String>,
    started: Instant,
) -> impl Future<Output = Vec<f64>> + use<> {
    let client = reqwest::Client::new();
    let probes: Vec<_> = changed
        .iter()
        .map(|(page, etag)| {
            let (client, url, etag) = (client.clone(), format!("{EDGE}/{page}"), etag.clone());
            tokio::spawn(async move {
                while started.elapsed() < Duration::from_secs(20) {
                    let response = client.get(&url).send().await;
                    if let Ok(response) = response {
                        let fresh =
                            response.headers().get(header::ETAG).is_some_and(|v| v.as_bytes() == etag.as_bytes());
                        let _ = response.bytes().await;
                        if fresh {
                            return Some(started.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                None
            })
        })
        .collect();
    async move { futures::future::join_all(probes).await.into_iter().filter_map(|probe| probe.ok().flatten()).collect() }
}

/// One page load: the page and everything it references.
#[derive(Debug, Clone, Copy)]
pub struct PageLoad {
    /// Body bytes received (compressed, where the response was).
    pub bytes: u64,
    /// From the page's request to the last reference's body.
    pub millis: f64,
}

/// `count` page loads of the built site through the edge (brotli, after one warm-up load per
/// page) and of the unoptimized source straight from a plain origin over `src`.
pub async fn page_loads(
    src: &Path,
    manifest: &Manifest,
    pages: &[String],
    count: usize,
) -> anyhow::Result<(Vec<PageLoad>, Vec<PageLoad>)> {
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let plain = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(plain_file).with_state(Arc::new(src.to_owned()));
    tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await });

    let client = reqwest::Client::new();
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for n in 0..count {
        let page = &pages[n % pages.len()];
        let entry = manifest.entries.get(page).with_context(|| format!("{page} in the manifest"))?;
        let built: Vec<String> =
            std::iter::once(entry.file.clone()).chain(references(manifest, page, |e| e.file.clone())).collect();
        let source: Vec<String> =
            std::iter::once(entry.src.clone()).chain(references(manifest, page, |e| e.src.clone())).collect();
        if n < pages.len() {
            load_page(&client, EDGE, &built, "br, gzip, zstd").await?;
        }
        ours.push(load_page(&client, EDGE, &built, "br, gzip, zstd").await?);
        baseline.push(load_page(&client, &plain, &source, "identity").await?);
    }
    Ok((ours, baseline))
}

/// What loading `page` fetches besides it: stylesheets, assets and imports, transitively.
fn references(manifest: &Manifest, page: &str, name: impl Fn(&crate::cdn::ManifestEntry) -> String) -> Vec<String> {
    let by_file: BTreeMap<&str, &crate::cdn::ManifestEntry> =
        manifest.entries.values().map(|e| (e.file.as_str(), e)).collect();
    let mut seen = BTreeSet::new();
    let mut queue: Vec<&crate::cdn::ManifestEntry> = manifest.entries.get(page).into_iter().collect();
    let mut found = Vec::new();
    while let Some(entry) = queue.pop() {
        let next = entry
            .css
            .iter()
            .chain(&entry.assets)
            .filter_map(|file| by_file.get(file.as_str()).copied())
            .chain(entry.imports.iter().filter_map(|key| manifest.entries.get(key)));
        for reference in next {
            if seen.insert(reference.file.clone()) {
                found.push(name(reference));
                queue.push(reference);
            }
        }
    }
    found
}

async fn load_page(client: &reqwest::Client, base: &str, files: &[String], encoding: &str) -> anyhow::Result<PageLoad> {
    let started = Instant::now();
    let fetch = |file: &String| {
        let request = client.get(format!("{base}/{file}")).header(header::ACCEPT_ENCODING, encoding);
        async move {
            let response = request.send().await?;
            if !response.status().is_success() {
                bail!("{} answered {}", response.url(), response.status());
            }
            Ok(response.bytes().await?.len() as u64)
        }
    };
    let mut bytes = fetch(&files[0]).await?;
    // A browser's six connections per origin.
    let rest: Vec<anyhow::Result<u64>> =
        futures::stream::iter(files[1..].iter().map(fetch)).buffer_unordered(6).collect().await;
    for size in rest {
        bytes += size?;
    }
    Ok(PageLoad { bytes, millis: started.elapsed().as_secs_f64() * 1000.0 })
}

/// The unoptimized site as a plain static server sends it: the source files, no compression.
async fn plain_file(State(root): State<Arc<PathBuf>>, request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    if path.split('/').any(|part| part == ".." || part.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(root.join(path)).await {
        Ok(bytes) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream().to_string();
            ([(header::CONTENT_TYPE, mime)], bytes).into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
