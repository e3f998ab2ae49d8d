//! `frontier deploy` and `frontier rollback` as an operator runs them, against the real stack
//! (`ops/stack up`): a configuration folder and topic files of the test's own, real
//! `frontier run serve` instances under steady load, the deployments table and the audit trail
//! in a PostgreSQL schema of the test's own.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use frontier::audit::{AuditFilter, AuditTrail};
use frontier::autoscale::LagSampler;
use frontier::bus::json::json_to_avro;
use frontier::bus::{SchemaCatalog, kafka};
use frontier::deploy::DeploymentStore;
use frontier::market::seed::{SeedPlan, seed_prices};
use frontier::market::{PriceStore, RecordedQueryEvents, StoreOptions};
use frontier::settings::Settings;
use frontier::topics::TopicSpec;
use frontier::workers::autoscaler::{LocalActuatorSettings, LocalProcesses};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use serde_json::json;

/// A starting instance may wait on the group coordinator for a while on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(180);

/// One operator's world: a config folder, topic files, a schema.
struct Release {
    dir: tempfile::TempDir,
    settings: Settings,
    schema: String,
    topics: Vec<TopicSpec>,
}

impl Release {
    async fn new(name: &str) -> Release {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings();
        let topic = |what: &str| unique(&format!("deploy.{name}.{what}"));
        let names = serving_topics(&mut settings, topic);
        settings.audit.topic = topic("audit");
        settings.workers.serve.group_id = Some(unique(&format!("deploy.{name}.serve")));
        // Nothing else of the platform is this test's business.
        settings.workers.inference.overrides_topic = None;
        let schema = format!("test_deploy_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        settings.prices.schema = Some(schema.clone());
        settings.audit.schema = Some(schema.clone());
        settings.gateway.auth.schema = Some(schema.clone());
        settings.cache.disk_dir = dir.path().join("cache");
        settings.cache.encryption_keys_env = String::new();
        settings.cache.redis_key_prefix = format!("test:deploy:{schema}");
        settings.paths.topics = dir.path().join("topics");
        settings.workers.autoscaler.local = LocalActuatorSettings {
            state_dir: dir.path().join("instances"),
            first_metrics_port: first_metrics_port(),
            stop_timeout: Duration::from_secs(30),
            ..LocalActuatorSettings::default()
        };
        let mut topics: Vec<TopicSpec> = names.iter().map(|name| TopicSpec::scratch(name, 4)).collect();
        topics.push(TopicSpec::scratch(&settings.audit.topic, 1));
        let release = Release { dir, settings, schema, topics };
        require_kafka(&release.settings);
        release.write();
        release
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn config_file(&self) -> PathBuf {
        self.config_dir().join("development.toml")
    }

    /// Writes the settings as `config/development.toml` and each topic as a file.
    fn write(&self) {
        std::fs::create_dir_all(self.config_dir()).unwrap();
        std::fs::write(self.config_file(), toml::to_string_pretty(&self.settings).unwrap()).unwrap();
        let topics = &self.settings.paths.topics;
        let _ = std::fs::remove_dir_all(topics);
        std::fs::create_dir_all(topics).unwrap();
        for spec in &self.topics {
            std::fs::write(topics.join(format!("{}.toml", spec.name)), toml::to_string_pretty(spec).unwrap()).unwrap();
        }
    }

    /// `frontier <args>` on this release; returns (success, stdout + stderr).
    fn frontier(&self, args: &[&str]) -> (bool, String) {
        let output = frontier()
            .args(args)
            .env("FRONTIER_ENV", "development")
            .env("FRONTIER_CONFIG_DIR", self.config_dir())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }

    async fn deployments(&self) -> DeploymentStore {
        DeploymentStore::connect(&self.settings.postgres, Some(&self.schema)).await.expect("PostgreSQL is up")
    }

    async fn audited(&self, action: &str) -> Vec<frontier::records::AuditEvent> {
        let trail = AuditTrail::connect(&self.settings.kafka, &self.settings.postgres, &self.settings.audit, catalog());
        let filter = AuditFilter { action: Some(action.into()), limit: 50, ..AuditFilter::default() };
        trail.await.unwrap().recent(&filter).await.unwrap()
    }

    /// The cluster's value of `config` on `topic`.
    async fn topic_config(&self, topic: &str, config: &str) -> Option<String> {
        let admin = kafka::admin(&self.settings.kafka).unwrap();
        let described = frontier::topics::describe(&admin, &[topic], Duration::from_secs(10)).await.unwrap();
        described.get(topic).and_then(|t| t.configs.get(config).cloned())
    }

    async fn finish(self) {
        let store = self.deployments().await;
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(store.pool()).await.unwrap();
    }
}

/// The encoded analysis request `id`, issued now.
fn request(catalog: &SchemaCatalog, id: &str, symbol: &str) -> Vec<u8> {
    let schema = catalog.by_file("request.avsc").unwrap();
    let now = frontier::clock::now_millis();
    let json = json!({
        "id": id, "tenant": "acme", "user": "ops", "kind": "market.volatility",
        "params": {"symbol": symbol, "window_days": 30}, "priority": "normal",
        "issued_at": now, "deadline": null, "reply_to": null, "entitlements": []
    });
    SchemaCatalog::encode_value(&schema, json_to_avro(&json, &schema.schema).unwrap()).unwrap()
}

fn await_members(settings: &Settings, members: usize) {
    let sampler = LagSampler::new(&settings.kafka, Duration::from_secs(5)).unwrap();
    let serve = &settings.workers.serve;
    let group = serve.group_id.clone().unwrap();
    let started = Instant::now();
    loop {
        let seen = sampler.sample(&group, std::slice::from_ref(&serve.input_topic));
        if seen.as_ref().is_ok_and(|s| s.members == members && s.state == "Stable") {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "the serving group is {seen:?}, not {members} stable members");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_during_steady_load_restarts_every_instance_and_answers_every_request() {
    let release = Release::new("rolling").await;
    let settings = release.settings.clone();
    // The prices the requests read, in the test's schema.
    let options = StoreOptions { schema: Some(release.schema.clone()), application: "frontier-tests".into() };
    let store = PriceStore::connect(&settings.postgres, options, Arc::new(RecordedQueryEvents::default()))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not usable ({e}): {START_HINT}"));
    let plan = SeedPlan { symbols: 3, days: 300, seed: 7, names: Vec::new(), benchmark: None };
    seed_prices(&store, &plan, |_, _| {}).await.unwrap();
    let (ok, out) = release.frontier(&["topics", "apply"]);
    assert!(ok, "{out}");

    // Two serving instances, started as the autoscaler's local actuator starts them.
    let program = PathBuf::from(env!("CARGO_BIN_EXE_frontier"));
    let env = vec![
        ("FRONTIER_ENV".to_owned(), "development".to_owned()),
        ("FRONTIER_CONFIG_DIR".to_owned(), release.config_dir().display().to_string()),
    ];
    let local = &settings.workers.autoscaler.local;
    // Also the instances `frontier deploy` starts in its own process, which `instances` never knows.
    let recorded = common::process::RecordedInstances { state_dir: local.state_dir.clone(), worker: "serve" };
    let instances = LocalProcesses::open(local, program, env).unwrap();
    assert_eq!(instances.scale("serve", 2).unwrap(), 2);
    let before: Vec<String> = instances.instances("serve").into_iter().map(|i| i.id).collect();
    await_members(&settings, 2);

    // Steady load: 40 requests a second, each id remembered, until told to stop.
    let catalog = catalog();
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    let loading = Arc::new(AtomicBool::new(true));
    let load = {
        let (sent, loading, catalog, topic) =
            (sent.clone(), loading.clone(), catalog.clone(), settings.workers.serve.input_topic.clone());
        let producer = kafka::producer(&settings.kafka).unwrap();
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut every = tokio::time::interval(Duration::from_millis(25));
            while loading.load(Ordering::Relaxed) {
                every.tick().await;
                let id = format!("deploy-{n}");
                let payload = request(&catalog, &id, &format!("SYN000{}", n % 3 + 1));
                let delivered =
                    producer.send(FutureRecord::to(&topic).key(&id).payload(&payload), Duration::from_secs(10));
                delivered.await.expect("the request is in Kafka");
                sent.lock().unwrap().push(id);
                n += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (ok, out) = release.frontier(&["deploy", "--restart", "local", "--only", "serve"]);
    assert!(ok, "the deploy succeeds: {out}");
    eprintln!("{out}");
    assert_eq!(out.matches("restarted serve").count(), 2, "both instances are replaced: {out}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    loading.store(false, Ordering::Relaxed);
    load.await.unwrap();

    // Every request sent before, during and after the deploy has its answer.
    let sent: HashSet<String> = sent.lock().unwrap().iter().cloned().collect();
    let answered = answered_ids(&settings, &catalog, &sent, Duration::from_secs(90));
    let missing: Vec<&String> = sent.iter().filter(|id| !answered.contains(*id)).collect();
    assert!(sent.len() > 100, "the load ran through the deploy ({} requests)", sent.len());
    assert!(missing.is_empty(), "{} of {} requests unanswered: {missing:?}", missing.len(), sent.len());
    eprintln!("{} requests sent during the deploy, every one answered", sent.len());

    // The instances are new ones, and the release is on record.
    let reloaded =
        LocalProcesses::open(&settings.workers.autoscaler.local, PathBuf::from("frontier"), Vec::new()).unwrap();
    let after: Vec<String> = reloaded.instances("serve").into_iter().map(|i| i.id).collect();
    assert_eq!(after.len(), 2, "the group runs as many instances as before");
    assert!(after.iter().all(|id| !before.contains(id)), "every instance was replaced: {before:?} -> {after:?}");
    let history = release.deployments().await.history("development", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, "deploy");
    assert_eq!(history[0].config_file, std::fs::read_to_string(release.config_file()).unwrap());
    let audited = release.audited("deploy").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].parameters["deployment"], history[0].id);
    assert!(audited[0].detail.as_deref().unwrap_or_default().contains("2 instance(s) replaced"), "{audited:?}");
    // Before `finish` deletes the state folder the guard reads.
    drop(recorded);
    release.finish().await;
}

/// The request ids among `wanted` answered on the responses topic, read until all are or
/// `patience` passes.
fn answered_ids(
    settings: &Settings,
    catalog: &SchemaCatalog,
    wanted: &HashSet<String>,
    patience: Duration,
) -> HashSet<String> {
    let consumer: BaseConsumer = kafka::base_config(&settings.kafka)
        .set("group.id", unique("deploy.reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&settings.workers.serve.responses_topic]).unwrap();
    let mut answered = HashSet::new();
    let started = Instant::now();
    while started.elapsed() < patience && !wanted.iter().all(|id| answered.contains(id)) {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) else { continue };
        let Some(payload) = message.payload() else { continue };
        let decoded = frontier::bus::json::avro_to_json(&catalog.decode(payload).unwrap().value);
        if let Some(id) = decoded["request_id"].as_str() {
            answered.insert(id.to_owned());
        }
    }
    answered
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_restores_the_previous_config_and_topic_configs() {
    let mut release = Release::new("rollback").await;
    let (ok, out) = release.frontier(&["deploy", "--restart", "none"]);
    assert!(ok, "{out}");
    let first = std::fs::read_to_string(release.config_file()).unwrap();
    let responses = release.settings.workers.serve.responses_topic.clone();

    // The second release: a longer retention and another setting.
    release.settings.workers.serve.max_entitlements += 1;
    for spec in release.topics.iter_mut().filter(|spec| spec.name == responses) {
        spec.retention_ms = 7_200_000;
    }
    release.write();
    let (ok, out) = release.frontier(&["deploy", "--restart", "none"]);
    assert!(ok, "{out}");
    assert_eq!(release.topic_config(&responses, "retention.ms").await.as_deref(), Some("7200000"));

    let (ok, out) = release.frontier(&["rollback", "--restart", "none"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(release.config_file()).unwrap(), first, "the first config file is back");
    assert_eq!(release.topic_config(&responses, "retention.ms").await.as_deref(), Some("3600000"), "{out}");
    let history = release.deployments().await.history("development", 10).await.unwrap();
    assert_eq!(history.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(), ["rollback", "deploy", "deploy"]);
    assert_eq!(history[0].restores.as_deref(), Some(history[2].id.as_str()));
    let audited = release.audited("rollback").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].outcome, frontier::records::AuditOutcome::Ok);
    release.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_kafka_cannot_undo_is_refused_with_the_reason_and_changes_nothing() {
    let mut release = Release::new("refused").await;
    let (ok, out) = release.frontier(&["deploy", "--restart", "none"]);
    assert!(ok, "{out}");
    // The next release grows a topic: Kafka cannot take partitions back.
    let responses = release.settings.workers.serve.responses_topic.clone();
    for spec in release.topics.iter_mut().filter(|spec| spec.name == responses) {
        spec.partitions = 6;
    }
    release.write();
    let (ok, out) = release.frontier(&["deploy", "--restart", "none"]);
    assert!(ok, "{out}");
    let deployed = std::fs::read_to_string(release.config_file()).unwrap();

    let (ok, out) = release.frontier(&["rollback", "--restart", "none"]);
    assert!(!ok, "the rollback is refused: {out}");
    assert!(out.contains("cannot remove partitions"), "the reason is given: {out}");
    assert_eq!(std::fs::read_to_string(release.config_file()).unwrap(), deployed, "nothing changed");
    let history = release.deployments().await.history("development", 10).await.unwrap();
    assert_eq!(history.len(), 2, "no rollback is recorded");
    let audited = release.audited("rollback").await;
    assert_eq!(audited[0].outcome, frontier::records::AuditOutcome::Refused);
    release.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preflight_that_fails_changes_nothing_and_is_audited() {
    let mut release = Release::new("preflight").await;
    let (ok, out) = release.frontier(&["deploy", "--restart", "none"]);
    assert!(ok, "{out}");
    // Fewer partitions than the cluster has: refused by the plan.
    let requests = release.settings.workers.serve.input_topic.clone();
    for spec in release.topics.iter_mut().filter(|spec| spec.name == requests) {
        spec.partitions = 1;
    }
    release.write();
    let (ok, out) = release.frontier(&["deploy", "--dry-run"]);
    assert!(!ok, "{out}");
    let (ok, out) = release.frontier(&["deploy", "--restart", "none"]);
    assert!(!ok, "{out}");
    assert!(out.contains("preflight FAILED") && out.contains(&requests), "{out}");
    assert_eq!(release.deployments().await.history("development", 10).await.unwrap().len(), 1);
    let audited = release.audited("deploy").await;
    assert_eq!(audited[0].outcome, frontier::records::AuditOutcome::Refused, "{audited:?}");
    release.finish().await;
}
