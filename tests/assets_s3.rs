//! `frontier assets build` and `publish` to a real S3-compatible store (the Versity Gateway of
//! `ops/stack`, 127.0.0.1:9000, bucket `frontier-assets`), and the origin serving from it.
//!
//! One test in this binary: it sets the store's credentials in the process environment, which
//! is only sound while no other test thread reads the environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use frontier::cdn::origin::{self, Origin};
use frontier::cdn::{AssetStore, AssetsSettings, BuildOptions, Manifest, StoreKind, StoreSettings, build_site};
use tokio_util::sync::CancellationToken;

const ENDPOINT: &str = "http://127.0.0.1:9000";

fn s3_env() -> Vec<(String, String)> {
    vec![
        ("TEST_S3_ACCESS_KEY".into(), "frontier".into()),
        ("TEST_S3_SECRET_KEY".into(), "frontier-secret".into()),
        ("FRONTIER_ASSETS__STORE__KIND".into(), "s3".into()),
        ("FRONTIER_ASSETS__STORE__ENDPOINT".into(), ENDPOINT.into()),
        ("FRONTIER_ASSETS__STORE__BUCKET".into(), "frontier-assets".into()),
        ("FRONTIER_ASSETS__STORE__ACCESS_KEY_ID_ENV".into(), "TEST_S3_ACCESS_KEY".into()),
        ("FRONTIER_ASSETS__STORE__SECRET_ACCESS_KEY_ENV".into(), "TEST_S3_SECRET_KEY".into()),
    ]
}

fn publish(dir: &std::path::Path, env: &[(String, String)]) -> String {
    let output = common::frontier()
        .args(["assets", "publish", &common::path_str(dir), "--no-change"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "frontier assets publish to {ENDPOINT}: {text}\n{}", common::START_HINT);
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_published_to_s3_uploads_only_what_is_new_and_is_served_by_the_origin() {
    if std::net::TcpStream::connect("127.0.0.1:9000").is_err() {
        panic!("the S3 store is not listening on 127.0.0.1:9000: {}", common::START_HINT);
    }
    let out = tempfile::tempdir().unwrap();
    let built = out.path().join("site");
    let report = build_site(&common::repo().join("examples/site"), &built, &BuildOptions::default()).unwrap();
    let env = s3_env();

    let first = publish(&built, &env);
    let second = publish(&built, &env);
    assert!(second.contains(" 0 objects uploaded"), "the same build uploads nothing the second time: {second}");
    assert!(first.contains(&report.manifest_id) && second.contains(&report.manifest_id), "{first}\n{second}");

    // SAFETY: the only test of this binary, before anything else reads the environment.
    unsafe {
        std::env::set_var("TEST_S3_ACCESS_KEY", "frontier");
        std::env::set_var("TEST_S3_SECRET_KEY", "frontier-secret");
    }
    let store_settings = StoreSettings {
        kind: StoreKind::S3,
        endpoint: Some(ENDPOINT.into()),
        bucket: "frontier-assets".into(),
        access_key_id_env: "TEST_S3_ACCESS_KEY".into(),
        secret_access_key_env: "TEST_S3_SECRET_KEY".into(),
        ..StoreSettings::default()
    };
    let store = AssetStore::open(&store_settings).unwrap();
    let manifest: Manifest = store.manifest(&report.manifest_id).await.unwrap();
    assert_eq!(store.current().await.unwrap().unwrap().manifest, report.manifest_id);

    let settings = AssetsSettings { store: store_settings, ..AssetsSettings::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(origin::serve(listener, Origin::new(store, &settings), shutdown.clone()));
    let page = &manifest.entries["index.html"];
    let response = reqwest::Client::new().get(format!("{base}/")).header("accept-encoding", "br").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "br");
    let hex = page.hash.trim_start_matches("sha256:");
    assert_eq!(response.headers()["etag"], format!("\"{hex}-br\"").as_str());
    assert_eq!(response.bytes().await.unwrap().len() as u64, page.encodings["br"]);
    shutdown.cancel();
}
