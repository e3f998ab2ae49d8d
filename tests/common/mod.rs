//! Shared set-up for the tests that run against the real local stack (`ops/stack up`).
#![allow(dead_code)]

pub mod avro_tools;
pub mod model_server;
pub mod process;
pub mod redis;
pub mod sla;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use frontier::bus::json::json_to_avro;
use frontier::bus::{SchemaCatalog, kafka};
use frontier::settings::Settings;
use frontier::topics::{self, TopicSpec};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};

pub const START_HINT: &str = "start the local stack with `ops/stack up` (or run every test with `ops/test`)";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Development settings with the repo's schemas and topics, as a test process sees them.
pub fn settings() -> Settings {
    let mut settings = Settings::load(frontier::config::Environment::Development, &repo().join("config"))
        .expect("config/development.toml loads");
    settings.paths.schemas = repo().join("schemas");
    settings.paths.topics = repo().join("topics");
    settings.bus.shutdown_timeout = Duration::from_secs(10);
    settings
}

/// Fails the test with instructions when Kafka is down, rather than skipping it.
pub fn require_kafka(settings: &Settings) {
    let admin = kafka::admin(&settings.kafka).expect("admin client");
    if let Err(error) = admin.inner().fetch_metadata(None, Duration::from_secs(10)) {
        panic!("Kafka is not reachable at {} ({error}): {START_HINT}", settings.kafka.bootstrap_servers);
    }
}

/// A port the stack's Prometheus scrapes (ops/prometheus/local.yml) that nothing listens on
/// now; 9464 is left to a hand-started worker.
pub fn free_scraped_port() -> u16 {
    (9465..=9474)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port among the scraped 9465-9474")
}

/// A first metrics port for a local actuator that no other actuator of this test binary starts
/// from. Tests run concurrently: two actuators that both probe a port before either instance has
/// bound it both take it, and the second instance dies on start (address in use).
pub fn first_metrics_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(19_475);
    NEXT.fetch_add(20, std::sync::atomic::Ordering::Relaxed)
}

/// A topic name no other test or run uses.
pub fn unique(name: &str) -> String {
    format!("test.{name}.{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Points a serving worker's topics (requests, responses, metrics, heat, invalidations, dead
/// letters) at fresh names made by `topic`, with no query events; returns the names to create.
pub fn serving_topics(settings: &mut Settings, topic: impl Fn(&str) -> String) -> Vec<String> {
    let serve = &mut settings.workers.serve;
    serve.input_topic = topic("requests");
    serve.responses_topic = topic("responses");
    serve.metrics_topic = topic("metrics");
    serve.heat_topic = topic("heat");
    settings.cache.invalidations_topic = topic("invalidations");
    settings.prices.query_events_topic = None;
    settings.bus.dlq_topic = topic("dlq");
    let serve = &settings.workers.serve;
    vec![
        serve.input_topic.clone(),
        serve.responses_topic.clone(),
        serve.metrics_topic.clone(),
        serve.heat_topic.clone(),
        settings.cache.invalidations_topic.clone(),
        settings.bus.dlq_topic.clone(),
    ]
}

pub fn catalog() -> Arc<SchemaCatalog> {
    Arc::new(SchemaCatalog::load_dir(&repo().join("schemas")).expect("schemas load"))
}

/// Creates topics for one test (and waits until they are visible).
pub async fn create_topics(settings: &Settings, names: &[&str], partitions: i32) {
    require_kafka(settings);
    let admin = kafka::admin(&settings.kafka).expect("admin client");
    let specs: Vec<TopicSpec> = names.iter().map(|n| TopicSpec::scratch(n, partitions)).collect();
    let plan = topics::plan(&specs, &Default::default());
    topics::apply(&admin, &plan, Duration::from_secs(30)).await.expect("test topics created");
}

/// A valid `frontier.requests` record.
pub fn request_json(id: &str) -> Value {
    json!({
        "id": id, "tenant": "acme", "user": "ana", "kind": "market.volatility",
        "params": {"symbol": "AAPL", "window_days": 30}, "priority": "normal",
        "issued_at": 1_764_230_400_000i64, "deadline": null, "reply_to": null, "entitlements": []
    })
}

/// `request_json(id)` encoded as on the wire.
pub fn request_bytes(catalog: &SchemaCatalog, id: &str) -> Vec<u8> {
    let schema = catalog.by_file("request.avsc").unwrap();
    SchemaCatalog::encode_value(&schema, json_to_avro(&request_json(id), &schema.schema).unwrap()).unwrap()
}

/// Produces raw records and waits for their acknowledgements.
pub async fn produce(settings: &Settings, topic: &str, records: Vec<(Option<String>, Vec<u8>)>) {
    let producer = kafka::producer(&settings.kafka).expect("producer");
    let sends = records.iter().map(|(key, payload)| {
        let mut record = FutureRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        producer.send(record, Timeout::Never)
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(e, _)| e).expect("record acknowledged");
    }
}

/// Reads a topic from the beginning until `count` messages arrived or `patience` ran out.
pub fn read_topic(settings: &Settings, topic: &str, count: usize, patience: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = kafka::base_config(&settings.kafka)
        .set("group.id", format!("test.reader.{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let started = Instant::now();
    let mut messages = Vec::new();
    while messages.len() < count && started.elapsed() < patience {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            messages.push(message.expect("message").detach());
        }
    }
    messages
}

/// Every message decoded to JSON; a message that does not decode fails the test.
pub fn decoded_json(catalog: &SchemaCatalog, messages: &[OwnedMessage]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            frontier::bus::json::avro_to_json(&catalog.decode(m.payload().expect("payload")).expect("decodes").value)
        })
        .collect()
}

/// The `id` field of every decodable message.
pub fn ids(catalog: &SchemaCatalog, messages: &[OwnedMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| catalog.decode(m.payload()?).ok())
        .filter_map(|d| frontier::bus::json::avro_to_json(&d.value)["id"].as_str().map(String::from))
        .collect()
}

/// The header of a message as text.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The `frontier` binary, run from the repo root with the development config.
pub fn frontier() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_frontier"));
    command
        .current_dir(repo())
        .env("FRONTIER_ENV", "development")
        .env("FRONTIER_CONFIG_DIR", repo().join("config"))
        .env_remove("RUST_LOG");
    command
}

/// Writes topic files into a fresh folder, for commands that read `paths.topics`.
pub fn topic_dir(specs: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, body) in specs {
        std::fs::write(dir.path().join(format!("{name}.toml")), format!("name = \"{name}\"\n{body}")).unwrap();
    }
    dir
}

pub fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A member of `group` on `topic` that has consumed and committed `count` messages; it stays
/// in the group until dropped.
pub fn member_after(group: &str, topic: &str, count: usize) -> BaseConsumer {
    member_on(&settings().kafka, group, topic, count)
}

/// As [`member_after`], with the client settings of `kafka` (a group protocol, say).
pub fn member_on(kafka: &frontier::bus::KafkaSettings, group: &str, topic: &str, count: usize) -> BaseConsumer {
    let consumer: BaseConsumer = kafka::base_config(kafka)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let started = Instant::now();
    let mut consumed = 0;
    while consumed < count {
        assert!(started.elapsed() < Duration::from_secs(30), "consumed only {consumed} of {count} messages");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            consumer.store_offset(message.topic(), message.partition(), message.offset()).unwrap();
            consumed += 1;
        }
    }
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    consumer
}

/// The group's committed offsets on partitions `0..partitions` of `topic` (`None`: never committed).
pub fn committed_offsets(settings: &Settings, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = kafka::base_config(&settings.kafka).set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    // Retried while the group's coordinator moves (a broker down in the chaos tests).
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = loop {
        match consumer.committed_offsets(list.clone(), Duration::from_secs(10)) {
            Ok(committed) => break committed,
            Err(error) if Instant::now() < deadline => {
                eprintln!("committed offsets of {group}: {error}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(error) => panic!("committed offsets of {group} on {topic}: {error}"),
        }
    };
    committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { Some(o) } else { None }).collect()
}

/// The group's committed offset on partition 0 of `topic`.
pub fn committed_offset(settings: &Settings, group: &str, topic: &str) -> Option<i64> {
    committed_offsets(settings, group, topic, 1)[0]
}

/// Polls `condition` on a blocking thread, sleeping 100 ms between tries, `patience` / 100 ms
/// times (so a slow condition gets as many tries as a fast one); whether it held.
pub async fn eventually(patience: Duration, condition: impl Fn() -> bool + Send + 'static) -> bool {
    const PAUSE: Duration = Duration::from_millis(100);
    let tries = patience.as_millis() / PAUSE.as_millis();
    tokio::task::spawn_blocking(move || {
        (0..tries).any(|_| {
            condition() || {
                std::thread::sleep(PAUSE);
                false
            }
        })
    })
    .await
    .expect("the polling thread")
}
