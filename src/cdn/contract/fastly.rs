//! Fastly's purge API as a contract server (see [`crate::cdn::provider::fastly`] for the
//! documentation each rule comes from):
//!
//! - `POST /service/{service_id}/purge`: keys from a JSON body `{"surrogate_keys": [...]}`
//!   (no other field) or else a `Surrogate-Key` header; 1 to 256 keys, none empty, none with
//!   whitespace (keys are space-separated on the wire), none over 1,024 bytes; answers
//!   `{key: purge_id, ...}`;
//! - `POST /service/{service_id}/purge/{key}`: one key, answers `{"status": "ok", "id": …}`;
//! - `POST /purge/{host}/{path}`: one URL, answers `{"status": "ok", "id": …}`;
//! - `Fastly-Key` must be the token on every request: URL purges are open by default, but a
//!   service that sets `Fastly-Purge-Requires-Auth` (the setting Fastly recommends) checks it;
//! - `Fastly-Soft-Purge` (any value) makes a purge soft;
//! - errors are Fastly's `{"msg": …, "detail": …}`; 401 for a missing or wrong token, 404 for
//!   an unknown service or path, 400 for a malformed request;
//! - a token bucket (Fastly documents none for key and URL purges, so it is configured) answers
//!   429 with `Fastly-RateLimit-Remaining: 0` and `Fastly-RateLimit-Reset` (epoch seconds), the
//!   headers Fastly documents, and no `Retry-After`, which Fastly does not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{ContractServer, Recorder, TokenBucket, header, injected_headers, json_answer, lock, retry_after_seconds};
use crate::cdn::provider::PurgeMethod;

/// Most keys one bulk purge takes.
const MAX_KEYS: usize = 256;
/// Longest surrogate key, in bytes: the per-key limit Fastly's surrogate-key guide states for
/// `Surrogate-Key` (recalled from that guide; the stored copies searched did not show the line).
const MAX_KEY_BYTES: usize = 1024;

/// What the server accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct FastlyContract {
    /// The one service it knows.
    pub service_id: String,
    /// The API token `Fastly-Key` must carry.
    pub token: String,
    /// Its bucket's refill rate, requests per second.
    pub requests_per_second: f64,
    /// Its bucket's size.
    pub burst: u32,
}

impl FastlyContract {
    /// A service with the adapter's default bucket (10/s, burst 50).
    pub fn new(service_id: impl Into<String>, token: impl Into<String>) -> FastlyContract {
        FastlyContract { service_id: service_id.into(), token: token.into(), requests_per_second: 10.0, burst: 50 }
    }
}

struct Server {
    config: FastlyContract,
    recorder: Arc<Recorder>,
    bucket: Mutex<TokenBucket>,
    ids: AtomicU64,
}

/// Serves Fastly's purge API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: FastlyContract,
    shutdown: CancellationToken,
) -> std::io::Result<ContractServer> {
    let recorder = Arc::new(Recorder::default());
    let bucket = Mutex::new(TokenBucket::new(config.requests_per_second, config.burst));
    let server = Arc::new(Server { config, recorder: recorder.clone(), bucket, ids: AtomicU64::new(1) });
    let router = axum::Router::new().fallback(handle).with_state(server);
    ContractServer::spawn(listener, router, recorder, shutdown)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    surrogate_keys: Vec<String>,
}

async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(injected) = server.recorder.arrive() {
        return error(injected.status, &injected_headers(&injected), "Injected failure", "told to fail");
    }
    if method != Method::POST {
        return error(405, &[], "Method not allowed", &format!("{method} {}", uri.path()));
    }
    if header(&headers, "fastly-key") != Some(server.config.token.as_str()) {
        return error(401, &[], "Provided credentials are missing or invalid", "");
    }
    let soft = headers.contains_key("fastly-soft-purge");
    let path = uri.path();
    let (method, items, operation, bulk) = if let Some(rest) = path.strip_prefix("/service/") {
        let (service, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if service != server.config.service_id {
            return error(404, &[], "Record not found", &format!("Cannot find service '{service}'"));
        }
        let keys = match tail {
            "purge" => match bulk_keys(&headers, &body) {
                Ok(keys) => keys,
                Err(detail) => return error(400, &[], "Bad request", &detail),
            },
            _ => match tail.strip_prefix("purge/") {
                Some(key) if !key.is_empty() && !key.contains('/') => vec![key.to_owned()],
                _ => return error(404, &[], "Not found", path),
            },
        };
        if let Err(detail) = check_keys(&keys) {
            return error(400, &[], "Bad request", &detail);
        }
        (PurgeMethod::SurrogateKey, keys, "surrogate_keys", tail == "purge")
    } else if let Some(cached) = path.strip_prefix("/purge/") {
        match cached.split_once('/') {
            Some((host, _)) if !host.is_empty() => {}
            _ => return error(400, &[], "Bad request", "the cached URL must be host/path"),
        }
        let query = uri.query().map(|query| format!("?{query}")).unwrap_or_default();
        (PurgeMethod::Url, vec![format!("{cached}{query}")], "url", false)
    } else {
        return error(404, &[], "Not found", path);
    };
    {
        let mut bucket = lock(&server.bucket);
        let wait = bucket.wait_for(1).unwrap_or_default();
        if !wait.is_zero() {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let reset = now + retry_after_seconds(wait);
            let limit_headers =
                [("Fastly-RateLimit-Remaining", "0".to_owned()), ("Fastly-RateLimit-Reset", reset.to_string())];
            return error(429, &limit_headers, "Too many requests", "purge rate limit exceeded");
        }
        bucket.take(1);
    }
    let ids: Vec<String> = items.iter().map(|_| server.next_id()).collect();
    let answer = if bulk {
        serde_json::Value::Object(items.iter().cloned().zip(ids.into_iter().map(serde_json::Value::String)).collect())
    } else {
        serde_json::json!({ "status": "ok", "id": ids.first() })
    };
    server.recorder.record(method, items, soft, operation);
    json_answer(200, &[], &answer, "application/json")
}

impl Server {
    /// A purge id in Fastly's shape (`108-1391560174-974124`).
    fn next_id(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        format!("108-{now}-{}", self.ids.fetch_add(1, Ordering::Relaxed))
    }
}

/// A bulk purge's keys: the JSON body when there is one, else the `Surrogate-Key` header.
fn bulk_keys(headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, String> {
    if !body.is_empty() {
        if !header(headers, "content-type").is_some_and(|value| value.starts_with("application/json")) {
            return Err("a JSON body needs Content-Type: application/json".to_owned());
        }
        let parsed: BulkBody = serde_json::from_slice(body).map_err(|error| format!("invalid body: {error}"))?;
        return Ok(parsed.surrogate_keys);
    }
    match header(headers, "surrogate-key") {
        Some(keys) => Ok(keys.split_whitespace().map(str::to_owned).collect()),
        None => Err("no surrogate_keys in the body and no Surrogate-Key header".to_owned()),
    }
}

fn check_keys(keys: &[String]) -> Result<(), String> {
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("between 1 and {MAX_KEYS} surrogate keys per request, got {}", keys.len()));
    }
    match keys.iter().find(|key| key.is_empty() || key.len() > MAX_KEY_BYTES || key.contains(char::is_whitespace)) {
        Some(key) => Err(format!("invalid surrogate key `{key}`")),
        None => Ok(()),
    }
}

/// Fastly's error shape.
fn error(status: u16, headers: &[(&str, String)], msg: &str, detail: &str) -> Response {
    json_answer(status, headers, &serde_json::json!({ "msg": msg, "detail": detail }), "application/json")
}
