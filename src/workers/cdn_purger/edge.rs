//! After a purge: fetch what was purged through the edge so the first user does not wait for
//! the origin, and check the edge now serves the new build, before the purge is reported done.
//!
//! Every variant (each precompressed encoding, and identity) is fetched with a plain GET, as a
//! user would. After a soft purge the edge answers that first request with the stale object
//! and starts one background fetch; after a hard purge the request is a miss the edge
//! coalesces concurrent users onto. Either way the origin sees one fetch per object, which is
//! what keeps a purge from stampeding it. The variant is then polled (5 ms, doubling) until it
//! carries the new `ETag`; one still stale after that is refetched with
//! `X-Frontier-Refresh: 1` (a forced miss in `ops/varnish/frontier.vcl`; an edge without it
//! just serves the request), up to the configured attempts, and then reported.

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

/// Re-warms every variant of `files` (all of them, a caller passes at most its limit) and,
/// with `verify`, waits for each to serve the new build; returns the variants still stale
/// after `refreshes` forced refetches each.
pub async fn rewarm_and_verify(
    client: &reqwest::Client,
    files: &[Expected],
    refreshes: u32,
    timeout: Duration,
    verify: bool,
) -> Vec<Stale> {
    // Owned futures: a stream of futures borrowing `files` is not provably `Send` for every
    // lifetime, which the worker's `handle` future must be.
    let mut variants: Vec<(String, Option<String>, String)> = Vec::new();
    for file in files {
        let identity = etag(&file.hash, None);
        for encoding in &file.encodings {
            variants.push((file.url.clone(), Some(encoding.clone()), etag(&file.hash, Some(encoding))));
        }
        variants.push((file.url.clone(), None, identity));
    }
    let fetches = variants.into_iter().map(|(url, encoding, expected)| {
        let client = client.clone();
        async move { settle(&client, &url, encoding.as_deref(), &expected, refreshes, timeout, verify).await }
    });
    let outcomes: Vec<Option<Stale>> = futures::stream::iter(fetches).buffer_unordered(CONCURRENCY).collect().await;
    outcomes.into_iter().flatten().collect()
}

/// Polls of a variant before it is force-refreshed: 5 ms doubling, about 1.3 s in all.
const POLLS: u32 = 9;

async fn settle(
    client: &reqwest::Client,
    url: &str,
    encoding: Option<&str>,
    expected: &str,
    refreshes: u32,
    timeout: Duration,
    verify: bool,
) -> Option<Stale> {
    let mut served = String::new();
    for poll in 0..POLLS {
        if poll > 0 {
            tokio::time::sleep(Duration::from_millis(5) * 2u32.pow(poll - 1)).await;
        }
        served = describe(fetch(client, url, encoding, false, timeout).await);
        if !verify || served == expected {
            return None;
        }
    }
    for refresh in 0..refreshes {
        served = describe(fetch(client, url, encoding, true, timeout).await);
        if served == expected {
            tracing::warn!(url, ?encoding, refresh, "the edge served old content until a forced refresh");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100) * 2u32.pow(refresh)).await;
    }
    let variant = encoding.map_or_else(|| url.to_owned(), |encoding| format!("{url} ({encoding})"));
    Some(Stale { url: variant, expected: expected.to_owned(), served })
}

fn describe(fetched: Result<Option<String>, String>) -> String {
    match fetched {
        Ok(Some(tag)) => tag,
        Ok(None) => "no ETag".to_owned(),
        Err(error) => error,
    }
}

/// One fetch through the edge (a forced refresh with `refresh`); the `ETag` it served.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    encoding: Option<&str>,
    refresh: bool,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let mut request =
        client.get(url).header(reqwest::header::ACCEPT_ENCODING, encoding.unwrap_or("identity")).timeout(timeout);
    if refresh {
        request = request.header("X-Frontier-Refresh", "1");
    }
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
