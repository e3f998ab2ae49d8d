//! The CDN purger end to end on the real stack: builds published to a store, served by the real
//! origin (`frontier::cdn::origin`, on 127.0.0.1:8088, the backend `ops/varnish/frontier.vcl`
//! names) through the real Varnish of `ops/stack` on 127.0.0.1:6081, with changes on Kafka and
//! the purger's consumer loop in between.
//!
//! The edge's backend port is fixed, so these tests take turns (one lock); each publishes its
//! site under a directory of its own, so URLs and surrogate keys never collide in the edge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use frontier::bus::{ConsumerLoop, LoopOptions, SchemaCatalog, dlq};
use frontier::cdn::origin::{self, Origin};
use frontier::cdn::publish::{MANIFEST_PATH, publish_dir};
use frontier::cdn::purge::Target;
use frontier::cdn::{AssetStore, Manifest, ManifestEntry, StoreSettings};
use frontier::records::{AssetChange, PurgeResult, PurgeStatus};
use frontier::settings::Settings;
use frontier::workers::WorkerConfig;
use frontier::workers::cdn_purger;
use rdkafka::Message;
use sha2::{Digest, Sha256, Sha384};
use tokio_util::sync::CancellationToken;

use common::{catalog, create_topics, header, produce, read_topic, unique};

const EDGE: &str = "http://127.0.0.1:6081";

/// The edge's backend port is one: one test at a time holds it.
static EDGE_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's site, store, origin, topics and purger.
struct Stage {
    settings: Settings,
    catalog: Arc<SchemaCatalog>,
    site: String,
    store: AssetStore,
    _store_dir: tempfile::TempDir,
    shutdown: CancellationToken,
    purger: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn require_edge() {
    if tokio::net::TcpStream::connect("127.0.0.1:6081").await.is_err() {
        panic!("Varnish is not listening on 127.0.0.1:6081: {}", common::START_HINT);
    }
}

async fn stage(name: &str) -> Stage {
    stage_with(name, Vec::new()).await
}

/// A stage whose purger also purges `extra` targets (built by the test, e.g. against a
/// contract server), beside the configured edge; `frontier run cdn-purger`'s own entry point
/// when there are none.
async fn stage_with(name: &str, extra: Vec<Target>) -> Stage {
    require_edge().await;
    let mut settings = common::settings();
    let store_dir = tempfile::tempdir().unwrap();
    settings.assets.store = StoreSettings::file(store_dir.path());
    settings.assets.public_url = EDGE.to_owned();
    let (changes, purges, alerts, dlq) = (
        unique(&format!("{name}.changes")),
        unique(&format!("{name}.purges")),
        unique(&format!("{name}.alerts")),
        unique(&format!("{name}.dlq")),
    );
    create_topics(&settings, &[&changes, &purges, &alerts, &dlq], 1).await;
    settings.bus.dlq_topic = dlq;
    let purger = &mut settings.workers.cdn_purger;
    purger.input_topic = changes;
    purger.results_topic = purges;
    purger.alerts_topic = alerts;
    purger.group_id = Some(unique(&format!("{name}.group")));
    purger.retry.backoff = Duration::from_millis(50);
    let store = AssetStore::open(&settings.assets.store).unwrap();

    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8088")
        .await
        .expect("127.0.0.1:8088 is free for the test's origin (stop a running `frontier run asset-origin`)");
    tokio::spawn(origin::serve(listener, Origin::new(store.clone(), &settings.assets), shutdown.clone()));
    let http = reqwest::Client::new();
    wait_for_backend(&http).await;

    let (shared, purger_settings, catalog) = (settings.shared(), settings.workers.cdn_purger.clone(), catalog());
    let token = shutdown.clone();
    let loop_catalog = catalog.clone();
    let purger = if extra.is_empty() {
        tokio::spawn(async move {
            cdn_purger::run(&shared, &purger_settings, loop_catalog, token)
                .await
                .expect("the purger runs until cancelled");
        })
    } else {
        let client = reqwest::Client::new();
        let mut targets = cdn_purger::targets(&purger_settings, &client).unwrap();
        targets.extend(extra);
        let redis =
            redis::aio::ConnectionManager::new(redis::Client::open(shared.redis.url.as_str()).unwrap()).await.unwrap();
        let purger = cdn_purger::CdnPurger::new(
            purger_settings.clone(),
            shared.assets.clone(),
            store.clone(),
            targets,
            redis,
            client,
            loop_catalog.clone(),
            token.clone(),
        );
        let options = LoopOptions::new(&shared.bus, shared.group_id(&purger_settings), purger_settings.input_topics());
        let consumer = ConsumerLoop::new(&shared.kafka, options, Arc::new(purger), loop_catalog).unwrap();
        tokio::spawn(async move {
            consumer.run(token).await.expect("the purger runs until cancelled");
        })
    };
    let site = format!("s{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    Stage { settings, catalog, site, store, _store_dir: store_dir, shutdown, purger, http }
}

/// Varnish probes its backend every second and calls it healthy after two answers.
async fn wait_for_backend(http: &reqwest::Client) {
    let started = Instant::now();
    loop {
        let url = format!("{EDGE}/healthz?{}", uuid::Uuid::new_v4());
        if let Ok(response) = http.get(url).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "Varnish never saw the test origin on 127.0.0.1:8088 as healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A built file: (source, file, content, stable, stylesheets it references).
type Built<'a> = (&'a str, &'a str, &'a str, bool, &'a [&'a str]);

/// Writes a build of `files` under the stage's site directory, as `assets build` would.
fn build(stage: &Stage, out: &Path, files: &[Built<'_>]) {
    let mut entries = BTreeMap::new();
    for (src, file, content, stable, css) in files {
        let (src, file) = (format!("{}/{src}", stage.site), format!("{}/{file}", stage.site));
        let path = out.join(&file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let entry = ManifestEntry {
            file: file.clone(),
            src: src.clone(),
            is_entry: file.ends_with(".html"),
            css: css.iter().map(|css| format!("{}/{css}", stage.site)).collect(),
            assets: Vec::new(),
            imports: Vec::new(),
            size: content.len() as u64,
            hash: format!("sha256:{}", hex::encode(Sha256::digest(content.as_bytes()))),
            integrity: format!(
                "sha384-{}",
                base64::engine::general_purpose::STANDARD.encode(Sha384::digest(content.as_bytes()))
            ),
            surrogate_keys: vec![format!("f:{src}")],
            encodings: BTreeMap::new(),
            stable: *stable,
        };
        entries.insert(src, entry);
    }
    let manifest = Manifest { entries };
    manifest.validate().unwrap();
    std::fs::create_dir_all(out.join(".vite")).unwrap();
    std::fs::write(out.join(MANIFEST_PATH), manifest.to_json()).unwrap();
}

/// Publishes a build and sends its change; the change.
async fn deploy(stage: &Stage, files: &[Built<'_>]) -> AssetChange {
    let out = tempfile::tempdir().unwrap();
    build(stage, out.path(), files);
    let report = publish_dir(&stage.store, out.path(), EDGE, Duration::from_secs(3600), frontier::clock::now_millis())
        .await
        .unwrap();
    let change = report.change.expect("a new build");
    send(stage, &change).await;
    change
}

async fn send(stage: &Stage, change: &AssetChange) {
    let payload = stage.catalog.encode_record(change).unwrap();
    produce(&stage.settings, &stage.settings.workers.cdn_purger.input_topic, vec![(Some(change.id.clone()), payload)])
        .await;
}

/// The purge results on the results topic, once `count` arrived.
async fn results(stage: &Stage, count: usize) -> Vec<PurgeResult> {
    let (settings, topic) = (stage.settings.clone(), stage.settings.workers.cdn_purger.results_topic.clone());
    let messages = tokio::task::spawn_blocking(move || read_topic(&settings, &topic, count, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(messages.len(), count, "purge results on the results topic (the purger's log says why not)");
    messages
        .iter()
        .map(|message| {
            let payload = message.payload().unwrap();
            stage.catalog.identify(payload).unwrap().deserialize(payload).unwrap()
        })
        .collect()
}

/// The results of change `id`, once `count` of them arrived.
async fn results_of(stage: &Stage, id: &str, count: usize) -> Vec<PurgeResult> {
    let started = Instant::now();
    loop {
        let (settings, topic) = (stage.settings.clone(), stage.settings.workers.cdn_purger.results_topic.clone());
        let messages =
            tokio::task::spawn_blocking(move || read_topic(&settings, &topic, usize::MAX, Duration::from_secs(2)))
                .await
                .unwrap();
        let of_change: Vec<PurgeResult> = messages
            .iter()
            .map(|message| {
                let payload = message.payload().unwrap();
                stage.catalog.identify(payload).unwrap().deserialize::<PurgeResult>(payload).unwrap()
            })
            .filter(|result| result.change_id == id)
            .collect();
        if of_change.len() >= count {
            return of_change;
        }
        assert!(started.elapsed() < Duration::from_secs(45), "{count} results of change {id}, got {of_change:?}");
    }
}

struct Fetched {
    cache: String,
    hits: u64,
    etag: String,
    body: String,
}

async fn fetch(stage: &Stage, file: &str) -> Fetched {
    let response = stage.http.get(format!("{EDGE}/{}/{file}", stage.site)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{file} through the edge");
    let headers = response.headers().clone();
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    Fetched {
        cache: text("x-cache"),
        hits: text("x-cache-hits").parse().unwrap_or(0),
        etag: text("etag"),
        body: response.text().await.unwrap(),
    }
}

fn etag_of(content: &str) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(content.as_bytes())))
}

const LOGO: &str = "<svg xmlns='http://www.w3.org/2000/svg'><circle r='4'/></svg>";
const PAGE_V1: &str =
    "<html><head><link rel=stylesheet href=app.1111aaaa.css></head><body><img src=logo.9999ffff.svg>v1</body></html>";
const PAGE_V2: &str =
    "<html><head><link rel=stylesheet href=app.2222bbbb.css></head><body><img src=logo.9999ffff.svg>v1</body></html>";

fn v1() -> Vec<Built<'static>> {
    vec![
        ("index.html", "index.html", PAGE_V1, true, &["app.1111aaaa.css"]),
        ("app.css", "app.1111aaaa.css", "body{color:black}", false, &[]),
        ("logo.svg", "logo.9999ffff.svg", LOGO, false, &[]),
    ]
}

fn v2() -> Vec<Built<'static>> {
    vec![
        ("index.html", "index.html", PAGE_V2, true, &["app.2222bbbb.css"]),
        ("app.css", "app.2222bbbb.css", "body{color:navy}", false, &[]),
        ("logo.svg", "logo.9999ffff.svg", LOGO, false, &[]),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_stylesheet_reaches_the_page_through_the_edge_with_no_stale_html_after_the_purge() {
    let _turn = EDGE_TURN.lock().await;
    let stage = stage("cdn.fresh").await;
    deploy(&stage, &v1()).await;
    results(&stage, 1).await;
    let before = fetch(&stage, "index.html").await;
    assert_eq!(before.etag, etag_of(PAGE_V1));
    assert_eq!(fetch(&stage, "index.html").await.cache, "HIT", "the page is cached at the edge");

    deploy(&stage, &v2()).await;
    let purged = results(&stage, 2).await;
    assert_eq!(purged[1].status, PurgeStatus::Ok, "{:?}", purged[1]);
    assert_eq!(purged[1].keys, [format!("f:{}/index.html", stage.site)], "only the page's key is purged");
    // The result is on the topic only once the purge, re-warm and verification are done: from
    // then on no user may get the old page.
    for _ in 0..20 {
        let page = fetch(&stage, "index.html").await;
        assert_eq!(page.etag, etag_of(PAGE_V2), "stale page served after the purge was acknowledged");
        assert!(page.body.contains("app.2222bbbb.css"));
    }
    assert_eq!(fetch(&stage, "app.2222bbbb.css").await.body, "body{color:navy}");
    stage.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_hashed_files_stay_cached_across_a_deploy() {
    let _turn = EDGE_TURN.lock().await;
    let stage = stage("cdn.kept").await;
    deploy(&stage, &v1()).await;
    results(&stage, 1).await;
    fetch(&stage, "logo.9999ffff.svg").await;
    let before = fetch(&stage, "logo.9999ffff.svg").await;
    assert_eq!(before.cache, "HIT");

    deploy(&stage, &v2()).await;
    results(&stage, 2).await;
    let after = fetch(&stage, "logo.9999ffff.svg").await;
    assert_eq!(after.cache, "HIT", "the deploy did not evict an unchanged hashed file");
    assert!(
        after.hits > before.hits,
        "the same cached object keeps counting hits ({} then {})",
        before.hits,
        after.hits
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_change_purges_nothing_new() {
    let _turn = EDGE_TURN.lock().await;
    let stage = stage("cdn.again").await;
    deploy(&stage, &v1()).await;
    let change = deploy(&stage, &v2()).await;
    results(&stage, 2).await;
    fetch(&stage, "index.html").await;
    let before = fetch(&stage, "index.html").await;
    assert_eq!(before.cache, "HIT");

    send(&stage, &change).await;
    let again = results(&stage, 3).await;
    assert_eq!(again[2].change_id, change.id);
    assert_eq!(again[2].status, PurgeStatus::Skipped, "{:?}", again[2]);
    assert_eq!(again[2].attempts, 0);
    let after = fetch(&stage, "index.html").await;
    assert_eq!(after.cache, "HIT", "the page was not purged again");
    assert!(after.hits > before.hits);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_naming_a_malformed_manifest_goes_to_the_dlq_with_the_reason() {
    let _turn = EDGE_TURN.lock().await;
    let stage = stage("cdn.malformed").await;
    let id = "sha256:0123456789abcdef0123456789abcdef";
    stage
        .store
        .put("manifests/0123456789abcdef0123456789abcdef.json", bytes::Bytes::from_static(b"{\"x\": 1}"))
        .await
        .unwrap();
    let change = AssetChange {
        id: uuid::Uuid::new_v4().to_string(),
        asset_path: "/".into(),
        asset_url: None,
        change: frontier::records::ChangeType::Updated,
        content_hash: None,
        surrogate_keys: Vec::new(),
        manifest_id: Some(id.into()),
        previous_manifest_id: None,
        changed_at: frontier::clock::now_millis(),
    };
    send(&stage, &change).await;
    let (settings, topic) = (stage.settings.clone(), stage.settings.bus.dlq_topic.clone());
    let letters =
        tokio::task::spawn_blocking(move || read_topic(&settings, &topic, 1, Duration::from_secs(30))).await.unwrap();
    assert_eq!(letters.len(), 1, "the change is dead-lettered");
    assert_eq!(header(&letters[0], dlq::header::ERROR_KIND).as_deref(), Some("manifest_invalid"));
    let reason = header(&letters[0], dlq::header::ERROR_MESSAGE).unwrap();
    assert!(reason.contains(id), "the reason names the manifest: {reason}");
    assert!(!stage.purger.is_finished(), "the purger goes on");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edge_still_serving_old_content_after_the_purge_raises_an_alert() {
    let _turn = EDGE_TURN.lock().await;
    let stage = stage("cdn.stale").await;
    let first = deploy(&stage, &v1()).await;
    results(&stage, 1).await;
    // The second build's manifest is in the store, but the origin still serves the first:
    // its promotion never happened, so no purge can make the edge serve the new page.
    let out = tempfile::tempdir().unwrap();
    build(&stage, out.path(), &v2());
    let manifest = Manifest::from_json(&std::fs::read(out.path().join(MANIFEST_PATH)).unwrap()).unwrap();
    let id = stage.store.put_manifest(&manifest).await.unwrap();
    let change = AssetChange {
        id: uuid::Uuid::new_v4().to_string(),
        manifest_id: Some(id),
        previous_manifest_id: first.manifest_id.clone(),
        changed_at: frontier::clock::now_millis(),
        ..first
    };
    send(&stage, &change).await;

    let (settings, topic) = (stage.settings.clone(), stage.settings.workers.cdn_purger.alerts_topic.clone());
    let alerts =
        tokio::task::spawn_blocking(move || read_topic(&settings, &topic, 1, Duration::from_secs(30))).await.unwrap();
    assert_eq!(alerts.len(), 1, "an alert on the alerts topic");
    let payload = alerts[0].payload().unwrap();
    let alert: frontier::records::Alert = stage.catalog.identify(payload).unwrap().deserialize(payload).unwrap();
    assert_eq!(alert.name, cdn_purger::ALERT);
    assert!(alert.summary.contains(&change.id) && alert.summary.contains("index.html"), "{}", alert.summary);
    assert!(alert.summary.contains(&etag_of(PAGE_V1)), "it says what the edge served: {}", alert.summary);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_down_is_retried_without_losing_the_change_and_only_what_failed_is_sent_again() {
    use frontier::cdn::contract::fastly::{FastlyContract, serve};
    use frontier::cdn::provider::fastly::{FastlyApi, FastlySettings};
    use frontier::cdn::provider::{Provider, Secret};

    let _turn = EDGE_TURN.lock().await;
    // The edge, and a Fastly service that is down for longer than one delivery's retries.
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fastly = serve(listener, FastlyContract::new("svc1", "tok"), shutdown.clone()).await.unwrap();
    let fastly_settings = FastlySettings { api_url: fastly.url(), ..FastlySettings::new("svc1") };
    let api = FastlyApi::with_token(reqwest::Client::new(), &fastly_settings, Secret::new("tok")).unwrap();
    let stage = stage_with("cdn.down", vec![Target::new("fastly", Provider::Fastly(api), true)]).await;
    deploy(&stage, &v1()).await;
    results(&stage, 2).await;
    let attempts = stage.settings.workers.cdn_purger.retry.attempts;
    fastly.fail_next(attempts * 2, 503, None);

    let change = deploy(&stage, &v2()).await;
    let latest = results_of(&stage, &change.id, 2).await;
    let edge = latest.iter().find(|result| result.target == "edge").unwrap();
    let saas = latest.iter().find(|result| result.target == "fastly").unwrap();
    assert_eq!(edge.status, PurgeStatus::Skipped, "the edge was purged on the first delivery, not again: {edge:?}");
    assert_eq!(saas.status, PurgeStatus::Ok, "{saas:?}");
    let requests = fastly.requests();
    assert_eq!(
        requests,
        1 + u64::from(attempts) * 2 + 1,
        "the first deploy, two deliveries' failed retries, the purge"
    );
    let accepted = fastly.purges();
    assert_eq!(accepted.len(), 2, "one purge per deploy");
    assert_eq!(accepted[1].items, [format!("f:{}/index.html", stage.site)]);
    assert_eq!(fetch(&stage, "index.html").await.etag, etag_of(PAGE_V2));
}
