//! Akamai Fast Purge (CCU v3) as a contract server (see [`crate::cdn::provider::akamai`] for
//! the documentation each rule comes from):
//!
//! - `POST /ccu/v3/{invalidate|delete}/{url|tag|cpcode}/{staging|production}` only (`404`,
//!   `405` otherwise);
//! - EdgeGrid: the client and access tokens must be the configured ones, the timestamp within
//!   `timestamp_window` of the server's clock, the nonce unused, and the signature the one the
//!   shared client secret gives this request (method, `http`, `Host`, path, body hash); else
//!   `401`;
//! - bodies over 50,000 bytes are `413`; a body that is not `application/json` is `415`;
//! - the body is `{"objects": [...]}` (plus `hostname` for URL purges given as paths) and
//!   nothing else; objects are absolute http(s) URLs (or paths under `hostname`), cache tags of
//!   1 to 128 characters, or CP codes (numbers); otherwise `400`;
//! - the token buckets: requests (50/s, 100), URLs (200/s, 10,000), cache tags (500/min,
//!   5,000), CP codes (30/min, 300); a request that finds too few tokens in either takes none and
//!   is `429` with the `X-Ratelimit-*` headers and body of Akamai's rate limit examples, and no
//!   `Retry-After` (Akamai documents none);
//! - errors are problem documents (`title`, `detail`, `httpStatus`, `supportId`, …), success is
//!   `201 {"httpStatus": 201, "detail": "Request accepted", "estimatedSeconds": 5, "purgeId",
//!   "supportId"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{ContractServer, Recorder, TokenBucket, header, injected_headers, json_answer, lock};
use crate::cdn::provider::PurgeMethod;
use crate::cdn::provider::edgegrid::{self, Authorization, Credentials, Signable};

/// Largest body, in bytes.
const MAX_BODY_BYTES: usize = 50_000;
/// Longest cache tag, in characters.
const MAX_TAG_CHARS: usize = 128;

/// What the server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkamaiContract {
    /// The one API client it knows.
    pub credentials: Credentials,
    /// How far a request's timestamp may be from the server's clock. Akamai does not publish its
    /// window; a minute either way is generous for a machine with NTP and strict for a replay.
    pub timestamp_window: Duration,
}

impl AkamaiContract {
    /// A server for the API client `credentials`, with a one-minute timestamp window.
    pub fn new(credentials: Credentials) -> AkamaiContract {
        AkamaiContract { credentials, timestamp_window: Duration::from_secs(60) }
    }
}

/// The documented buckets: (name in a 429's title, per second, size).
const REQUESTS: (&str, f64, u32) = ("", 50.0, 100);
const URLS: (&str, f64, u32) = ("URL ", 200.0, 10_000);
const TAGS: (&str, f64, u32) = ("Cache Tag ", 500.0 / 60.0, 5_000);
const CPCODES: (&str, f64, u32) = ("CP Code ", 30.0 / 60.0, 300);

struct Buckets {
    requests: TokenBucket,
    urls: TokenBucket,
    tags: TokenBucket,
    cpcodes: TokenBucket,
}

struct Server {
    config: AkamaiContract,
    recorder: Arc<Recorder>,
    buckets: Mutex<Buckets>,
    /// Nonces seen within the timestamp window, to refuse a replayed request.
    nonces: Mutex<HashMap<String, Instant>>,
}

/// Serves Fast Purge on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: AkamaiContract,
    shutdown: CancellationToken,
) -> std::io::Result<ContractServer> {
    let recorder = Arc::new(Recorder::default());
    let bucket = |(_, per_second, size): (&str, f64, u32)| TokenBucket::new(per_second, size);
    let buckets =
        Buckets { requests: bucket(REQUESTS), urls: bucket(URLS), tags: bucket(TAGS), cpcodes: bucket(CPCODES) };
    let server = Arc::new(Server {
        config,
        recorder: recorder.clone(),
        buckets: Mutex::new(buckets),
        nonces: Mutex::new(HashMap::new()),
    });
    let router = axum::Router::new().fallback(handle).with_state(server);
    ContractServer::spawn(listener, router, recorder, shutdown)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    objects: Vec<Value>,
    hostname: Option<String>,
}

async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(injected) = server.recorder.arrive() {
        return problem(injected.status, &injected_headers(&injected), "Injected failure", "told to fail");
    }
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let [
        "ccu",
        "v3",
        operation @ ("invalidate" | "delete"),
        kind @ ("url" | "tag" | "cpcode"),
        "staging" | "production",
    ] = segments.as_slice()
    else {
        return problem(404, &[], "Not Found", &format!("no such resource: {}", uri.path()));
    };
    if method != Method::POST {
        return problem(405, &[], "Method Not Allowed", &format!("{method} is not allowed here"));
    }
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let Err(detail) = server.authenticate(&headers, path_and_query, &body) {
        return problem(401, &[], "Bad request", detail);
    }
    if body.len() > MAX_BODY_BYTES {
        let detail = format!(
            "The request was denied because it exceeds the maximum message body size, which is {MAX_BODY_BYTES} bytes."
        );
        return problem(413, &[], "Request Entity Too Large", &detail);
    }
    if !header(&headers, "content-type").is_some_and(|value| value.starts_with("application/json")) {
        return problem(415, &[], "Unsupported Media Type", "the body must be application/json");
    }
    let objects = match read_objects(kind, &body) {
        Ok(objects) => objects,
        Err(detail) => return problem(400, &[], "Bad request", &detail),
    };
    if let Some(refusal) = server.take_tokens(kind, objects.len() as u64) {
        return refusal;
    }
    let method = match *kind {
        "url" => PurgeMethod::Url,
        "tag" => PurgeMethod::SurrogateKey,
        _ => PurgeMethod::Ban,
    };
    server.recorder.record(method, objects, *operation == "invalidate", format!("{operation}/{kind}"));
    let id = uuid::Uuid::new_v4().to_string();
    let answer = json!({ "httpStatus": 201, "detail": "Request accepted", "estimatedSeconds": 5, "purgeId": id, "supportId": support_id() });
    json_answer(201, &[], &answer, "application/json")
}

impl Server {
    /// Checks the EdgeGrid header; the reason when it fails.
    fn authenticate(&self, headers: &HeaderMap, path_and_query: &str, body: &[u8]) -> Result<(), &'static str> {
        let value = header(headers, "authorization").ok_or("The request has no Authorization header")?;
        let auth = Authorization::parse(value).ok_or("Invalid authorization header")?;
        let credentials = &self.config.credentials;
        if auth.client_token != credentials.client_token || auth.access_token != credentials.access_token {
            return Err("Invalid client token or access token");
        }
        let at = edgegrid::parse_timestamp(auth.timestamp).ok_or("Invalid timestamp")?;
        let now = SystemTime::now();
        let skew = match now.duration_since(at) {
            Ok(late) => late,
            Err(early) => early.duration(),
        };
        if skew > self.config.timestamp_window {
            return Err("Invalid timestamp: outside the allowed window");
        }
        let host = header(headers, "host").ok_or("The request has no Host header")?;
        let request = Signable { method: "POST", scheme: "http", host, path_and_query, body };
        if !edgegrid::verify(credentials.client_secret.expose(), &auth, &request, edgegrid::MAX_BODY) {
            return Err("The signature does not match");
        }
        // Only a verified request spends its nonce: a forger cannot burn a real client's.
        let mut nonces = lock(&self.nonces);
        let window = self.config.timestamp_window * 2;
        nonces.retain(|_, seen| seen.elapsed() <= window);
        if nonces.insert(auth.nonce.to_owned(), Instant::now()).is_some() {
            return Err("Invalid nonce: already used");
        }
        Ok(())
    }

    /// Takes a request token and `n` object tokens, or neither and answers 429.
    fn take_tokens(&self, kind: &str, n: u64) -> Option<Response> {
        let mut buckets = lock(&self.buckets);
        let Buckets { requests, urls, tags, cpcodes } = &mut *buckets;
        let (objects, (name, per_second, size)) = match kind {
            "url" => (urls, URLS),
            "tag" => (tags, TAGS),
            _ => (cpcodes, CPCODES),
        };
        let requests_ready = requests.wait_for(1).is_some_and(|wait| wait.is_zero());
        let objects_ready = objects.wait_for(n).is_some_and(|wait| wait.is_zero());
        if requests_ready && objects_ready {
            requests.take(1);
            objects.take(n);
            return None;
        }
        let (title, limit, remaining, size_asked) = if requests_ready {
            (format!("{name}Rate Limit exceeded"), u64::from(size), objects.available(), n)
        } else {
            ("Rate Limit exceeded".to_owned(), u64::from(REQUESTS.2), requests.available(), 1)
        };
        let headers = [
            ("X-Ratelimit-Remaining", requests.available().to_string()),
            ("X-Ratelimit-Limit-Per-Second", format!("{:.2}", REQUESTS.1)),
            ("X-Ratelimit-Limit", REQUESTS.2.to_string()),
            ("X-Ratelimit-Remaining-Objects", objects.available().to_string()),
            ("X-Ratelimit-Limit-Per-Second-Objects", format!("{per_second:.2}")),
            ("X-Ratelimit-Limit-Objects", size.to_string()),
        ];
        let body = json!({
            "supportId": support_id(),
            "title": title,
            "httpStatus": 429,
            "describedBy": "https://techdocs.akamai.com/purge-cache/reference/429",
            "rateLimit": limit,
            "rateLimitCurrentRequestSize": size_asked,
            "rateLimitRemaining": remaining,
        });
        Some(json_answer(429, &headers, &body, "application/api-problem+json"))
    }
}

/// The objects of a purge body of `kind`, as text, or what is wrong with them.
fn read_objects(kind: &str, body: &[u8]) -> Result<Vec<String>, String> {
    let parsed: PurgeBody = serde_json::from_slice(body).map_err(|error| format!("invalid purge request: {error}"))?;
    if parsed.objects.is_empty() {
        return Err("objects must list at least one object".to_owned());
    }
    if parsed.hostname.is_some() && kind != "url" {
        return Err("hostname applies to URL purges only".to_owned());
    }
    parsed
        .objects
        .into_iter()
        .map(|object| match (kind, object) {
            ("url", Value::String(url)) => {
                let absolute = reqwest::Url::parse(&url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
                if absolute || (parsed.hostname.is_some() && url.starts_with('/')) {
                    Ok(url)
                } else {
                    Err(format!("`{url}` is not an absolute http(s) URL (or a path with hostname)"))
                }
            }
            ("tag", Value::String(tag)) if !tag.is_empty() && tag.chars().count() <= MAX_TAG_CHARS => Ok(tag),
            ("cpcode", Value::Number(code)) if code.is_u64() => Ok(code.to_string()),
            (_, other) => Err(format!("invalid {kind} object {other}")),
        })
        .collect()
}

fn support_id() -> String {
    format!("17PY{}", uuid::Uuid::new_v4().simple())
}

/// Akamai's problem document.
fn problem(status: u16, headers: &[(&str, String)], title: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("https://problems.purge.akamaiapis.net/-/{status}"),
        "title": title,
        "detail": detail,
        "httpStatus": status,
        "supportId": support_id(),
        "describedBy": format!("https://techdocs.akamai.com/purge-cache/reference/{status}"),
    });
    json_answer(status, headers, &body, "application/problem+json")
}
