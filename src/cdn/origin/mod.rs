//! The asset origin (`frontier run asset-origin`): serves the live build from the
//! [`AssetStore`] to the edge, with what an edge and a browser need to cache it well.
//!
//! - The precompressed variant the client accepts and is smallest (`Content-Encoding`,
//!   `Vary: Accept-Encoding`), with an `ETag` per representation: the file's SHA-256, with the
//!   encoding appended for a variant, so the purger can check what an edge serves.
//! - Hashed files: `Cache-Control: public, max-age=31536000, immutable`; their content never
//!   changes under their name. A file of a replaced build is still served within the grace.
//! - Entry points and other stable files: a short browser lifetime with
//!   `stale-while-revalidate`, and a long `s-maxage` for the edge, which the purger keeps fresh.
//! - `Surrogate-Key` (Fastly's name) and `xkey` (Varnish's) with the file's keys.
//! - `If-None-Match` answered with 304; GET and HEAD only.
//!
//! Which build is live is read from `current.json` on every request for a file, so a deploy is
//! served the moment it is promoted; manifests and file content are content-addressed and
//! cached in memory forever.

pub mod negotiate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::manifest::ManifestEntry;
use super::settings::AssetsSettings;
use super::store::{AssetStore, StoreError};
use crate::clock;

/// Metric names of the origin. Labels: `status` (the HTTP status class, `2xx`..`5xx`) and
/// `encoding` (`br`, `zstd`, `gzip`, `identity`).
pub mod metric {
    /// Requests answered, by status class and encoding.
    pub const REQUESTS: &str = "frontier_origin_requests_total";
    /// Body bytes sent, by encoding.
    pub const BYTES: &str = "frontier_origin_bytes_sent_total";
    /// Seconds to answer a request.
    pub const LATENCY: &str = "frontier_origin_request_seconds";
    /// Requests the store failed (answered 503).
    pub const STORE_ERRORS: &str = "frontier_origin_store_errors_total";

    /// Registers descriptions so `/metrics` explains itself.
    pub fn describe() {
        use metrics::{describe_counter, describe_histogram};
        describe_counter!(REQUESTS, "Asset origin requests, by status class and content encoding.");
        describe_counter!(BYTES, "Body bytes the asset origin sent, by content encoding.");
        describe_histogram!(LATENCY, "Seconds the asset origin took to answer.");
        describe_counter!(STORE_ERRORS, "Requests the asset store failed (answered 503).");
        metrics::counter!(STORE_ERRORS).increment(0);
    }
}

/// Why the origin stopped.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP server failed.
    #[error("serving assets on {address}: {source}")]
    Serve {
        /// Where it listened.
        address: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// A build's entries by file, as the origin looks them up.
#[derive(Debug)]
struct Site {
    by_file: HashMap<String, ManifestEntry>,
}

/// The origin's state: the store and its in-memory caches.
#[derive(Debug, Clone)]
pub struct Origin {
    store: AssetStore,
    settings: Arc<AssetsSettings>,
    sites: moka::future::Cache<String, Arc<Site>>,
    blobs: moka::future::Cache<String, Bytes>,
}

impl Origin {
    /// An origin serving from `store`.
    pub fn new(store: AssetStore, settings: &AssetsSettings) -> Origin {
        let blobs = moka::future::Cache::builder()
            .max_capacity(settings.origin.memory_bytes)
            .weigher(|_: &String, bytes: &Bytes| u32::try_from(bytes.len()).unwrap_or(u32::MAX))
            .build();
        Origin { store, settings: Arc::new(settings.clone()), sites: moka::future::Cache::new(64), blobs }
    }

    async fn site(&self, id: &str) -> Result<Arc<Site>, Arc<StoreError>> {
        let store = self.store.clone();
        self.sites
            .try_get_with(id.to_owned(), async move {
                let manifest = store.manifest(id).await?;
                let by_file = manifest.entries.into_values().map(|entry| (entry.file.clone(), entry)).collect();
                Ok::<_, StoreError>(Arc::new(Site { by_file }))
            })
            .await
    }

    async fn blob(&self, path: String) -> Result<Bytes, Arc<StoreError>> {
        let store = self.store.clone();
        self.blobs.try_get_with(path.clone(), async move { store.get(&path).await }).await
    }

    /// The entry serving `file`: the live build's, else a hashed file of a build retired
    /// within the grace period.
    async fn resolve(&self, file: &str) -> Result<Option<ManifestEntry>, Arc<StoreError>> {
        let Some(current) = self.store.current().await.map_err(Arc::new)? else {
            return Ok(None);
        };
        if let Some(entry) = self.site(&current.manifest).await?.by_file.get(file) {
            return Ok(Some(entry.clone()));
        }
        let grace = i64::try_from(self.settings.grace.as_millis()).unwrap_or(i64::MAX);
        let now = clock::now_millis();
        for retired in current.retired.iter().filter(|retired| now.saturating_sub(retired.retired_at) <= grace) {
            if let Some(entry) = self.site(&retired.manifest).await?.by_file.get(file)
                && !entry.stable
            {
                return Ok(Some(entry.clone()));
            }
        }
        Ok(None)
    }
}

/// Serves `origin` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    origin: Origin,
    shutdown: CancellationToken,
) -> Result<(), OriginError> {
    metric::describe();
    let address = listener.local_addr().map(|address| address.to_string()).unwrap_or_else(|_| "unknown".to_owned());
    tracing::info!(%address, store = origin.store.describe(), "serving assets");
    axum::serve(listener, router(origin))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|source| OriginError::Serve { address, source })
}

/// The origin's routes.
pub fn router(origin: Origin) -> Router {
    Router::new().route("/healthz", get(health)).fallback(asset).with_state(origin)
}

/// The origin's health, never cached: an edge must ask every time, or a dead origin looks
/// alive for a TTL (and a live one dead).
async fn health(State(origin): State<Origin>) -> Response {
    let mut response = match origin.store.current().await {
        Ok(Some(current)) => (StatusCode::OK, format!("ok, serving {}\n", current.manifest)).into_response(),
        Ok(None) => (StatusCode::OK, "ok, nothing published yet\n").into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response(),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn asset(State(origin): State<Origin>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let (response, encoding) = answer(&origin, &method, uri.path(), &headers).await;
    let status = response.status().as_u16();
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(metric::REQUESTS, "status" => class, "encoding" => encoding).increment(1);
    if method == Method::GET
        && let Some(length) = response.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok())
    {
        metrics::counter!(metric::BYTES, "encoding" => encoding).increment(length.parse().unwrap_or(0));
    }
    metrics::histogram!(metric::LATENCY).record(started.elapsed().as_secs_f64());
    response
}

async fn answer(origin: &Origin, method: &Method, path: &str, headers: &HeaderMap) -> (Response, &'static str) {
    if method != Method::GET && method != Method::HEAD {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return (response, "identity");
    }
    let mut file = path.trim_start_matches('/').to_owned();
    if file.is_empty() || file.ends_with('/') {
        file.push_str("index.html");
    }
    let entry = match origin.resolve(&file).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return (not_found(origin), "identity"),
        Err(error) => return (unavailable(&error), "identity"),
    };
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok());
    let encoding = negotiate::choose(accept, entry.size, &entry.encodings);
    let label = encoding_label(encoding.as_deref());
    let etag = etag(&entry.hash, encoding.as_deref());

    let mut response = Response::new(Body::empty());
    let out = response.headers_mut();
    out.insert(header::ETAG, value(&etag));
    out.insert(header::CACHE_CONTROL, value(&cache_control(origin, &entry)));
    if !entry.encodings.is_empty() {
        out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if !entry.surrogate_keys.is_empty() {
        let keys = value(&entry.surrogate_keys.join(" "));
        out.insert("surrogate-key", keys.clone());
        out.insert("xkey", keys);
    }
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if not_modified(headers, &etag) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return (response, label);
    }
    let bytes = match origin.blob(AssetStore::blob_path(&entry.hash, encoding.as_deref())).await {
        Ok(bytes) => bytes,
        Err(error) => return (unavailable(&error), label),
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, value(&content_type(&entry.file)));
    if let Some(encoding) = &encoding {
        out.insert(header::CONTENT_ENCODING, value(encoding));
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    if method == Method::GET {
        *response.body_mut() = Body::from(bytes);
    }
    (response, label)
}

/// The `ETag` of a representation: the identity bytes' SHA-256, with the encoding appended for
/// a variant (strong validators must differ between representations).
pub fn etag(hash: &str, encoding: Option<&str>) -> String {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    match encoding {
        Some(encoding) => format!("\"{hex}-{encoding}\""),
        None => format!("\"{hex}\""),
    }
}

fn cache_control(origin: &Origin, entry: &ManifestEntry) -> String {
    if !entry.stable {
        return "public, max-age=31536000, immutable".to_owned();
    }
    let settings = &origin.settings.origin;
    format!(
        "public, max-age={}, s-maxage={}, stale-while-revalidate={}",
        settings.entry_max_age.as_secs(),
        settings.edge_max_age.as_secs(),
        settings.entry_stale_while_revalidate.as_secs()
    )
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let Some(condition) = headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    // Weak comparison (RFC 9110 §13.1.2), as If-None-Match asks.
    condition.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

fn not_found(origin: &Origin) -> Response {
    let lifetime = format!("public, max-age={}", origin.settings.origin.not_found_max_age.as_secs());
    let mut response = (StatusCode::NOT_FOUND, "not found\n").into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, value(&lifetime));
    response
}

fn unavailable(error: &StoreError) -> Response {
    tracing::warn!(%error, "asset store failed");
    metrics::counter!(metric::STORE_ERRORS).increment(1);
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, "asset store unavailable\n").into_response();
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert(header::RETRY_AFTER, HeaderValue::from(1));
    response
}

fn content_type(file: &str) -> String {
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    match (mime.type_(), mime.subtype().as_str()) {
        (mime_guess::mime::TEXT, _) | (mime_guess::mime::APPLICATION, "javascript" | "json") => {
            format!("{mime}; charset=utf-8")
        }
        _ => mime.to_string(),
    }
}

fn encoding_label(encoding: Option<&str>) -> &'static str {
    match encoding {
        Some("br") => "br",
        Some("zstd") => "zstd",
        Some("gzip") => "gzip",
        Some(_) => "other",
        None => "identity",
    }
}

/// A header value from text the origin built (hashes, numbers, validated keys and names):
/// visible ASCII, so it cannot fail; an empty value if it ever did.
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests;
