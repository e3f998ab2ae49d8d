//! `frontier queries ...`: slow-query analysis and index advice from the command line.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::audit::{cli_event, ended, open_trail, record};
use crate::health::redact;
use crate::queries::{Advice, AdvisorSettings, RecommendationStore, Workload, advise};
use crate::records::{AuditEvent, AuditOutcome};
use crate::settings::Settings;

/// `frontier queries ...`
#[derive(Debug, Subcommand)]
pub enum QueriesAction {
    /// One-shot index advice for any PostgreSQL database, from its pg_stat_statements, proven
    /// with HypoPG's hypothetical indexes. Changes nothing in the database.
    Advise(AdviseArgs),
    /// Carry out one recommendation of the query analyzer (`CREATE INDEX CONCURRENTLY` or
    /// `DROP INDEX CONCURRENTLY`), at most once, under an advisory lock. The analyzer then
    /// judges on measured time whether the index paid off.
    Apply(ApplyArgs),
    /// The analyzer's recommendations, with what became of them.
    Report(ReportArgs),
    /// Publish what every statement shape of a database did each interval, read from its
    /// pg_stat_statements, as query events: statements of applications that publish no events
    /// of their own reach the query analyzer too. Runs until SIGTERM or SIGINT.
    Collect(CollectArgs),
}

/// `frontier queries collect` options.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The database to read; the configuration's `[postgres] url` when left out.
    #[arg(long)]
    pub database_url: Option<String>,
    /// How often the counters are read.
    #[arg(long, default_value = "10s", value_parser = crate::cli::duration_arg)]
    pub interval: std::time::Duration,
    /// Stop after this many intervals (the first read only sets the starting point).
    #[arg(long)]
    pub intervals: Option<u64>,
    /// Topic the events go to.
    #[arg(long, default_value = crate::market::QUERY_EVENTS_TOPIC)]
    pub topic: String,
}

/// `frontier queries apply` options.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The recommendation's id (`frontier queries report` lists them).
    pub id: String,
    /// The database to change; the analyzer's `database_url`, else `[postgres] url`.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// `frontier queries report` options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// The database whose statements are ranked; the analyzer's `database_url`, else
    /// `[postgres] url`.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Statements listed, by total time.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// One statement shape in the report.
#[derive(Debug, serde::Serialize)]
struct TopStatement {
    fingerprint: String,
    sql: String,
    calls: i64,
    total_ms: f64,
    mean_ms: f64,
    stddev_ms: f64,
    /// From the analyzer's latest finding on the shape, where it had one.
    p95_ms: Option<f64>,
    /// Recommendations that serve it.
    advice: Vec<String>,
}

/// How advice is printed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// For a person.
    Text,
    /// A JSON list of objects (`action` create or drop, `table`, `columns`, `ddl`,
    /// `estimated_cost_before`, `estimated_cost_after`, ...), for tools.
    Json,
}

/// `frontier queries advise` options.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// The database to advise on (`postgres://user:password@host:port/database`); the
    /// configuration's `[postgres] url` when left out.
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Storage all recommended indexes may take together, in MiB.
    #[arg(long, default_value_t = AdvisorSettings::default().storage_budget_mib)]
    pub storage_budget_mib: u64,
    /// Statements with fewer runs are left out.
    #[arg(long, default_value_t = AdvisorSettings::default().min_calls)]
    pub min_calls: u64,
    /// How many of the heaviest statements (by total time) to analyse.
    #[arg(long, default_value_t = 200)]
    pub statements: usize,
}

pub async fn queries(settings: &Settings, action: QueriesAction) -> anyhow::Result<ExitCode> {
    match action {
        QueriesAction::Advise(args) => advise_command(settings, args).await,
        QueriesAction::Apply(args) => apply_command(settings, args).await,
        QueriesAction::Report(args) => report_command(settings, args).await,
        QueriesAction::Collect(args) => collect_command(settings, args).await,
    }
}

async fn collect_command(settings: &Settings, args: CollectArgs) -> anyhow::Result<ExitCode> {
    use crate::market::QueryEventSink as _;
    let url = args.database_url.unwrap_or_else(|| settings.postgres.url.clone());
    let catalog = crate::bus::SchemaCatalog::load_dir(&settings.paths.schemas)
        .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?;
    let sink = crate::market::KafkaQueryEvents::from_catalog(&settings.kafka, &catalog, &args.topic)?;
    let token = tokio_util::sync::CancellationToken::new();
    crate::shutdown::cancel_on_signal(token.clone());
    let mut collector = crate::queries::StatCollector::new();
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<PgConnection> = None;
    let mut reads = 0u64;
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            _ = ticker.tick() => {}
        }
        // Reconnect after a failure: a database restart costs an interval, not the collector.
        if conn.is_none() {
            match PgConnection::connect(&url).await {
                Ok(connected) => conn = Some(connected),
                Err(error) => {
                    tracing::warn!(%error, url = %redact(&url), "cannot reach the database; trying again next interval");
                    continue;
                }
            }
        }
        let Some(connection) = conn.as_mut() else { continue };
        match collector.poll(connection, crate::clock::now_millis()).await {
            Ok(events) => {
                let (shapes, runs) = (events.len(), events.iter().map(|e| e.calls).sum::<i64>());
                for event in events {
                    sink.record(event);
                }
                if reads > 0 {
                    tracing::info!(shapes, runs, "published an interval of pg_stat_statements");
                }
            }
            Err(error @ crate::queries::WorkloadError::MissingExtension { .. }) => return Err(error.into()),
            Err(error) => {
                tracing::warn!(%error, "reading pg_stat_statements failed; reconnecting next interval");
                conn = None;
            }
        }
        reads += 1;
        if args.intervals.is_some_and(|intervals| reads > intervals) {
            break;
        }
    }
    sink.flush(std::time::Duration::from_secs(10));
    Ok(ExitCode::SUCCESS)
}

/// The recommendations table in Frontier's database.
async fn open_store(settings: &Settings) -> anyhow::Result<RecommendationStore> {
    let url = settings.workers.query_analyzer.store_url.clone().unwrap_or_else(|| settings.postgres.url.clone());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .with_context(|| format!("connecting to {} (for the local stack: `ops/stack up`)", redact(&url)))?;
    Ok(RecommendationStore::open(pool).await?)
}

/// Applies a recommendation's DDL, audited as `queries.apply`: made, refused (no such
/// recommendation, another database, another apply running) or failed.
async fn apply_command(settings: &Settings, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let trail = open_trail(settings).await?;
    let mut event = cli_event("queries.apply", BTreeMap::new());
    event.target = Some(args.id.clone());
    match apply_recommendation(settings, args, &mut event).await {
        Ok(()) => {
            record(&trail, &event).await?;
            Ok(ExitCode::SUCCESS)
        }
        Err((outcome, error)) => {
            record(&trail, &ended(event, outcome, format!("{error:#}"))).await?;
            Err(error)
        }
    }
}

/// Why an apply did not happen: refused (nothing was tried) or failed.
type ApplyError = (AuditOutcome, anyhow::Error);

fn refused(error: anyhow::Error) -> ApplyError {
    (AuditOutcome::Refused, error)
}

fn failed(error: impl Into<anyhow::Error>) -> ApplyError {
    (AuditOutcome::Failed, error.into())
}

async fn apply_recommendation(settings: &Settings, args: ApplyArgs, event: &mut AuditEvent) -> Result<(), ApplyError> {
    let store = open_store(settings).await.map_err(failed)?;
    let Some(recommendation) = store.get(&args.id).await.map_err(failed)? else {
        return Err(refused(anyhow!("no recommendation {} (see `frontier queries report`)", args.id)));
    };
    event.parameters.insert("ddl".into(), recommendation.ddl.clone());
    event.parameters.insert("database".into(), recommendation.database.clone());
    let url = args
        .database_url
        .or_else(|| settings.workers.query_analyzer.database_url.clone())
        .unwrap_or_else(|| settings.postgres.url.clone());
    let mut conn = PgConnection::connect(&url)
        .await
        .with_context(|| format!("connecting to {} (for the local stack: `ops/stack up`)", redact(&url)))
        .map_err(failed)?;
    let database: String =
        sqlx::query_scalar("SELECT current_database()::text").fetch_one(&mut conn).await.map_err(failed)?;
    if database != recommendation.database {
        return Err(refused(anyhow!(
            "recommendation {} is for database {}, not {database} (pass --database-url)",
            args.id,
            recommendation.database
        )));
    }
    // One apply per recommendation at a time, across machines: the lock lives in the database.
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("frontier queries apply {}", recommendation.id))
        .fetch_one(&mut conn)
        .await
        .map_err(failed)?;
    if !locked {
        return Err(refused(anyhow!("another `frontier queries apply {}` is running", recommendation.id)));
    }
    let name =
        recommendation.index_name().context("the recommendation's DDL names no index").map_err(refused)?.to_owned();
    let schema = recommendation.table_name.rsplit_once('.').map_or("public", |(schema, _)| schema).to_owned();
    let exists = index_exists(&mut conn, &schema, &name).await.map_err(failed)?;
    let done = match recommendation.action.as_str() {
        "create" => exists,
        _ => !exists,
    };
    if recommendation.applied_at_ms.is_some() && done {
        println!("{} was already applied: {}", recommendation.id, recommendation.ddl);
        event.detail = Some("already applied".into());
        return Ok(());
    }
    let started = std::time::Instant::now();
    if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(recommendation.ddl.clone())).execute(&mut conn).await {
        // A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind: take it away.
        if recommendation.action == "create" {
            let invalid: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND NOT i.indisvalid)",
            )
            .bind(&schema)
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap_or(false);
            if invalid {
                let cleanup = format!("DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name}");
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(cleanup)).execute(&mut conn).await;
            }
        }
        return Err(failed(anyhow::Error::new(error).context(format!("running {}", recommendation.ddl))));
    }
    store.mark_applied(&recommendation.id).await.map_err(failed)?;
    println!("applied {} in {:.1} s: {}", recommendation.id, started.elapsed().as_secs_f64(), recommendation.ddl);
    if recommendation.action == "create" {
        println!(
            "the query analyzer judges it on the first window after now (frontier queries report shows the verdict)"
        );
    }
    Ok(())
}

/// How the server's connections are used, for sizing pools.
#[derive(Debug, serde::Serialize)]
struct ConnectionUse {
    max_connections: i64,
    /// (application, state, connections), busiest first.
    by_application: Vec<(String, String, i64)>,
}

impl ConnectionUse {
    fn total(&self) -> i64 {
        self.by_application.iter().map(|(_, _, n)| n).sum()
    }

    fn in_state(&self, state: &str) -> i64 {
        self.by_application.iter().filter(|(_, s, _)| s == state).map(|(_, _, n)| n).sum()
    }

    /// The figures and what they suggest.
    fn describe(&self) -> String {
        let (total, idle, active) = (self.total(), self.in_state("idle"), self.in_state("active"));
        let mut out = format!(
            "connections: {total} of max_connections {} ({active} active, {idle} idle, {} idle in transaction)",
            self.max_connections,
            self.in_state("idle in transaction")
        );
        for (application, state, count) in &self.by_application {
            out.push_str(&format!("\n  {count:>4}  {state:<20} {application}"));
        }
        let hint = if total * 10 >= self.max_connections * 8 {
            "sizing hint: within 20 % of max_connections; shrink pools (each process holds its own) or put PgBouncer in front"
        } else if total > 4 && idle * 2 > total {
            "sizing hint: most connections are idle; pools can be smaller (frontier_db_pool_waiting on /metrics shows whether statements ever wait)"
        } else {
            "sizing hint: connections are well within max_connections; raise a pool only where frontier_db_pool_waiting stays above 0"
        };
        out.push_str(&format!("\n{hint}"));
        out
    }
}

async fn connection_use(url: &str) -> anyhow::Result<ConnectionUse> {
    let mut conn = PgConnection::connect(url).await.with_context(|| format!("connecting to {}", redact(url)))?;
    let max_connections: i64 =
        sqlx::query_scalar("SELECT current_setting('max_connections')::int8").fetch_one(&mut conn).await?;
    let by_application: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT coalesce(nullif(application_name, ''), '(unnamed)'), coalesce(state, 'unknown'), count(*)::int8 \
         FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
         GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
    )
    .fetch_all(&mut conn)
    .await?;
    Ok(ConnectionUse { max_connections, by_application })
}

/// The heaviest statements of the database, with p95 from the analyzer's findings and the
/// recommendations that serve them.
async fn top_statements(
    settings: &Settings,
    url: &str,
    limit: usize,
    recommendations: &[crate::queries::StoredRecommendation],
) -> anyhow::Result<Vec<TopStatement>> {
    let mut conn = PgConnection::connect(url).await.with_context(|| format!("connecting to {}", redact(url)))?;
    let rows: Vec<(String, i64, f64, f64, f64)> = sqlx::query_as(
        "SELECT s.query, sum(s.calls)::int8, sum(s.total_exec_time)::float8, \
                (sum(s.total_exec_time) / nullif(sum(s.calls), 0))::float8, max(s.stddev_exec_time)::float8 \
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
         WHERE d.datname = current_database() AND s.toplevel GROUP BY s.query ORDER BY 3 DESC LIMIT $1",
    )
    .bind(i64::try_from(limit.saturating_mul(4)).unwrap_or(i64::MAX))
    .fetch_all(&mut conn)
    .await
    .context("reading pg_stat_statements (CREATE EXTENSION pg_stat_statements; ops/stack up does it)")?;
    let p95 = latest_p95(settings);
    // DDL and other utility statements are counted too (track_utility); no index serves them.
    let is_utility = |sql: &str| {
        crate::queries::Shape::parse(sql).is_ok_and(|shape| shape.kind == crate::queries::StatementKind::Other)
    };
    Ok(rows
        .into_iter()
        .filter(|(sql, ..)| !is_utility(sql))
        .take(limit)
        .map(|(sql, calls, total_ms, mean_ms, stddev_ms)| {
            let fingerprint = crate::queries::fingerprint(&sql);
            let advice = recommendations
                .iter()
                .filter(|r| r.baseline_ms.contains_key(&fingerprint))
                .map(|r| r.id.clone())
                .collect();
            TopStatement {
                p95_ms: p95.get(&fingerprint).copied(),
                fingerprint,
                sql,
                calls,
                total_ms,
                mean_ms,
                stddev_ms,
                advice,
            }
        })
        .collect())
}

/// p95 per fingerprint from the latest finding of each on the findings topic; empty when
/// Kafka is not reachable (the ranking still prints).
fn latest_p95(settings: &Settings) -> std::collections::HashMap<String, f64> {
    let topic = &settings.workers.query_analyzer.findings_topic;
    let mut latest: std::collections::HashMap<String, (i64, f64)> = std::collections::HashMap::new();
    let Ok(catalog) = crate::bus::SchemaCatalog::load_dir(&settings.paths.schemas) else { return Default::default() };
    let Ok(values) = crate::bus::replay::read_to_end(&settings.kafka, topic, std::time::Duration::from_secs(5)) else {
        return Default::default();
    };
    for bytes in values {
        let Ok(decoded) = catalog.decode(&bytes) else { continue };
        let Ok(finding) = apache_avro::from_value::<crate::records::SlowQueryFinding>(&decoded.value) else { continue };
        let newer = latest.get(&finding.fingerprint).is_none_or(|(at, _)| *at <= finding.window_start);
        if newer {
            latest.insert(finding.fingerprint, (finding.window_start, finding.p95_ms));
        }
    }
    latest.into_iter().map(|(fingerprint, (_, p95))| (fingerprint, p95)).collect()
}

async fn index_exists(conn: &mut PgConnection, schema: &str, name: &str) -> anyhow::Result<bool> {
    let name = name.rsplit('.').next().unwrap_or(name);
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'i')",
    )
    .bind(schema)
    .bind(name)
    .fetch_one(conn)
    .await?)
}

async fn report_command(settings: &Settings, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let all = store.all().await?;
    let url = args
        .database_url
        .clone()
        .or_else(|| settings.workers.query_analyzer.database_url.clone())
        .unwrap_or_else(|| settings.postgres.url.clone());
    let top = match top_statements(settings, &url, args.top, &all).await {
        Ok(top) => top,
        Err(error) => {
            eprintln!("(no statement ranking: {error:#})");
            Vec::new()
        }
    };
    let connections = match connection_use(&url).await {
        Ok(connections) => Some(connections),
        Err(error) => {
            eprintln!("(no connection figures: {error:#})");
            None
        }
    };
    match args.format {
        Format::Json => {
            let list: Vec<serde_json::Value> = all
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id, "action": r.action, "database": r.database, "table": r.table_name,
                        "columns": r.columns, "ddl": r.ddl, "estimated_cost_before": r.estimated_cost_before,
                        "estimated_cost_after": r.estimated_cost_after, "size_bytes": r.size_bytes,
                        "time_saved_ms": r.time_saved_ms, "evidence": r.evidence, "baseline_ms": r.baseline_ms.0,
                        "advised_at_ms": r.advised_at_ms, "applied_at_ms": r.applied_at_ms,
                        "paid_off": r.paid_off, "verdict": r.verdict,
                    })
                })
                .collect();
            let report = serde_json::json!({ "statements": top, "connections": connections, "recommendations": list });
            println!("{}", serde_json::to_string_pretty(&report).context("rendering the report")?);
        }
        Format::Text => {
            if !top.is_empty() {
                println!("top statements by total time (p95 from the query analyzer's latest finding):");
                println!(
                    "{:>16}  {:>8}  {:>11}  {:>9}  {:>9}  {:>9}  advice  statement",
                    "fingerprint", "calls", "total ms", "mean ms", "stddev", "p95 ms"
                );
                for statement in &top {
                    let p95 = statement.p95_ms.map_or_else(|| "-".to_owned(), |p95| format!("{p95:.2}"));
                    let sql: String = statement.sql.chars().take(90).collect();
                    println!(
                        "{:>16}  {:>8}  {:>11.1}  {:>9.2}  {:>9.2}  {:>9}  {:>6}  {sql}",
                        statement.fingerprint,
                        statement.calls,
                        statement.total_ms,
                        statement.mean_ms,
                        statement.stddev_ms,
                        p95,
                        statement.advice.join(",")
                    );
                }
                println!();
            }
            if let Some(connections) = &connections {
                println!("{}\n", connections.describe());
            }
            if all.is_empty() {
                println!("no recommendations yet: `frontier run query-analyzer` makes them from the query events");
            }
            for r in &all {
                let state = match (r.applied_at_ms, r.paid_off) {
                    (None, _) => "advised".to_owned(),
                    (Some(_), None) => "applied, awaiting its measured pay-off".to_owned(),
                    (Some(_), Some(true)) => "applied, paid off".to_owned(),
                    (Some(_), Some(false)) => "applied, did not pay off".to_owned(),
                };
                println!("{}  {:6}  {} ({})  [{state}]", r.id, r.action, r.table_name, r.columns.join(", "));
                println!("    {}", r.ddl);
                println!(
                    "    ~{:.0} ms saved, cost {:.1} -> {:.1}; {}",
                    r.time_saved_ms, r.estimated_cost_before, r.estimated_cost_after, r.evidence
                );
                if let Some(verdict) = &r.verdict {
                    println!("    {verdict}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn advise_command(settings: &Settings, args: AdviseArgs) -> anyhow::Result<ExitCode> {
    let url = args.database_url.unwrap_or_else(|| settings.postgres.url.clone());
    let mut conn = PgConnection::connect(&url)
        .await
        .with_context(|| format!("connecting to {} (for the local stack: `ops/stack up`)", redact(&url)))?;
    let advisor = AdvisorSettings {
        storage_budget_mib: args.storage_budget_mib,
        min_calls: args.min_calls,
        ..AdvisorSettings::default()
    };
    let workload = Workload::from_stat_statements(&mut conn, args.statements).await?;
    let advice = advise(&mut conn, &workload, &advisor).await?;
    match args.format {
        Format::Json => {
            let mut list: Vec<serde_json::Value> = Vec::new();
            for index in &advice.create {
                list.push(serde_json::to_value(index).context("rendering advice")?);
            }
            for index in &advice.drop {
                list.push(serde_json::to_value(index).context("rendering advice")?);
            }
            println!("{}", serde_json::to_string_pretty(&list).context("rendering advice")?);
        }
        Format::Text => print!("{}", render_text(&advice)),
    }
    for skipped in &advice.skipped {
        tracing::warn!(fingerprint = %skipped.fingerprint, reason = %skipped.reason, "statement not analysed");
    }
    Ok(ExitCode::SUCCESS)
}

/// The advice as a person reads it: what to create and drop, why, and what was left out.
fn render_text(advice: &Advice) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "database {}: {} statement(s) planned, {} index(es) to create ({:.1} MiB), {} to drop",
        advice.database,
        advice.statements_planned,
        advice.create.len(),
        advice.storage_bytes as f64 / f64::from(1 << 20),
        advice.drop.len()
    );
    for index in &advice.create {
        let _ = writeln!(
            out,
            "\ncreate  {} ({})\n  {}\n  {}",
            index.table,
            index.columns.join(", "),
            index.ddl,
            index.reason
        );
        for statement in &index.statements {
            let _ = writeln!(
                out,
                "    {} calls, mean {:.2} ms, cost {:.1} -> {:.1}: {}",
                statement.calls, statement.mean_ms, statement.cost_before, statement.cost_after, statement.sql
            );
        }
    }
    for index in &advice.drop {
        let _ = writeln!(out, "\ndrop    {} on {}\n  {}\n  {}", index.index, index.table, index.ddl, index.reason);
    }
    if !advice.refused.is_empty() {
        let _ = writeln!(out, "\nrefused:");
        for refused in &advice.refused {
            let _ = writeln!(out, "  {} ({}): {}", refused.table, refused.columns.join(", "), refused.reason);
        }
    }
    if !advice.skipped.is_empty() {
        let _ = writeln!(out, "\nnot analysed:");
        for skipped in &advice.skipped {
            let _ = writeln!(out, "  [{}] {}: {}", skipped.fingerprint, skipped.reason, skipped.sql);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ConnectionUse;

    fn connections(max: i64, states: &[(&str, i64)]) -> ConnectionUse {
        let by_application = states.iter().map(|(state, n)| ("serve".to_owned(), (*state).to_owned(), *n)).collect();
        ConnectionUse { max_connections: max, by_application }
    }

    #[test]
    fn near_max_connections_the_hint_says_shrink_or_pool() {
        let described = connections(100, &[("idle", 40), ("active", 45)]).describe();
        assert!(described.contains("within 20 % of max_connections"), "{described}");
        assert!(described.starts_with("connections: 85 of max_connections 100 (45 active, 40 idle"), "{described}");
    }

    #[test]
    fn mostly_idle_connections_say_pools_can_shrink() {
        let described = connections(100, &[("idle", 30), ("active", 2)]).describe();
        assert!(described.contains("most connections are idle"), "{described}");
    }
}
