//! Index advice against the real PostgreSQL 15 + HypoPG + pg_stat_statements of `ops/stack up`.
//! Each test runs its workload in a database of its own (created here, dropped at the end), so
//! `pg_stat_statements`, which every database shares, shows each test only its statements; that
//! also makes every test one on "a database that is not ours".
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod analyzer;
mod collector;
#[path = "../common/mod.rs"]
mod common;

use common::{START_HINT, frontier, settings};
use frontier::queries::{Advice, AdviceError, AdvisorSettings, StatementLoad, Workload, WorkloadError, advise};
use serde_json::Value;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

/// A database created for one test, dropped when the test ends.
struct ScratchDatabase {
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// A new database with `extensions` created in it.
    async fn create(extensions: &[&str]) -> ScratchDatabase {
        let admin_url = settings().postgres.url;
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL is not usable ({error}): {START_HINT}"));
        let name = format!("frontier_qa_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let database = ScratchDatabase { url: format!("{base}/{name}"), name };
        let mut conn = database.connect().await;
        for extension in extensions {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE EXTENSION {extension}")))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|error| panic!("CREATE EXTENSION {extension} failed ({error}): {START_HINT}"));
        }
        database
    }

    async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    /// Runs set-up SQL, statement by statement (`VACUUM` refuses the implicit transaction of
    /// a multi-statement text; no set-up here has a `;` inside a literal).
    async fn setup(&self, sql: &str) {
        let mut conn = self.connect().await;
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::raw_sql(AssertSqlSafe(statement.to_owned())).execute(&mut conn).await.unwrap();
        }
    }

    /// Runs each statement as its own top-level statement, as an application would, so
    /// `pg_stat_statements` counts it.
    async fn run_workload(&self, statements: impl IntoIterator<Item = String>) {
        let mut conn = self.connect().await;
        for statement in statements {
            sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
        }
    }

    async fn advise(&self, settings: &AdvisorSettings) -> Advice {
        let mut conn = self.connect().await;
        let workload = Workload::from_stat_statements(&mut conn, 200).await.unwrap();
        advise(&mut conn, &workload, settings).await.unwrap()
    }

    async fn drop(self) {
        let mut admin = PgConnection::connect(&settings().postgres.url).await.unwrap();
        // The analyzer's recommendations for it, in Frontier's own database.
        let stored: bool = sqlx::query_scalar("SELECT to_regclass('frontier_index_recommendations') IS NOT NULL")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if stored {
            sqlx::query("DELETE FROM frontier_index_recommendations WHERE database = $1")
                .bind(&self.name)
                .execute(&mut admin)
                .await
                .unwrap();
        }
        sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// 200,000 orders of 5,000 customers in 3 statuses, analysed and vacuumed.
const ORDERS: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, status text NOT NULL, \
     amount numeric NOT NULL, created timestamptz NOT NULL, note text); \
     INSERT INTO orders SELECT g, g % 5000, (ARRAY['open', 'paid', 'shipped'])[g % 3 + 1], g, \
     timestamptz '2026-01-01' - g * interval '1 minute', repeat('x', 40) FROM generate_series(1, 200000) g; \
     VACUUM ANALYZE orders;";

fn creates<'a>(advice: &'a Advice, table: &str, leading: &str) -> Option<&'a frontier::queries::IndexAdvice> {
    advice
        .create
        .iter()
        .find(|index| index.table == table && index.columns.first().map(String::as_str) == Some(leading))
}

/// Pages touched and milliseconds taken by one run of `sql`, from EXPLAIN ANALYZE.
async fn measure(conn: &mut PgConnection, sql: &str) -> (i64, f64) {
    let plan: Value = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")))
        .fetch_one(conn)
        .await
        .unwrap();
    let root = &plan[0];
    let pages =
        root["Plan"]["Shared Hit Blocks"].as_i64().unwrap() + root["Plan"]["Shared Read Blocks"].as_i64().unwrap();
    (pages, root["Execution Time"].as_f64().unwrap())
}

/// Median pages and milliseconds over five runs.
async fn median_measure(conn: &mut PgConnection, sql: &str) -> (i64, f64) {
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(measure(conn, sql).await);
    }
    runs.sort_by(|a, b| a.1.total_cmp(&b.1));
    runs[2]
}

#[tokio::test]
async fn a_planted_missing_index_is_recommended_and_applied_cuts_the_measured_time() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    database
        .run_workload((0..40).map(|i| format!("SELECT id, amount FROM orders WHERE customer = {}", i * 97 % 5000)))
        .await;

    let advice = database.advise(&AdvisorSettings::default()).await;
    let index =
        creates(&advice, "public.orders", "customer").unwrap_or_else(|| panic!("no index on customer: {advice:#?}"));
    assert!(index.ddl.starts_with("CREATE INDEX CONCURRENTLY"), "{}", index.ddl);
    assert!(index.estimated_cost_after < index.estimated_cost_before / 2.0, "{index:#?}");
    assert_eq!(index.statements.len(), 1, "{index:#?}");

    let probe = "SELECT id, amount FROM orders WHERE customer = 4242";
    let mut conn = database.connect().await;
    let (pages_before, ms_before) = median_measure(&mut conn, probe).await;
    sqlx::raw_sql(AssertSqlSafe(index.ddl.clone())).execute(&mut conn).await.unwrap();
    sqlx::raw_sql("ANALYZE orders").execute(&mut conn).await.unwrap();
    let (pages_after, ms_after) = median_measure(&mut conn, probe).await;
    assert!(pages_after * 10 < pages_before, "pages {pages_before} -> {pages_after}");
    assert!(ms_after < ms_before, "median ms {ms_before} -> {ms_after}");
    drop(conn);
    database.drop().await;
}

#[tokio::test]
async fn decoys_get_no_index_a_low_selectivity_filter_a_tiny_table_and_a_write_heavy_table() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    database
        .setup(
            "CREATE TABLE currencies (code text, name text); \
             INSERT INTO currencies SELECT 'C' || g, 'currency ' || g FROM generate_series(1, 12) g; \
             CREATE TABLE ticks (id bigserial, sym int, px float8, at timestamptz DEFAULT now()); \
             INSERT INTO ticks (sym, px) SELECT g % 100, g FROM generate_series(1, 20000) g; \
             VACUUM ANALYZE currencies; VACUUM ANALYZE ticks;",
        )
        .await;
    let mut workload: Vec<String> = Vec::new();
    workload.extend((0..20).map(|i| format!("SELECT * FROM orders WHERE status = '{}'", ["open", "paid"][i % 2])));
    workload.extend((0..20).map(|i| format!("SELECT name FROM currencies WHERE code = 'C{}'", i % 12)));
    workload.extend((0..5000).map(|i| format!("INSERT INTO ticks (sym, px) VALUES ({}, {i})", i % 100)));
    workload.extend((0..5).map(|i| format!("SELECT max(px) FROM ticks WHERE sym = {i}")));
    database.run_workload(workload).await;

    let settings = AdvisorSettings { min_calls: 1, ..AdvisorSettings::default() };
    let advice = database.advise(&settings).await;
    assert!(creates(&advice, "public.orders", "status").is_none(), "{advice:#?}");
    assert!(creates(&advice, "public.currencies", "code").is_none(), "{advice:#?}");
    assert!(creates(&advice, "public.ticks", "sym").is_none(), "{advice:#?}");
    // The write-heavy one helps its reads, and is refused for what it costs the writes.
    let refusal = advice.refused.iter().find(|r| r.table == "public.ticks" && r.columns == ["sym"]);
    assert!(refusal.is_some_and(|r| r.reason.contains("writes")), "{:#?}", advice.refused);
    database.drop().await;
}

#[tokio::test]
async fn an_unused_index_and_a_duplicate_prefix_are_advised_away_but_no_constraint() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    database
        .setup(
            "CREATE INDEX orders_amount_idx ON orders (amount); \
             CREATE INDEX orders_customer_idx ON orders (customer); \
             ALTER TABLE orders ADD CONSTRAINT orders_customer_created_key UNIQUE (customer, created); \
             ANALYZE orders;",
        )
        .await;
    database.run_workload((0..10).map(|i| format!("SELECT id FROM orders WHERE customer = {i}"))).await;

    let advice = database.advise(&AdvisorSettings::default()).await;
    let dropped: Vec<&str> = advice.drop.iter().map(|d| d.index.as_str()).collect();
    let unused = advice.drop.iter().find(|d| d.index == "orders_amount_idx");
    assert!(unused.is_some_and(|d| d.reason.contains("no scans")), "{:#?}", advice.drop);
    // Whichever of the two the planner used, the narrower one is not needed.
    assert!(dropped.contains(&"orders_customer_idx"), "{dropped:?}");
    assert!(!dropped.contains(&"orders_customer_created_key"), "{dropped:?}");
    assert!(!dropped.contains(&"orders_pkey"), "{dropped:?}");
    // The first run's catalog queries are in pg_stat_statements now: still no advice on them.
    let again = database.advise(&AdvisorSettings { min_calls: 1, ..AdvisorSettings::default() }).await;
    assert!(again.drop.iter().chain(&advice.drop).all(|d| d.table.starts_with("public.")), "{:#?}", again.drop);
    assert!(again.create.iter().all(|c| c.table.starts_with("public.")), "{:#?}", again.create);
    database.drop().await;
}

#[tokio::test]
async fn unparseable_sql_is_reported_with_a_fingerprint_not_dropped() {
    let database = ScratchDatabase::create(&["hypopg"]).await;
    let workload = Workload {
        database: database.name.clone(),
        statements: vec![StatementLoad {
            sql: "SELEKT * FROM orders WHERE id = $1".into(),
            calls: 50,
            total_ms: 900.0,
            rows: 50,
            constants: Vec::new(),
        }],
    };
    let advice = advise(&mut database.connect().await, &workload, &AdvisorSettings::default()).await.unwrap();
    assert_eq!(advice.skipped.len(), 1, "{advice:#?}");
    assert_eq!(advice.skipped[0].fingerprint, frontier::queries::fingerprint("selekt *  FROM orders where id = $1"));
    assert!(advice.skipped[0].reason.starts_with("unparseable"), "{:?}", advice.skipped[0]);
    database.drop().await;
}

#[tokio::test]
async fn a_database_without_hypopg_or_pg_stat_statements_gets_an_error_naming_what_to_install() {
    let database = ScratchDatabase::create(&[]).await;
    let mut conn = database.connect().await;
    let error = Workload::from_stat_statements(&mut conn, 10).await.unwrap_err();
    assert!(matches!(error, WorkloadError::MissingExtension { extension: "pg_stat_statements", .. }), "{error}");
    assert!(error.to_string().contains("CREATE EXTENSION pg_stat_statements"), "{error}");
    let error = advise(&mut conn, &Workload::default(), &AdvisorSettings::default()).await.unwrap_err();
    assert!(matches!(error, AdviceError::MissingHypoPg { .. }), "{error}");
    assert!(error.to_string().contains("CREATE EXTENSION hypopg"), "{error}");
    drop(conn);
    database.drop().await;
}

#[tokio::test]
async fn the_advise_command_reads_pg_stat_statements_of_any_database_and_prints_json() {
    let database = ScratchDatabase::create(&["hypopg", "pg_stat_statements"]).await;
    database.setup(ORDERS).await;
    database
        .run_workload(
            (0..20).map(|i| format!("SELECT * FROM orders WHERE customer = {i} ORDER BY created DESC LIMIT 5")),
        )
        .await;

    let output =
        frontier().args(["queries", "advise", "--format", "json", "--database-url", &database.url]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let advice: Value = serde_json::from_slice(&output.stdout).unwrap();
    let list = advice.as_array().unwrap();
    let index = list.iter().find(|item| item["table"] == "public.orders" && item["columns"][0] == "customer");
    let index = index.unwrap_or_else(|| panic!("no index on customer: {advice:#}"));
    assert_eq!(index["action"], "create");
    assert_eq!(index["columns"], serde_json::json!(["customer", "created"]), "the sort is served too");
    assert!(index["ddl"].as_str().unwrap().contains("(customer, created)"), "{index:#}");
    assert!(index["estimated_cost_after"].as_f64().unwrap() < index["estimated_cost_before"].as_f64().unwrap());
    database.drop().await;
}
