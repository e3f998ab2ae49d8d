//! The request-serving path against the real stack (`ops/stack up`): requests published to a
//! test topic, answered by in-process serving workers (and a cache warmer) over PostgreSQL
//! prices seeded into a schema of the test's own, with the stack's Redis under a key prefix of
//! the test's own (or a private `redis-server` for the outage test).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod answers;
#[path = "../common/mod.rs"]
mod common;
mod failures;
mod group;
mod invalidation;
mod warmer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::{delete_prefix, stack_redis};
use common::{START_HINT, catalog, create_topics, serving_topics, unique};
use frontier::bus::json::{avro_to_json, json_to_avro};
use frontier::bus::{LoopReport, SchemaCatalog, kafka};
use frontier::cache::{CacheSettings, TieredCache};
use frontier::market::seed::{SeedPlan, seed_prices};
use frontier::market::{Analysis, PriceStore, RecordedQueryEvents, StoreOptions};
use frontier::settings::Settings;
use frontier::workers::serve::{ServeError, ServeWorker, ServingLoops};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How long a test waits for an answer.
const PATIENCE: Duration = Duration::from_secs(30);

/// One test's world: topics, a price store in its own schema with seeded symbols, settings.
struct World {
    settings: Settings,
    catalog: Arc<SchemaCatalog>,
    store: PriceStore,
    schema: String,
    events: Arc<RecordedQueryEvents>,
    redis_prefix: String,
    responses: Responses,
}

impl World {
    /// Topics and a seeded store (SYN0001..SYN0003, 300 days).
    async fn new(name: &str) -> World {
        let mut settings = common::settings();
        let topic = |what: &str| unique(&format!("serve.{name}.{what}"));
        let names = serving_topics(&mut settings, topic);
        settings.workers.cache_warmer.input_topic = settings.workers.serve.heat_topic.clone();
        create_topics(&settings, &names.iter().map(String::as_str).collect::<Vec<_>>(), 1).await;

        let schema = format!("test_serve_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        settings.prices.schema = Some(schema.clone());
        let events = Arc::new(RecordedQueryEvents::default());
        let options = StoreOptions { schema: Some(schema.clone()), application: "frontier-tests".into() };
        let store = match PriceStore::connect(&settings.postgres, options, events.clone()).await {
            Ok(store) => store,
            Err(error) => panic!("PostgreSQL is not usable ({error}): {START_HINT}"),
        };
        let plan = SeedPlan { symbols: 3, days: 300, seed: 7, names: Vec::new(), benchmark: None };
        seed_prices(&store, &plan, |_, _| {}).await.expect("prices seeded");
        let responses = Responses::new(&settings, &settings.workers.serve.responses_topic);
        World {
            settings,
            catalog: catalog(),
            store,
            schema,
            events,
            redis_prefix: format!("test:serve:{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            responses,
        }
    }

    /// Cache settings of one instance: the test's Redis prefix, its own disk folder, no XFetch
    /// (early refreshes at random would make answers' layers a matter of luck).
    fn cache_settings(&self, disk: &tempfile::TempDir) -> CacheSettings {
        let mut cache = self.settings.cache.clone();
        cache.memory_bytes = 8 * 1024 * 1024;
        cache.disk_dir = disk.path().to_path_buf();
        cache.disk_bytes = 16 * 1024 * 1024;
        cache.redis_key_prefix = self.redis_prefix.clone();
        cache.encryption_keys_env = String::new();
        cache.redis_retry_backoff = Duration::from_millis(200);
        cache.xfetch_beta = 0.0;
        cache
    }

    /// Starts a serving instance named `name` (its own request topic, so a test can talk to it
    /// alone) on `redis_url`.
    async fn instance(&self, name: &str, cache: CacheSettings, redis_url: Option<&str>) -> Instance {
        let settings = self.instance_settings(name).await;
        self.instance_with(settings, cache, redis_url, self.store.clone()).await
    }

    /// Settings of a new instance: its own request topic, group and instance id.
    async fn instance_settings(&self, name: &str) -> Settings {
        let mut settings = self.settings.clone();
        let serve = &mut settings.workers.serve;
        serve.input_topic = unique(&format!("serve.{name}.requests"));
        serve.instance = Some(format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        serve.group_id = Some(unique("serve.group"));
        create_topics(&settings, &[&settings.workers.serve.input_topic], 1).await;
        settings
    }

    /// Starts a serving instance with `settings` over `store`.
    async fn instance_with(
        &self,
        settings: Settings,
        cache_settings: CacheSettings,
        redis_url: Option<&str>,
        store: PriceStore,
    ) -> Instance {
        let cache = TieredCache::connect(&cache_settings, redis_url).await.expect("cache starts");
        let worker = Arc::new(
            ServeWorker::new(&settings.workers.serve, &cache_settings, cache, store, &self.catalog).expect("worker"),
        );
        let loops =
            ServingLoops::new(&settings.shared(), &settings.workers.serve, worker.clone(), self.catalog.clone())
                .expect("loops subscribe");
        let token = CancellationToken::new();
        let task = tokio::spawn(loops.run(token.clone()));
        Instance { settings, worker, token, task }
    }

    /// A price store of its own over the world's schema, with one connection open (as sqlx
    /// leaves a new pool) and its query events apart.
    async fn own_store(&self) -> PriceStore {
        let options = StoreOptions { schema: Some(self.schema.clone()), application: "frontier-tests".into() };
        PriceStore::connect(&self.settings.postgres, options, Arc::new(RecordedQueryEvents::default())).await.unwrap()
    }

    /// Statements the price store ran so far (query events).
    fn queries(&self) -> usize {
        self.events.events().len()
    }

    async fn drop_schema(&self) {
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(self.store.pool()).await.expect("test schema dropped");
    }
}

/// A running serving instance.
struct Instance {
    settings: Settings,
    worker: Arc<ServeWorker>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<LoopReport, ServeError>>,
}

impl Instance {
    /// Publishes a request (answered on the world's responses topic).
    async fn send(&self, request: &Value) {
        let catalog = catalog();
        let schema = catalog.by_file("request.avsc").unwrap();
        let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(request, &schema.schema).unwrap()).unwrap();
        let id = request["id"].as_str().unwrap().to_string();
        common::produce(&self.settings, &self.settings.workers.serve.input_topic, vec![(Some(id), bytes)]).await;
    }

    /// Publishes `request` and waits for its response.
    async fn ask(&self, world: &mut World, request: Value) -> Value {
        self.send(&request).await;
        world.responses.wait(request["id"].as_str().unwrap()).await
    }

    async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().expect("the serving loops stop cleanly");
    }
}

/// A request record; `deadline` in ms since the epoch.
fn request(kind: &str, params: Value, deadline: Option<i64>) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(), "tenant": "acme", "user": "ana", "kind": kind,
        "params": params, "priority": "normal", "issued_at": frontier::clock::now_millis(),
        "deadline": deadline, "reply_to": null, "entitlements": []
    })
}

fn volatility(symbol: &str, window_days: u32) -> Value {
    request("market.volatility", json!({"symbol": symbol, "window_days": window_days}), None)
}

/// A reader of one topic from its beginning, keeping every decoded record by an id field.
struct Responses {
    consumer: StreamConsumer,
    by_id: HashMap<String, Value>,
    id_field: &'static str,
}

impl Responses {
    fn new(settings: &Settings, topic: &str) -> Responses {
        Self::by_field(settings, topic, "request_id")
    }

    fn by_field(settings: &Settings, topic: &str, id_field: &'static str) -> Responses {
        let consumer: StreamConsumer = kafka::base_config(&settings.kafka)
            .set("group.id", format!("test.reader.{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
        consumer.assign(&assignment).expect("assign");
        Responses { consumer, by_id: HashMap::new(), id_field }
    }

    /// The record with `id`, waiting up to [`PATIENCE`].
    async fn wait(&mut self, id: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        let catalog = catalog();
        while !self.by_id.contains_key(id) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no record with {} {id} within {PATIENCE:?}", self.id_field);
            if let Ok(Ok(message)) = tokio::time::timeout(left, self.consumer.recv()).await {
                let value = avro_to_json(&catalog.decode(message.payload().unwrap()).unwrap().value);
                self.by_id.insert(value[self.id_field].as_str().unwrap_or_default().to_string(), value);
            }
        }
        self.by_id[id].clone()
    }
}

/// The analytic computed directly over the same store.
async fn computed_directly(store: &PriceStore, request: &Value) -> Value {
    let analysis = Analysis::parse(request["kind"].as_str().unwrap(), &request["params"]).unwrap();
    json!(analysis.compute(store).await.unwrap())
}

fn layer(response: &Value) -> &str {
    response["cache_layer"].as_str().unwrap()
}
