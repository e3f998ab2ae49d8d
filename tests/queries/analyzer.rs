//! The `query-analyzer` worker against the real broker and PostgreSQL: query events in,
//! findings and index advice out.

use std::sync::Arc;
use std::time::Duration;

use frontier::bus::{ConsumerLoop, LoopOptions, LoopReport, dlq};
use frontier::clock::now_millis;
use frontier::queries::{RecommendationStore, StoredRecommendation};
use frontier::records::{QueryEvent, QueryStatus};
use frontier::settings::Settings;
use frontier::workers::query_analyzer::{QueryAnalyzer, QueryAnalyzerSettings};
use serde_json::Value;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use super::common::process::assert_no_dead_letters;
use super::common::{catalog, create_topics, decoded_json, frontier, header, produce, read_topic, settings, unique};
use super::{ORDERS, ScratchDatabase};

const LOOKUP: &str = "SELECT id, amount FROM orders WHERE customer = $1";

struct Analyzer {
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<LoopReport, frontier::bus::BusError>>,
}

impl Analyzer {
    async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().expect("the analyzer stops cleanly");
    }
}

/// Topics of their own, short windows (the shipped rules), advice every second.
async fn setup(name: &str, database_url: &str) -> (Settings, QueryAnalyzerSettings) {
    let mut settings = settings();
    let [input, findings, recommendations, dead] =
        ["events", "findings", "advice", "dlq"].map(|topic| unique(&format!("{name}.{topic}")));
    settings.bus.dlq_topic = dead.clone();
    create_topics(&settings, &[&input, &findings, &recommendations, &dead], 1).await;
    let analyzer = QueryAnalyzerSettings {
        input_topic: input,
        findings_topic: findings,
        recommendations_topic: recommendations,
        window: Duration::from_secs(3),
        allowed_lateness: Duration::from_millis(500),
        evaluate_interval: Duration::from_millis(250),
        database_url: Some(database_url.to_owned()),
        advise_interval: Duration::from_secs(1),
        ..QueryAnalyzerSettings::default()
    };
    (settings, analyzer)
}

fn start(settings: &Settings, analyzer: &QueryAnalyzerSettings) -> Analyzer {
    start_with_store(settings, analyzer, &settings.postgres.url.clone())
}

fn start_with_store(settings: &Settings, analyzer: &QueryAnalyzerSettings, store_url: &str) -> Analyzer {
    let catalog = catalog();
    let url = analyzer.database_url.clone().unwrap();
    let worker = Arc::new(QueryAnalyzer::new(analyzer.clone(), url, store_url, catalog.clone()));
    let options = LoopOptions::new(&settings.bus, unique("query-analyzer"), vec![analyzer.input_topic.clone()]);
    let consumer_loop = ConsumerLoop::new(&settings.kafka, options, worker, catalog).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer_loop.run(token.clone()));
    Analyzer { token, task }
}

/// One run of `sql` on `database`, `ms` long, at `at_ms`.
fn event(database: &str, sql: &str, ms: f64, at_ms: i64) -> QueryEvent {
    QueryEvent {
        id: uuid::Uuid::new_v4().to_string(),
        sql: sql.to_owned(),
        fingerprint: None,
        duration_ms: ms,
        rows: 1,
        database: database.to_owned(),
        application: "shop".into(),
        status: QueryStatus::Ok,
        error: None,
        occurred_at: at_ms,
        calls: 1,
    }
}

/// `count` runs of `sql` on `database`, `ms` each, happening now.
fn events(database: &str, sql: &str, ms: f64, count: usize) -> Vec<(Option<String>, Vec<u8>)> {
    events_at(database, sql, ms, count, now_millis())
}

/// `count` runs of `sql` on `database`, `ms` each, at `at_ms`.
fn events_at(database: &str, sql: &str, ms: f64, count: usize, at_ms: i64) -> Vec<(Option<String>, Vec<u8>)> {
    let catalog = catalog();
    (0..count).map(|_| (None, catalog.encode_record(&event(database, sql, ms, at_ms)).unwrap())).collect()
}

/// The records on `topic`, decoded, once there are `count` (or `patience` passed).
async fn records_within(settings: &Settings, topic: &str, count: usize, patience: Duration) -> Vec<Value> {
    let (settings, topic) = (settings.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || decoded_json(&catalog(), &read_topic(&settings, &topic, count, patience)))
        .await
        .unwrap()
}

async fn records(settings: &Settings, topic: &str, count: usize) -> Vec<Value> {
    records_within(settings, topic, count, Duration::from_secs(30)).await
}

#[tokio::test]
async fn slow_statements_become_findings_and_their_missing_index_becomes_advice() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    let (settings, config) = setup("analyzer", &database.url).await;
    let analyzer = start(&settings, &config);

    // One moment for both shapes, so they share a window.
    let now = now_millis();
    let mut published = events_at(&database.name, LOOKUP, 30.0, 120, now);
    published.extend(events_at(&database.name, "SELEKT id FROM orders WHERE customer = $1", 30.0, 120, now));
    produce(&settings, &config.input_topic, published).await;

    let findings = records(&settings, &config.findings_topic, 2).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");
    let lookup = findings.iter().find(|f| f["parsed"] == true).unwrap();
    assert_eq!(lookup["fingerprint"], frontier::queries::fingerprint(LOOKUP));
    assert_eq!((lookup["kind"].as_str(), lookup["calls"].as_i64()), (Some("slow"), Some(120)));
    assert!((lookup["p95_ms"].as_f64().unwrap() - 30.0).abs() < 0.1, "{lookup:#}");
    assert_eq!(lookup["window_findings"], 2);
    // Unparseable SQL is a finding too, by the fingerprint of its text.
    let unparsed = findings.iter().find(|f| f["parsed"] == false).unwrap();
    assert_eq!(unparsed["fingerprint"], frontier::queries::fingerprint("selekt id from orders where customer = $1"));

    let advice = records(&settings, &config.recommendations_topic, 1).await;
    let index = advice.iter().find(|a| a["table_name"] == "public.orders" && a["columns"][0] == "customer");
    let index = index.unwrap_or_else(|| panic!("no advice on orders (customer): {advice:#?}"));
    assert_eq!(index["action"], "create");
    assert_eq!(index["query_fingerprints"], serde_json::json!([frontier::queries::fingerprint(LOOKUP)]));
    assert!(index["improvement_ratio"].as_f64().unwrap() > 2.0, "{index:#}");
    analyzer.stop().await;
    assert_no_dead_letters(&settings, &settings.bus.dlq_topic);
    database.drop().await;
}

#[tokio::test]
async fn an_unreachable_database_stops_advice_not_findings() {
    let (settings, config) = setup("analyzer-nodb", "postgres://frontier:frontier@127.0.0.1:1/nowhere").await;
    let analyzer = start(&settings, &config);
    produce(&settings, &config.input_topic, events("nowhere", LOOKUP, 45.0, 100)).await;
    let findings = records(&settings, &config.findings_topic, 1).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(!analyzer.task.is_finished(), "the analyzer stopped");
    // Advice was tried every second meanwhile, and failed each time without a word on the topic.
    let advice = records_within(&settings, &config.recommendations_topic, 1, Duration::from_secs(3)).await;
    assert!(advice.is_empty(), "{advice:#?}");
    analyzer.stop().await;
}

#[tokio::test]
async fn an_event_from_the_far_future_is_dead_lettered_not_kept_open() {
    let (settings, config) = setup("analyzer-future", "postgres://frontier:frontier@127.0.0.1:1/nowhere").await;
    let analyzer = start(&settings, &config);
    let catalog = catalog();
    let event = event("shop", LOOKUP, 1.0, i64::MAX / 2);
    produce(&settings, &config.input_topic, vec![(None, catalog.encode_record(&event).unwrap())]).await;
    let letters = {
        let (settings, topic) = (settings.clone(), settings.bus.dlq_topic.clone());
        tokio::task::spawn_blocking(move || read_topic(&settings, &topic, 1, Duration::from_secs(30))).await.unwrap()
    };
    analyzer.stop().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(header(&letters[0], dlq::header::ERROR_KIND).as_deref(), Some("implausible_time"));
}

/// The recommendations table, as `frontier queries apply` and the analyzer see it.
async fn store(settings: &Settings) -> RecommendationStore {
    RecommendationStore::open(sqlx::PgPool::connect(&settings.postgres.url).await.unwrap()).await.unwrap()
}

/// Waits for the verdict on an applied recommendation.
async fn verdict(store: &RecommendationStore, id: &str) -> StoredRecommendation {
    for _ in 0..120 {
        let stored = store.get(id).await.unwrap().unwrap();
        if stored.paid_off.is_some() {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no verdict on {id} within 30 s");
}

/// Slow lookups until the analyzer advises the customer index; returns its id, after applying
/// it with `frontier queries apply` and waiting for the next window to begin.
async fn advise_and_apply(settings: &Settings, config: &QueryAnalyzerSettings, database: &ScratchDatabase) -> String {
    produce(settings, &config.input_topic, events(&database.name, LOOKUP, 30.0, 120)).await;
    let advice = records(settings, &config.recommendations_topic, 1).await;
    let id = advice
        .iter()
        .find(|a| a["table_name"] == "public.orders" && a["columns"][0] == "customer")
        .unwrap_or_else(|| panic!("no advice on orders (customer): {advice:#?}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The apply is audited on the platform's own trail (frontier.audit): make sure it exists.
    assert!(frontier().args(["topics", "apply"]).status().unwrap().success());
    let output = frontier().args(["queries", "apply", &id, "--database-url", &database.url]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let trail = frontier::audit::AuditTrail::connect(&settings.kafka, &settings.postgres, &settings.audit, catalog());
    let filter =
        frontier::audit::AuditFilter { action: Some("queries.apply".into()), limit: 100, ..Default::default() };
    let audited = trail.await.unwrap().recent(&filter).await.unwrap();
    let event =
        audited.iter().find(|event| event.target.as_deref() == Some(id.as_str())).expect("the apply is audited");
    assert_eq!(event.outcome, frontier::records::AuditOutcome::Ok);
    assert!(event.parameters["ddl"].contains("CREATE INDEX"), "{event:?}");
    // Applying twice changes nothing.
    let again = frontier().args(["queries", "apply", &id, "--database-url", &database.url]).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("already applied"), "{again:?}");
    // Events from now on fall in windows that begin after the index exists.
    tokio::time::sleep(config.window).await;
    id
}

#[tokio::test]
async fn an_applied_index_whose_statements_got_faster_paid_off() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    let (settings, config) = setup("payoff", &database.url).await;
    let analyzer = start(&settings, &config);
    let id = advise_and_apply(&settings, &config, &database).await;

    produce(&settings, &config.input_topic, events(&database.name, LOOKUP, 0.4, 120)).await;
    let judged = verdict(&store(&settings).await, &id).await;
    analyzer.stop().await;
    assert_eq!(judged.paid_off, Some(true), "{judged:#?}");
    assert!(judged.verdict.as_deref().unwrap().contains("30.00 ms -> 0.40 ms"), "{judged:#?}");
    // The report shows it with its verdict.
    let output =
        frontier().args(["queries", "report", "--format", "json", "--database-url", &database.url]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = report["recommendations"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str());
    let listed = listed.unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!((listed["paid_off"].as_bool(), listed["action"].as_str()), (Some(true), Some("create")));
    assert!(report["statements"].is_array(), "{report:#}");
    assert!(report["connections"]["max_connections"].as_i64().unwrap() > 0, "{report:#}");
    database.drop().await;
}

#[tokio::test]
async fn an_applied_index_that_did_not_pay_off_is_advised_away() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    let (settings, config) = setup("no-payoff", &database.url).await;
    let analyzer = start(&settings, &config);
    let id = advise_and_apply(&settings, &config, &database).await;

    produce(&settings, &config.input_topic, events(&database.name, LOOKUP, 29.0, 120)).await;
    let judged = verdict(&store(&settings).await, &id).await;
    let advice = records(&settings, &config.recommendations_topic, 2).await;
    analyzer.stop().await;
    assert_eq!(judged.paid_off, Some(false), "{judged:#?}");
    let drop = advice.iter().find(|a| a["action"] == "drop").unwrap_or_else(|| panic!("no drop advice: {advice:#?}"));
    assert_eq!(drop["create_statement"], "DROP INDEX CONCURRENTLY IF EXISTS public.orders_customer_idx");
    database.drop().await;
}

#[tokio::test]
async fn a_literal_every_run_shares_becomes_a_partial_index() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database
        .setup(
            "CREATE TABLE tickets (id bigint NOT NULL, status text NOT NULL, customer int NOT NULL, note text); \
             INSERT INTO tickets SELECT g, CASE WHEN g % 100 = 0 THEN 'open' ELSE 'closed' END, g % 5000, \
             repeat('x', 60) FROM generate_series(1, 300000) g; \
             VACUUM ANALYZE tickets;",
        )
        .await;
    let (settings, config) = setup("partial", &database.url).await;
    let analyzer = start(&settings, &config);
    // The status is the same literal in every run; the customer changes.
    let catalog = catalog();
    let now = now_millis();
    let published: Vec<(Option<String>, Vec<u8>)> = (0..120)
        .map(|i| {
            let sql = format!("SELECT id, note FROM tickets WHERE status = 'open' AND customer = {}", i * 41 % 5000);
            (None, catalog.encode_record(&event(&database.name, &sql, 30.0, now)).unwrap())
        })
        .collect();
    produce(&settings, &config.input_topic, published).await;

    let advice = records(&settings, &config.recommendations_topic, 1).await;
    analyzer.stop().await;
    let index = advice.iter().find(|a| a["table_name"] == "public.tickets").unwrap_or_else(|| panic!("{advice:#?}"));
    assert_eq!(index["columns"], serde_json::json!(["customer"]), "{index:#}");
    assert!(index["create_statement"].as_str().unwrap().ends_with("(customer) WHERE status = 'open'"), "{index:#}");
    database.drop().await;
}

#[tokio::test]
async fn the_analyzer_carries_on_after_its_database_connections_are_cut_as_by_a_restart() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    database
        .setup(
            "CREATE TABLE accounts (aid int NOT NULL, abalance int NOT NULL, filler char(84)); \
             INSERT INTO accounts SELECT g, 0, '' FROM generate_series(1, 200000) g; VACUUM ANALYZE accounts;",
        )
        .await;
    let (settings, config) = setup("cut", &database.url).await;
    // Its recommendations table in the scratch database too, so only this test's connections are cut.
    let analyzer = start_with_store(&settings, &config, &database.url);
    produce(&settings, &config.input_topic, events(&database.name, LOOKUP, 30.0, 120)).await;
    assert_eq!(records(&settings, &config.recommendations_topic, 1).await.len(), 1);

    // What a PostgreSQL restart does to every open connection.
    let mut admin = sqlx::PgConnection::connect(&settings.postgres.url).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&database.name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!cut.is_empty(), "the analyzer held no connection to cut");

    let balance = "SELECT abalance FROM accounts WHERE aid = $1";
    produce(&settings, &config.input_topic, events(&database.name, balance, 30.0, 120)).await;
    let advice = records(&settings, &config.recommendations_topic, 2).await;
    assert!(!analyzer.task.is_finished(), "the analyzer stopped");
    analyzer.stop().await;
    let accounts = advice.iter().find(|a| a["table_name"] == "public.accounts");
    let accounts = accounts.unwrap_or_else(|| panic!("no advice after the cut: {advice:#?}"));
    // The table took it too: its pool reconnected.
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let stored = RecommendationStore::open(pool).await.unwrap().get(accounts["id"].as_str().unwrap()).await.unwrap();
    assert!(stored.is_some(), "the advice after the cut is not in the table");
    drop(admin);
    database.drop().await;
}
