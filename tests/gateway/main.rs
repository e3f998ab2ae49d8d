//! The HTTP gateway against the real stack (`ops/stack up`): gateway instances in-process on
//! ephemeral ports, API keys in a PostgreSQL schema of the test's own, quotas in the stack's
//! Redis under a prefix of the test's own, and a real serving worker answering over Kafka.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod admin;
mod answers;
mod audit;
#[path = "../common/mod.rs"]
mod common;
mod dashboard;
mod front_door;
mod keys;
mod limits;
mod tls;
mod tokens;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{START_HINT, catalog, create_topics, serving_topics, unique};
use frontier::cache::TieredCache;
use frontier::config::RedisSettings;
use frontier::gateway::keys::{ApiKeyStore, Role};
use frontier::market::seed::{SeedPlan, seed_prices};
use frontier::market::{PriceStore, RecordedQueryEvents, StoreOptions};
use frontier::settings::Settings;
use frontier::workers::inference_batcher::ModelSettings;
use frontier::workers::serve::{ServeWorker, ServingLoops};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The model the inference settings serve.
const MODEL: &str = "m";

/// How long a test waits for a gateway to start or an answer to come.
const PATIENCE: Duration = Duration::from_secs(30);

/// One test's world: topics, a key store and a price store in a schema of its own.
struct World {
    settings: Settings,
    keys: ApiKeyStore,
    schema: String,
    http: reqwest::Client,
    stops: Vec<CancellationToken>,
}

impl World {
    async fn new(name: &str) -> World {
        let mut settings = common::settings();
        let topic = |what: &str| unique(&format!("gateway.{name}.{what}"));
        let mut names = serving_topics(&mut settings, topic);
        settings.audit.topic = topic("audit");
        let inference = &mut settings.workers.inference;
        inference.input_topic = topic("jobs");
        inference.results_topic = topic("results");
        inference.overrides_topic = Some(topic("batching"));
        inference.admin_listen = None;
        // A model served over HTTP (nothing listens there): batchers start without loading a
        // model, and the batching routes have a model to change.
        let model = ModelSettings { instances: vec!["http://127.0.0.1:9".into()], ..ModelSettings::default() };
        inference.models = BTreeMap::from([(MODEL.to_owned(), model)]);
        names.extend([
            settings.audit.topic.clone(),
            settings.workers.inference.input_topic.clone(),
            settings.workers.inference.results_topic.clone(),
            settings.workers.inference.overrides_topic.clone().unwrap_or_default(),
        ]);
        create_topics(&settings, &names.iter().map(String::as_str).collect::<Vec<_>>(), 1).await;

        let schema = format!("test_gateway_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        settings.prices.schema = Some(schema.clone());
        settings.audit.schema = Some(schema.clone());
        let gateway = &mut settings.gateway;
        gateway.analysis_topic = settings.workers.serve.input_topic.clone();
        gateway.auth.schema = Some(schema.clone());
        gateway.rate_limits.key_prefix = format!("test:gateway:{}:", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let keys = match ApiKeyStore::connect(&settings.postgres, Some(&schema)).await {
            Ok(keys) => keys,
            Err(error) => panic!("PostgreSQL is not usable ({error}): {START_HINT}"),
        };
        World { settings, keys, schema, http: reqwest::Client::new(), stops: Vec::new() }
    }

    /// A live key of `tenant` with `role`.
    async fn key(&self, tenant: &str, role: Role) -> String {
        self.keys.create(tenant, role, "gateway test").await.expect("key created").key
    }

    /// Starts a gateway instance with the world's settings changed by `adjust`; returns its
    /// base URL once `/health` answers.
    async fn gateway(&mut self, adjust: impl FnOnce(&mut Settings)) -> String {
        let mut settings = self.settings.clone();
        settings.gateway.instance = Some(format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
        adjust(&mut settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let scheme = if settings.gateway.tls.is_some() { "https" } else { "http" };
        let token = CancellationToken::new();
        self.stops.push(token.clone());
        tokio::spawn(async move {
            let stopped = frontier::gateway::run(&settings, catalog(), listener, token).await;
            stopped.expect("the gateway runs and stops cleanly");
        });
        let base = format!("{scheme}://{address}");
        let started = Instant::now();
        loop {
            if let Ok(response) = self.http.get(format!("{base}/health")).send().await
                && response.status().is_success()
            {
                return base;
            }
            assert!(started.elapsed() < PATIENCE, "the gateway did not answer /health within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a serving worker on the world's request topic over three seeded symbols, with
    /// a cache of memory and disk.
    async fn serving_worker(&mut self) {
        self.serving_worker_on(None).await;
    }

    /// [`World::serving_worker`], its cache's Redis layer on `redis` (under a prefix of its own).
    async fn serving_worker_on(&mut self, redis: Option<&RedisSettings>) {
        let events = Arc::new(RecordedQueryEvents::default());
        let options = StoreOptions { schema: Some(self.schema.clone()), application: "frontier-tests".into() };
        let store = PriceStore::connect(&self.settings.postgres, options, events).await.expect("price store");
        let plan = SeedPlan { symbols: 3, days: 300, seed: 7, names: Vec::new(), benchmark: None };
        seed_prices(&store, &plan, |_, _| {}).await.expect("prices seeded");
        let disk = tempfile::tempdir().unwrap();
        let mut cache_settings = self.settings.cache.clone();
        cache_settings.memory_bytes = 8 * 1024 * 1024;
        cache_settings.disk_dir = disk.keep();
        cache_settings.encryption_keys_env = String::new();
        cache_settings.redis_key_prefix = format!("test:gateway:{}", self.schema);
        let cache = TieredCache::connect_to(&cache_settings, redis).await.expect("cache starts");
        let serve = &self.settings.workers.serve;
        let catalog = catalog();
        let worker = Arc::new(ServeWorker::new(serve, &cache_settings, cache, store, &catalog).expect("worker"));
        let loops = ServingLoops::new(&self.settings.shared(), serve, worker, catalog).expect("loops subscribe");
        let token = CancellationToken::new();
        self.stops.push(token.clone());
        tokio::spawn(loops.run(token));
    }

    /// POSTs `body` to `path` with `key` (none when `None`).
    async fn post(&self, base: &str, path: &str, key: Option<&str>, body: &str) -> reqwest::Response {
        let mut request = self.http.post(format!("{base}{path}")).header("content-type", "application/json");
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.body(body.to_owned()).send().await.expect("the gateway answers")
    }

    /// GETs `path` with `key`.
    async fn get(&self, base: &str, path: &str, key: &str) -> reqwest::Response {
        self.http.get(format!("{base}{path}")).bearer_auth(key).send().await.expect("the gateway answers")
    }

    async fn finish(self) {
        for stop in &self.stops {
            stop.cancel();
        }
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(self.keys.pool()).await.expect("test schema dropped");
    }
}

/// The JSON body of `response`.
async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}
