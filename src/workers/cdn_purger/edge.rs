//! After a purge: fetch what was purged through the edge so the first user does not wait for
//! the origin, and check the edge now serves the new build.
//!
//! Each fetch carries `X-Frontier-Refresh: 1`, which `ops/varnish/frontier.vcl` turns into a
//! forced miss: the edge fetches once from the origin and replaces what it held, stale
//! (soft-purged) or not. One fetch per URL and encoding, never one per user, is what keeps a
//! purge from stampeding the origin. An edge without that header just serves the request.

use std::time::Duration;

use futures::StreamExt;

use super::plan::Expected;
use crate::cdn::origin::etag;

/// Concurrent fetches through the edge.
const CONCURRENCY: usize = 8;

/// A URL the edge still serves old content for after every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The URL.
    pub url: String,
    /// The `ETag` expected.
    pub expected: String,
    /// What the edge answered last (an `ETag`, or why there was none).
    pub served: String,
}

/// Re-warms every variant of `files` (all of them, a caller passes at most its limit) and
/// verifies the identity one; returns the files still stale after `attempts` fetches each.
pub async fn rewarm_and_verify(
    client: &reqwest::Client,
    files: &[Expected],
    attempts: u32,
    timeout: Duration,
    verify: bool,
) -> Vec<Stale> {
    // Owned futures: a stream of futures borrowing `files` is not provably `Send` for every
    // lifetime, which the worker's `handle` future must be.
    let fetches = files.iter().cloned().map(|file| {
        let client = client.clone();
        async move { refresh_file(&client, &file, attempts, timeout, verify).await }
    });
    let outcomes: Vec<Option<Stale>> = futures::stream::iter(fetches).buffer_unordered(CONCURRENCY).collect().await;
    outcomes.into_iter().flatten().collect()
}

async fn refresh_file(
    client: &reqwest::Client,
    file: &Expected,
    attempts: u32,
    timeout: Duration,
    verify: bool,
) -> Option<Stale> {
    // The variants first: the identity fetch is the one verified, and it should see the state
    // after every refresh of this URL.
    for encoding in &file.encodings {
        if let Err(error) = fetch(client, &file.url, Some(encoding), timeout).await {
            tracing::debug!(url = %file.url, %encoding, %error, "re-warm fetch failed");
        }
    }
    let expected = etag(&file.hash, None);
    let mut served = String::new();
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100) * 2u32.pow(attempt - 1)).await;
        }
        served = match fetch(client, &file.url, None, timeout).await {
            Ok(Some(tag)) => tag,
            Ok(None) => "no ETag".to_owned(),
            Err(error) => error,
        };
        if !verify || served == expected {
            return None;
        }
    }
    Some(Stale { url: file.url.clone(), expected, served })
}

/// One forced refresh through the edge; the `ETag` it served.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    encoding: Option<&str>,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let request = client
        .get(url)
        .header("X-Frontier-Refresh", "1")
        .header(reqwest::header::ACCEPT_ENCODING, encoding.unwrap_or("identity"))
        .timeout(timeout);
    let response = request.send().await.map_err(|error| error.to_string())?;
    let status = response.status();
    let tag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // Read the body so the connection is reused and the edge finishes the object.
    response.bytes().await.map_err(|error| error.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    Ok(tag)
}
