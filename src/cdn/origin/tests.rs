//! The origin over real HTTP on loopback, serving a store written the way `assets publish`
//! writes it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::*;
use crate::cdn::manifest::Manifest;
use crate::cdn::manifest::tests::{entry, manifest};
use crate::cdn::store::StoreSettings;

struct Running {
    _dir: tempfile::TempDir,
    store: AssetStore,
    base: String,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let settings = AssetsSettings { store: StoreSettings::file(dir.path()), ..AssetsSettings::default() };
    let store = AssetStore::open(&settings.store).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, Origin::new(store.clone(), &settings), shutdown.clone()));
    Running { _dir: dir, store, base, shutdown }
}

/// Stores `files` (file, content, stable) with a fake brotli variant for the large ones, and
/// promotes the manifest.
async fn publish(store: &AssetStore, files: &[(&str, &str, bool)], at: i64) -> Manifest {
    let mut entries = Vec::new();
    for (file, content, stable) in files {
        let mut built = entry(file, file, content);
        built.stable = *stable;
        built.is_entry = file.ends_with(".html");
        store.put(&AssetStore::blob_path(&built.hash, None), Bytes::from(content.to_string())).await.unwrap();
        if content.len() > 20 {
            let variant = format!("BR({})", &content[..10]);
            built.encodings = BTreeMap::from([("br".to_owned(), variant.len() as u64)]);
            store.put(&AssetStore::blob_path(&built.hash, Some("br")), Bytes::from(variant)).await.unwrap();
        }
        entries.push(built);
    }
    let built = manifest(entries);
    let id = store.put_manifest(&built).await.unwrap();
    store.promote(&id, at, Duration::from_secs(3600)).await.unwrap();
    built
}

fn hex(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

const PAGE: &str = "<!doctype html><html><body>quarterly report, long enough to compress</body></html>";

#[tokio::test]
async fn an_entry_point_is_served_with_a_short_lifetime_and_its_keys() {
    let origin = start().await;
    publish(&origin.store, &[("index.html", PAGE, true)], clock::now_millis()).await;
    let response = reqwest::get(format!("{}/", origin.base)).await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["etag"], format!("\"{}\"", hex(PAGE)).as_str());
    assert_eq!(headers["cache-control"], "public, max-age=60, s-maxage=86400, stale-while-revalidate=600");
    assert_eq!(headers["xkey"], "f:index.html");
    assert_eq!(headers["surrogate-key"], "f:index.html");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(response.text().await.unwrap(), PAGE);
}

#[tokio::test]
async fn the_health_answer_is_never_cached() {
    let origin = start().await;
    let response = reqwest::get(format!("{}/healthz", origin.base)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_hashed_file_is_immutable() {
    let origin = start().await;
    publish(&origin.store, &[("app.1234abcd.css", "body{}", false)], clock::now_millis()).await;
    let response = reqwest::get(format!("{}/app.1234abcd.css", origin.base)).await.unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
}

#[tokio::test]
async fn the_precompressed_variant_is_sent_to_a_client_that_accepts_it() {
    let origin = start().await;
    publish(&origin.store, &[("index.html", PAGE, true)], clock::now_millis()).await;
    let client = reqwest::Client::new();
    let response =
        client.get(format!("{}/index.html", origin.base)).header("accept-encoding", "gzip, br").send().await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "br");
    assert_eq!(response.headers()["vary"], "Accept-Encoding");
    assert_eq!(response.headers()["etag"], format!("\"{}-br\"", hex(PAGE)).as_str());
    assert_eq!(response.text().await.unwrap(), format!("BR({})", &PAGE[..10]));
}

#[tokio::test]
async fn a_matching_if_none_match_gets_304_without_a_body() {
    let origin = start().await;
    publish(&origin.store, &[("index.html", PAGE, true)], clock::now_millis()).await;
    let response = reqwest::Client::new()
        .get(format!("{}/index.html", origin.base))
        .header("if-none-match", format!("W/\"{}\"", hex(PAGE)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_new_deploy_is_served_as_soon_as_it_is_promoted() {
    let origin = start().await;
    let now = clock::now_millis();
    publish(&origin.store, &[("index.html", PAGE, true)], now).await;
    reqwest::get(format!("{}/index.html", origin.base)).await.unwrap();
    publish(&origin.store, &[("index.html", "<html>v2</html>", true)], now + 1).await;
    let response = reqwest::get(format!("{}/index.html", origin.base)).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "<html>v2</html>");
}

#[tokio::test]
async fn a_hashed_file_of_the_replaced_build_is_served_within_the_grace_but_not_its_pages() {
    let origin = start().await;
    let now = clock::now_millis();
    publish(&origin.store, &[("index.html", PAGE, true), ("app.aaaa1111.css", "a{}", false)], now).await;
    publish(&origin.store, &[("index.html", "<html>v2</html>", true), ("app.bbbb2222.css", "b{}", false)], now + 1)
        .await;
    let old_css = reqwest::get(format!("{}/app.aaaa1111.css", origin.base)).await.unwrap();
    assert_eq!(old_css.status(), 200);
    let gone = reqwest::get(format!("{}/nothing.html", origin.base)).await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(gone.headers()["cache-control"], "public, max-age=10");
}

#[tokio::test]
async fn a_post_is_refused_with_the_allowed_methods() {
    let origin = start().await;
    let response = reqwest::Client::new().post(format!("{}/index.html", origin.base)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
}
