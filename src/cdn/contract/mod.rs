//! Contract servers: one local HTTP server per CDN API (Fastly, Cloudflare, Akamai Fast Purge)
//! that implements that API's documented purge request shape and limits strictly: it checks
//! credentials, paths, body schemas and per-request limits, answers with the provider's own
//! error shapes, and runs the provider's token bucket. The adapters' tests, the purger's
//! integration tests, its benchmark and the demo talk to these instead of the real APIs, so a
//! wrong header, an over-limit batch or a misread `Retry-After` fails here first.
//!
//! Each server records the purges it accepted and can be told to fail its next requests
//! ([`ContractServer::fail_next`]), as an overloaded API would.

pub mod akamai;
pub mod cloudflare;
pub mod fastly;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::cdn::provider::PurgeMethod;

/// One purge a contract server accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedPurge {
    /// When it was accepted.
    pub at: SystemTime,
    /// What the items are. Cloudflare's prefix and host purges, which address content by
    /// pattern as a ban does, are recorded as [`PurgeMethod::Ban`].
    pub method: PurgeMethod,
    /// The URLs, keys, tags, prefixes or hosts, as sent.
    pub items: Vec<String>,
    /// Whether it marked content stale rather than evicting it.
    pub soft: bool,
    /// The provider's own name for the operation (`surrogate_keys`, `files`, `invalidate/tag`…).
    pub operation: String,
}

/// A failure the next requests get, set by [`ContractServer::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Injected {
    /// The status to answer.
    pub(crate) status: u16,
    /// The `Retry-After` to send with it, if any.
    pub(crate) retry_after: Option<Duration>,
}

/// What the servers share with their handles.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    purges: Mutex<Vec<RecordedPurge>>,
    failures: Mutex<Option<(u32, Injected)>>,
    requests: Mutex<u64>,
}

impl Recorder {
    /// Counts a request and takes one injected failure, if any is left.
    pub(crate) fn arrive(&self) -> Option<Injected> {
        *lock(&self.requests) += 1;
        let mut failures = lock(&self.failures);
        let (left, injected) = failures.as_mut()?;
        let injected = *injected;
        *left -= 1;
        if *left == 0 {
            *failures = None;
        }
        Some(injected)
    }

    /// Records an accepted purge.
    pub(crate) fn record(&self, method: PurgeMethod, items: Vec<String>, soft: bool, operation: impl Into<String>) {
        let purge = RecordedPurge { at: SystemTime::now(), method, items, soft, operation: operation.into() };
        lock(&self.purges).push(purge);
    }
}

/// A lock that survives a panicked holder: the recorder's data stays consistent (each update is
/// one push or one assignment), and a test server must keep answering.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running contract server. It serves until its shutdown token is cancelled; dropping the
/// handle does not stop it.
#[derive(Debug)]
pub struct ContractServer {
    address: SocketAddr,
    recorder: Arc<Recorder>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ContractServer {
    /// Serves `router` on `listener` until `shutdown` is cancelled.
    fn spawn(
        listener: tokio::net::TcpListener,
        router: axum::Router,
        recorder: Arc<Recorder>,
        shutdown: CancellationToken,
    ) -> std::io::Result<ContractServer> {
        let address = listener.local_addr()?;
        let server = axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await });
        let task = tokio::spawn(async move { server.await });
        Ok(ContractServer { address, recorder, task })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its base URL, `http://127.0.0.1:port`: an adapter's `api_url` or `host`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The purges accepted so far, in order.
    pub fn purges(&self) -> Vec<RecordedPurge> {
        lock(&self.recorder.purges).clone()
    }

    /// Requests received so far, accepted or not.
    pub fn requests(&self) -> u64 {
        *lock(&self.recorder.requests)
    }

    /// Fails the next `n` requests with `status` (429, 503, …) in the provider's error shape,
    /// with `Retry-After: retry_after` (whole seconds) when given.
    pub fn fail_next(&self, n: u32, status: u16, retry_after: Option<Duration>) {
        *lock(&self.recorder.failures) = (n > 0).then_some((n, Injected { status, retry_after }));
    }

    /// Waits for the server to stop (after its shutdown token is cancelled).
    pub async fn stopped(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// A token bucket as the providers document theirs: it holds `capacity` tokens, starts full and
/// refills at `per_second`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(per_second: f64, capacity: u32) -> TokenBucket {
        let capacity = f64::from(capacity);
        TokenBucket { capacity, per_second, tokens: capacity, at: Instant::now() }
    }

    /// Tokens in the bucket now (whole ones).
    pub(crate) fn available(&mut self) -> u64 {
        self.refill();
        self.tokens.floor() as u64
    }

    /// How long until `n` tokens are in the bucket; zero when they are now. Never, when `n` is
    /// more than it holds.
    pub(crate) fn wait_for(&mut self, n: u64) -> Option<Duration> {
        self.refill();
        let n = n as f64;
        if n > self.capacity {
            return None;
        }
        Some(Duration::from_secs_f64(((n - self.tokens) / self.per_second).max(0.0)))
    }

    /// Takes `n` tokens, which must be there ([`TokenBucket::wait_for`] said zero).
    pub(crate) fn take(&mut self, n: u64) {
        self.refill();
        self.tokens = (self.tokens - n as f64).max(0.0);
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.capacity);
        self.at = now;
    }
}

/// `Retry-After` in whole seconds, rounded up as Cloudflare documents its own ("the number of
/// seconds, rounded up, until more capacity is available").
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A request header as text (`None` when absent or not visible ASCII).
fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A JSON answer with `status` and extra headers.
fn json_answer(
    status: u16,
    headers: &[(&str, String)],
    body: &serde_json::Value,
    content_type: &'static str,
) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() =
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    map.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static(content_type));
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::from_bytes(name.as_bytes()), axum::http::HeaderValue::from_str(value))
        {
            map.insert(name, value);
        }
    }
    response
}

/// The `Retry-After` header of an injected failure.
fn injected_headers(injected: &Injected) -> Vec<(&'static str, String)> {
    injected.retry_after.map(|wait| vec![("Retry-After", retry_after_seconds(wait).to_string())]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_starts_full_and_says_how_long_until_it_has_enough() {
        let mut bucket = TokenBucket::new(5.0, 25);
        assert_eq!(bucket.available(), 25);
        assert_eq!(bucket.wait_for(25), Some(Duration::ZERO));
        bucket.take(25);
        let wait = bucket.wait_for(5).unwrap();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(bucket.wait_for(26), None);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(12)), 12);
        assert_eq!(retry_after_seconds(Duration::ZERO), 0);
    }

    #[test]
    fn injected_failures_run_out_after_n_requests() {
        let recorder = Recorder::default();
        *lock(&recorder.failures) = Some((2, Injected { status: 503, retry_after: None }));
        assert!(recorder.arrive().is_some());
        assert!(recorder.arrive().is_some());
        assert!(recorder.arrive().is_none());
        assert_eq!(*lock(&recorder.requests), 3);
    }
}
