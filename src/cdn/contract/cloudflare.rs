//! Cloudflare's cache purge API as a contract server (see [`crate::cdn::provider::cloudflare`]
//! for the documentation each rule comes from):
//!
//! - `POST /zones/{zone_id}/purge_cache` only; another path is `404` with code 7003 ("Could not
//!   route to …"), another method `405`;
//! - `Authorization: Bearer <token>`, else `403` with code 10000 ("Authentication error");
//! - a JSON object with exactly one of `files`, `tags`, `prefixes`, `hosts` (a non-empty array)
//!   or `purge_everything: true`, and nothing else; `files` entries are absolute http(s) URLs or
//!   `{"url", "headers"}` objects; the plan's per-request maximum (30 URLs, 500 on Enterprise;
//!   100 tags, prefixes or hosts) — violations are `400` with code 1014, the code Cloudflare
//!   answers a malformed purge body with (cloudflare/cloudflare-php#61);
//! - the plan's request token bucket; when empty, `429` with `Retry-After` (seconds, rounded up)
//!   and code 971 ("Please wait and consider throttling your request speed");
//! - every answer in the v4 envelope `{"success", "errors", "messages", "result"}`.
//!
//! The limits here are written out again rather than taken from the adapter, so that a wrong
//! number in either shows up as a failed contract test.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{ContractServer, Recorder, TokenBucket, header, injected_headers, json_answer, lock, retry_after_seconds};
use crate::cdn::provider::PurgeMethod;
pub use crate::cdn::provider::cloudflare::CloudflarePlan;

/// What the server accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudflareContract {
    /// The one zone it knows.
    pub zone_id: String,
    /// The API token `Authorization: Bearer` must carry.
    pub token: String,
    /// The plan, which sets its limits.
    pub plan: CloudflarePlan,
}

/// A plan's limits as Cloudflare documents them: (requests per second, bucket, URLs per
/// request, tags/prefixes/hosts per request).
fn documented(plan: CloudflarePlan) -> (f64, u32, usize, usize) {
    match plan {
        CloudflarePlan::Free => (5.0 / 60.0, 25, 30, 100),
        CloudflarePlan::Pro => (5.0, 25, 30, 100),
        CloudflarePlan::Business => (10.0, 50, 30, 100),
        CloudflarePlan::Enterprise => (50.0, 500, 500, 100),
    }
}

struct Server {
    config: CloudflareContract,
    recorder: Arc<Recorder>,
    bucket: Mutex<TokenBucket>,
}

/// Serves Cloudflare's purge API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: CloudflareContract,
    shutdown: CancellationToken,
) -> std::io::Result<ContractServer> {
    let recorder = Arc::new(Recorder::default());
    let (per_second, burst, _, _) = documented(config.plan);
    let bucket = Mutex::new(TokenBucket::new(per_second, burst));
    let server = Arc::new(Server { config, recorder: recorder.clone(), bucket });
    let router = axum::Router::new().fallback(handle).with_state(server);
    ContractServer::spawn(listener, router, recorder, shutdown)
}

async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(injected) = server.recorder.arrive() {
        return error(injected.status, &injected_headers(&injected), i64::from(injected.status), "Injected failure");
    }
    let expected = format!("/zones/{}/purge_cache", server.config.zone_id);
    if uri.path() != expected {
        let message = format!("Could not route to {}, perhaps your object identifier is invalid?", uri.path());
        return error(404, &[], 7003, &message);
    }
    if method != Method::POST {
        return error(405, &[], 7001, "Method not allowed for this route");
    }
    let bearer = header(&headers, "authorization").and_then(|value| value.strip_prefix("Bearer "));
    if bearer != Some(server.config.token.as_str()) {
        return error(403, &[], 10000, "Authentication error");
    }
    let (method, items, operation) = match read_body(&headers, &body, server.config.plan) {
        Ok(parsed) => parsed,
        Err(message) => return error(400, &[], 1014, &message),
    };
    {
        let mut bucket = lock(&server.bucket);
        let wait = bucket.wait_for(1).unwrap_or_default();
        if !wait.is_zero() {
            let retry = [("Retry-After", retry_after_seconds(wait).to_string())];
            return error(429, &retry, 971, "Please wait and consider throttling your request speed");
        }
        bucket.take(1);
    }
    server.recorder.record(method, items, false, operation);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let answer = json!({ "success": true, "errors": [], "messages": [], "result": { "id": id } });
    json_answer(200, &[], &answer, "application/json")
}

/// The one purge a body asks for: (method, items, field), or what is wrong with it.
fn read_body(
    headers: &HeaderMap,
    body: &[u8],
    plan: CloudflarePlan,
) -> Result<(PurgeMethod, Vec<String>, &'static str), String> {
    if !header(headers, "content-type").is_some_and(|value| value.starts_with("application/json")) {
        return Err("Content-Type must be application/json".to_owned());
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err("the body must be a JSON object".to_owned());
    };
    let mut fields = fields.into_iter();
    let (Some((name, value)), None) = (fields.next(), fields.next()) else {
        return Err("exactly one of files, tags, prefixes, hosts or purge_everything".to_owned());
    };
    let (_, _, max_files, max_others) = documented(plan);
    let (method, max, field): (PurgeMethod, usize, &'static str) = match name.as_str() {
        "files" => (PurgeMethod::Url, max_files, "files"),
        "tags" => (PurgeMethod::SurrogateKey, max_others, "tags"),
        "prefixes" => (PurgeMethod::Ban, max_others, "prefixes"),
        "hosts" => (PurgeMethod::Ban, max_others, "hosts"),
        "purge_everything" if value == Value::Bool(true) => {
            return Ok((PurgeMethod::Ban, Vec::new(), "purge_everything"));
        }
        other => return Err(format!("unknown field `{other}`")),
    };
    let Value::Array(entries) = value else {
        return Err(format!("\"{field}\" must be an array"));
    };
    if entries.is_empty() || entries.len() > max {
        return Err(format!("\"{field}\" takes 1 to {max} items, got {}", entries.len()));
    }
    let items = entries
        .into_iter()
        .map(|entry| match (field, entry) {
            ("files", Value::String(url)) => absolute(url),
            ("files", Value::Object(file)) => match file.get("url") {
                Some(Value::String(url)) if file.keys().all(|key| key == "url" || key == "headers") => {
                    absolute(url.clone())
                }
                _ => Err("a file object is {\"url\": …, \"headers\": {…}}".to_owned()),
            },
            (_, Value::String(item)) if !item.trim().is_empty() => Ok(item),
            (_, other) => Err(format!("invalid {field} entry {other}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((method, items, field))
}

fn absolute(url: String) -> Result<String, String> {
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() => Ok(url),
        _ => Err(format!("`{url}` is not an absolute http(s) URL")),
    }
}

/// Cloudflare's v4 envelope for a failure.
fn error(status: u16, headers: &[(&str, String)], code: i64, message: &str) -> Response {
    let body =
        json!({ "success": false, "errors": [{ "code": code, "message": message }], "messages": [], "result": null });
    json_answer(status, headers, &body, "application/json")
}
