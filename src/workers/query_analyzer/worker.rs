//! The query analyzer as a [`Worker`]: each query event is counted into its window; each tick
//! judges the windows that closed and, every `advise_interval`, works out index advice.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::metric;
use super::settings::QueryAnalyzerSettings;
use crate::bus::{HandlerError, Inbound, Outbound, SchemaCatalog, Worker};
use crate::queries::{
    Advice, AdviceError, Constant, DropKind, Finding, FindingKind, QueryWindows, RecommendationStore, Shape,
    StatementLoad, StatementRun, StoredRecommendation, Workload, WorkloadError, advice_id, advise,
};
use crate::records::{
    IndexAction, IndexRecommendation, QueryEvent, QueryStatus, Record, SlowQueryFinding, SlowQueryKind,
};

/// How long connecting to the advised database may take before this advice run gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Statements of `pg_stat_statements` read per advice run, heaviest first.
const STAT_STATEMENTS_LIMIT: usize = 200;

/// Why an advice run failed; the analyzer logs it, counts it and tries again next interval.
#[derive(Debug, thiserror::Error)]
enum AdviceRunError {
    #[error("connecting to the advised database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("connecting to the advised database: no answer within {0:?}")]
    ConnectTimeout(Duration),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Advice(#[from] AdviceError),
}

/// What the advice side remembers between runs.
#[derive(Default)]
struct AdviceState {
    last_run: Option<Instant>,
    /// Advice id -> what was last published for it, so unchanged advice is not re-sent.
    published: HashMap<String, String>,
    /// Whether the missing `pg_stat_statements` was already reported.
    said_no_stat_statements: bool,
    /// Index -> (first seen with this scan count, the count): unused means unchanged for
    /// `unused_index_window`.
    scans_seen: HashMap<String, (Instant, i64)>,
}

/// The `query-analyzer` worker.
pub struct QueryAnalyzer {
    settings: QueryAnalyzerSettings,
    catalog: Arc<SchemaCatalog>,
    database_url: String,
    /// The advised database's name: its events are remembered for advice.
    database: String,
    windows: Mutex<QueryWindows>,
    /// Statement text -> what the analyzer needs of its shape, so a text is parsed once.
    shapes: Mutex<HashMap<String, Known>>,
    /// Fingerprint -> load seen in events of the advised database.
    workload: Mutex<HashMap<Arc<str>, StatementLoad>>,
    advice: tokio::sync::Mutex<AdviceState>,
    /// Pool to Frontier's database (connects on first use, so a database that is down at
    /// start does not stop the analyzer).
    store_pool: Option<sqlx::PgPool>,
    store: tokio::sync::OnceCell<RecommendationStore>,
}

/// What the analyzer keeps of a statement text's shape.
#[derive(Debug, Clone)]
struct Known {
    fingerprint: Arc<str>,
    parsed: bool,
    constants: Arc<[Constant]>,
}

/// A lock that a panicking holder left behind is still usable: the maps hold plain counts.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl QueryAnalyzer {
    /// An analyzer advising on `database_url` (whose database name it reads from the URL),
    /// keeping its recommendations in `store_url`'s database.
    pub fn new(
        settings: QueryAnalyzerSettings,
        database_url: String,
        store_url: &str,
        catalog: Arc<SchemaCatalog>,
    ) -> Self {
        metric::describe();
        // PostgreSQL's default database is the user's name.
        let database = PgConnectOptions::from_str(&database_url)
            .ok()
            .map(|options| options.get_database().unwrap_or(options.get_username()).to_owned())
            .unwrap_or_default();
        let windows = QueryWindows::new(
            settings.rules.clone(),
            i64::try_from(settings.window.as_millis()).unwrap_or(i64::MAX),
            i64::try_from(settings.allowed_lateness.as_millis()).unwrap_or(i64::MAX),
        );
        QueryAnalyzer {
            settings,
            catalog,
            database_url,
            database,
            windows: Mutex::new(windows),
            shapes: Mutex::new(HashMap::new()),
            workload: Mutex::new(HashMap::new()),
            advice: tokio::sync::Mutex::new(AdviceState::default()),
            store_pool: PgConnectOptions::from_str(store_url).ok().map(|options| {
                PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy_with(options.application_name("frontier query-analyzer"))
            }),
            store: tokio::sync::OnceCell::new(),
        }
    }

    /// The recommendations table, opened on first use; `None` (said and counted) while it
    /// cannot be.
    async fn store(&self) -> Option<&RecommendationStore> {
        let pool = self.store_pool.clone()?;
        match self.store.get_or_try_init(|| RecommendationStore::open(pool)).await {
            Ok(store) => Some(store),
            Err(error) => {
                metrics::counter!(metric::STORE_ERRORS).increment(1);
                tracing::warn!(%error, "the recommendations table is not available; advice still goes to Kafka");
                None
            }
        }
    }

    /// Applied indexes judged on the first window after them: paid off, or advised away.
    async fn payoff_outputs(&self, now_ms: i64) -> Result<Vec<Outbound>, HandlerError> {
        let Some(store) = self.store().await else { return Ok(Vec::new()) };
        let applied = match store.awaiting_verdict().await {
            Ok(applied) => applied,
            Err(error) => {
                metrics::counter!(metric::STORE_ERRORS).increment(1);
                tracing::warn!(%error, "could not read applied recommendations");
                return Ok(Vec::new());
            }
        };
        let mut outputs = Vec::new();
        for recommendation in applied {
            let Some((paid_off, verdict)) = self.judge_payoff(&recommendation) else { continue };
            let label = if paid_off { "paid_off" } else { "did_not_pay_off" };
            metrics::counter!(metric::PAYOFF_VERDICTS, "verdict" => label).increment(1);
            tracing::info!(id = %recommendation.id, ddl = %recommendation.ddl, %verdict, "applied index judged");
            if let Err(error) = store.set_verdict(&recommendation.id, paid_off, &verdict).await {
                metrics::counter!(metric::STORE_ERRORS).increment(1);
                tracing::warn!(%error, "could not record a verdict; judged again next time");
                continue;
            }
            if !paid_off && let Some(drop) = drop_for(&recommendation, &verdict, now_ms) {
                if let Err(error) = store.upsert(&drop, &BTreeMap::new()).await {
                    metrics::counter!(metric::STORE_ERRORS).increment(1);
                    tracing::warn!(%error, "could not store the drop advice");
                }
                metrics::counter!(metric::RECOMMENDATIONS, "action" => "drop").increment(1);
                outputs.push(self.output(&self.settings.recommendations_topic, &drop.id, &drop)?);
            }
        }
        Ok(outputs)
    }

    /// `(paid_off, why)` once every statement the index was advised for has a judged window
    /// that began after it was applied; `None` while one has not.
    fn judge_payoff(&self, recommendation: &StoredRecommendation) -> Option<(bool, String)> {
        let applied_ms = recommendation.applied_at_ms?;
        let windows = lock(&self.windows);
        let mut before_total = 0.0;
        let mut after_total = 0.0;
        let mut parts = Vec::new();
        for (fingerprint, before_ms) in recommendation.baseline_ms.iter() {
            let after = windows.latest(&recommendation.database, fingerprint)?;
            if after.window_start_ms < applied_ms || after.calls == 0 {
                return None;
            }
            before_total += before_ms;
            after_total += after.mean_ms;
            parts.push(format!(
                "{fingerprint}: mean {before_ms:.2} ms -> {:.2} ms (p95 {:.2} ms)",
                after.mean_ms, after.p95_ms
            ));
        }
        if parts.is_empty() {
            return None;
        }
        let paid_off = after_total <= before_total * (1.0 - self.settings.payoff_min_gain);
        let verdict = format!("{} {}", if paid_off { "paid off:" } else { "did not pay off:" }, parts.join("; "));
        Some((paid_off, verdict))
    }

    /// The fingerprint of a statement text, whether it parsed, and its constants, each text
    /// parsed once.
    fn shape_of(&self, sql: &str) -> Known {
        if let Some(known) = lock(&self.shapes).get(sql) {
            return known.clone();
        }
        let known = match Shape::parse(sql) {
            Ok(shape) => {
                Known { fingerprint: shape.fingerprint.into(), parsed: true, constants: shape.constants.into() }
            }
            Err(unparsed) => Known { fingerprint: unparsed.fingerprint.into(), parsed: false, constants: Arc::new([]) },
        };
        let mut shapes = lock(&self.shapes);
        // Texts with literals make a new text per run; a full map starts over.
        if shapes.len() >= self.settings.max_shapes {
            shapes.clear();
        }
        shapes.insert(sql.to_owned(), known.clone());
        known
    }

    /// Adds an event of the advised database to the workload the advisor sees; the shape's
    /// constants are those every event of it had.
    fn remember(&self, known: &Known, event: &QueryEvent) {
        let fingerprint = &known.fingerprint;
        let mut workload = lock(&self.workload);
        if !workload.contains_key(fingerprint) && workload.len() >= self.settings.max_shapes {
            // Room for the newcomer: the lightest tenth goes.
            let mut loads: Vec<(Arc<str>, f64)> = workload.iter().map(|(k, v)| (k.clone(), v.total_ms)).collect();
            loads.sort_by(|a, b| a.1.total_cmp(&b.1));
            for (key, _) in loads.iter().take((loads.len() / 10).max(1)) {
                workload.remove(key);
            }
        }
        let load = workload.entry(fingerprint.clone()).or_insert_with(|| StatementLoad {
            sql: event.sql.clone(),
            calls: 0,
            total_ms: 0.0,
            rows: 0,
            constants: known.constants.to_vec(),
        });
        load.constants.retain(|constant| known.constants.contains(constant));
        let calls = u64::try_from(event.calls).unwrap_or(1).max(1);
        load.calls += calls;
        load.total_ms += event.duration_ms.max(0.0) * calls as f64;
        load.rows += u64::try_from(event.rows).unwrap_or(0);
    }

    /// The findings of closed windows as records, with how many each database had per window.
    fn finding_outputs(&self, findings: Vec<Finding>, now_ms: i64) -> Result<Vec<Outbound>, HandlerError> {
        let mut per_window: HashMap<(String, i64), i32> = HashMap::new();
        for finding in &findings {
            *per_window.entry((finding.database.clone(), finding.window_start_ms)).or_default() += 1;
        }
        let mut outputs = Vec::with_capacity(findings.len());
        for finding in findings {
            let kind = match finding.kind {
                FindingKind::Slow => SlowQueryKind::Slow,
                FindingKind::Heavy => SlowQueryKind::Heavy,
                FindingKind::Regressed => SlowQueryKind::Regressed,
            };
            metrics::counter!(metric::FINDINGS, "kind" => format!("{:?}", finding.kind).to_lowercase()).increment(1);
            tracing::info!(
                database = %finding.database, fingerprint = %finding.fingerprint, kind = ?finding.kind,
                calls = finding.calls, mean_ms = finding.mean_ms, p95_ms = finding.p95_ms, sql = %finding.sql,
                "statement found in a closed window"
            );
            let record = SlowQueryFinding {
                id: crate::queries::stable_id(&[
                    &finding.database,
                    &finding.fingerprint,
                    &finding.window_start_ms.to_string(),
                ]),
                kind,
                window_findings: per_window
                    .get(&(finding.database.clone(), finding.window_start_ms))
                    .copied()
                    .unwrap_or(1),
                database: finding.database,
                sql: finding.sql,
                parsed: finding.parsed,
                window_start: finding.window_start_ms,
                window_end: finding.window_end_ms,
                calls: i64::try_from(finding.calls).unwrap_or(i64::MAX),
                errors: i64::try_from(finding.errors).unwrap_or(i64::MAX),
                total_ms: finding.total_ms,
                mean_ms: finding.mean_ms,
                p95_ms: finding.p95_ms,
                p99_ms: finding.p99_ms,
                rows: i64::try_from(finding.rows).unwrap_or(i64::MAX),
                time_share: finding.time_share,
                baseline_mean_ms: finding.baseline_mean_ms,
                detected_at: now_ms,
                fingerprint: finding.fingerprint,
            };
            outputs.push(self.output(&self.settings.findings_topic, &record.fingerprint.clone(), &record)?);
        }
        Ok(outputs)
    }

    fn output<T: Record>(&self, topic: &str, key: &str, record: &T) -> Result<Outbound, HandlerError> {
        // Our own records against our own schemas: a failure is a build that ships mismatched
        // schemas, which must stop the worker loudly rather than lose findings quietly.
        let payload = self.catalog.encode_record(record).map_err(|e| HandlerError::fatal("encode", e.to_string()))?;
        Ok(Outbound::new(topic, Some(key.as_bytes().to_vec()), payload))
    }

    /// Works out advice if it is due (its interval passed, or `now` is true: a window of the
    /// advised database just had a finding, and advice should follow it within seconds),
    /// returning the recommendations that changed. A failure is
    /// logged and counted, never returned: the findings of the same tick must still go out.
    async fn advise_if_due(&self, now_ms: i64, now: bool) -> Result<Vec<Outbound>, HandlerError> {
        if self.settings.advise_interval.is_zero() {
            return Ok(Vec::new());
        }
        // One run at a time: a tick that finds one running leaves the work to it.
        let Ok(mut state) = self.advice.try_lock() else { return Ok(Vec::new()) };
        if !now && state.last_run.is_some_and(|last| last.elapsed() < self.settings.advise_interval) {
            return Ok(Vec::new());
        }
        state.last_run = Some(Instant::now());
        let started = Instant::now();
        let advice = match self.advice_run(&mut state).await {
            Ok(advice) => advice,
            Err(error) => {
                metrics::counter!(metric::ADVICE_RUNS, "outcome" => "failed").increment(1);
                tracing::warn!(%error, "index advice failed; findings go on, advice is tried again next interval");
                return Ok(Vec::new());
            }
        };
        let mut advice = advice;
        let window = self.settings.unused_index_window;
        let seen = &mut state.scans_seen;
        seen.retain(|index, _| advice.drop.iter().any(|d| d.index == *index));
        advice.drop.retain(|drop| {
            if drop.kind != DropKind::Unused {
                return true;
            }
            let since = seen.entry(drop.index.clone()).or_insert((Instant::now(), drop.scans));
            if since.1 != drop.scans {
                *since = (Instant::now(), drop.scans);
            }
            since.0.elapsed() >= window
        });
        metrics::counter!(metric::ADVICE_RUNS, "outcome" => "advised").increment(1);
        metrics::histogram!(metric::ADVICE_SECONDS).record(started.elapsed().as_secs_f64());
        for skipped in &advice.skipped {
            tracing::debug!(fingerprint = %skipped.fingerprint, reason = %skipped.reason, "statement not analysed");
        }
        let mut outputs = Vec::new();
        let store = self.store().await;
        for record in recommendations(&advice, now_ms) {
            let shown = format!("{}|{:.1}|{}", record.create_statement, record.estimated_cost_after, record.size_bytes);
            if state.published.get(&record.id) == Some(&shown) {
                continue;
            }
            let action = if record.action == IndexAction::Create { "create" } else { "drop" };
            metrics::counter!(metric::RECOMMENDATIONS, "action" => action).increment(1);
            tracing::info!(table = %record.table_name, columns = ?record.columns, ddl = %record.create_statement, "index advice");
            if let Some(store) = store {
                // What the served statements cost per run now: the pay-off check's "before".
                let baseline: BTreeMap<String, f64> = advice
                    .create
                    .iter()
                    .filter(|index| index.id == record.id)
                    .flat_map(|index| index.statements.iter().map(|s| (s.fingerprint.clone(), s.mean_ms)))
                    .collect();
                if let Err(error) = store.upsert(&record, &baseline).await {
                    metrics::counter!(metric::STORE_ERRORS).increment(1);
                    tracing::warn!(%error, "could not store a recommendation; it is on the topic");
                }
            }
            outputs.push(self.output(&self.settings.recommendations_topic, &record.id, &record)?);
            state.published.insert(record.id.clone(), shown);
        }
        outputs.extend(self.payoff_outputs(now_ms).await?);
        Ok(outputs)
    }

    async fn advice_run(&self, state: &mut AdviceState) -> Result<Advice, AdviceRunError> {
        let options = PgConnectOptions::from_str(&self.database_url)
            .map_err(AdviceRunError::Connect)?
            .application_name("frontier query-analyzer")
            .log_statements(tracing::log::LevelFilter::Off);
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| AdviceRunError::ConnectTimeout(CONNECT_TIMEOUT))?
            .map_err(AdviceRunError::Connect)?;
        let mut workload = Workload { database: self.database.clone(), statements: Vec::new() };
        if self.settings.use_stat_statements {
            match Workload::from_stat_statements(&mut conn, STAT_STATEMENTS_LIMIT).await {
                Ok(found) => workload = found,
                Err(error @ WorkloadError::MissingExtension { .. }) => {
                    if !std::mem::replace(&mut state.said_no_stat_statements, true) {
                        tracing::warn!(%error, "advising on query events only");
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        // Statements pg_stat_statements already counts are not counted twice; where events
        // saw constants, their sample text (with the literals) is what gets planned, so a
        // partial index on the constant can be proven.
        let events = lock(&self.workload).clone();
        let mut known = std::collections::HashSet::new();
        for load in &mut workload.statements {
            let fingerprint = crate::queries::fingerprint(&load.sql);
            if let Some(seen) = events.get(fingerprint.as_str())
                && !seen.constants.is_empty()
            {
                load.sql = seen.sql.clone();
                load.constants = seen.constants.clone();
            }
            known.insert(fingerprint);
        }
        workload.statements.extend(
            events.into_iter().filter(|(fingerprint, _)| !known.contains(fingerprint.as_ref())).map(|(_, load)| load),
        );
        let advice = advise(&mut conn, &workload, &self.settings.advisor).await?;
        let _ = conn.close().await;
        Ok(advice)
    }
}

/// Drop advice for an applied index that did not pay off.
fn drop_for(recommendation: &StoredRecommendation, verdict: &str, now_ms: i64) -> Option<IndexRecommendation> {
    let name = recommendation.index_name()?;
    let schema = recommendation.table_name.rsplit_once('.').map(|(schema, _)| schema);
    let qualified = schema.map_or_else(|| name.to_owned(), |schema| format!("{schema}.{name}"));
    Some(IndexRecommendation {
        id: advice_id(&recommendation.database, &recommendation.table_name, "drop", std::slice::from_ref(&qualified)),
        database: recommendation.database.clone(),
        table_name: recommendation.table_name.clone(),
        columns: recommendation.columns.clone(),
        index_type: "btree".to_owned(),
        create_statement: format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"),
        query_fingerprints: recommendation.baseline_ms.keys().cloned().collect(),
        estimated_cost_before: 0.0,
        estimated_cost_after: 0.0,
        improvement_ratio: 1.0,
        action: IndexAction::Drop,
        size_bytes: recommendation.size_bytes,
        time_saved_ms: 0.0,
        write_overhead_ms: 0.0,
        evidence: format!("applied {} and measured: {verdict}", recommendation.id),
        created_at: now_ms,
    })
}

/// Advice as `IndexRecommendation` records.
fn recommendations(advice: &Advice, now_ms: i64) -> Vec<IndexRecommendation> {
    let creates = advice.create.iter().map(|index| IndexRecommendation {
        id: index.id.clone(),
        database: advice.database.clone(),
        table_name: index.table.clone(),
        columns: index.columns.clone(),
        index_type: index.method.clone(),
        create_statement: index.ddl.clone(),
        query_fingerprints: index.statements.iter().map(|s| s.fingerprint.clone()).collect(),
        estimated_cost_before: index.estimated_cost_before,
        estimated_cost_after: index.estimated_cost_after,
        improvement_ratio: if index.estimated_cost_after > 0.0 {
            index.estimated_cost_before / index.estimated_cost_after
        } else {
            index.estimated_cost_before
        },
        action: IndexAction::Create,
        size_bytes: index.size_bytes,
        time_saved_ms: index.time_saved_ms,
        write_overhead_ms: index.write_overhead_ms,
        evidence: format!("hypopg: {}", index.reason),
        created_at: now_ms,
    });
    let drops = advice.drop.iter().map(|index| IndexRecommendation {
        id: index.id.clone(),
        database: advice.database.clone(),
        table_name: index.table.clone(),
        columns: index.columns.clone(),
        index_type: "btree".to_owned(),
        create_statement: index.ddl.clone(),
        query_fingerprints: Vec::new(),
        estimated_cost_before: 0.0,
        estimated_cost_after: 0.0,
        improvement_ratio: 1.0,
        action: IndexAction::Drop,
        size_bytes: index.size_bytes,
        time_saved_ms: 0.0,
        write_overhead_ms: 0.0,
        evidence: format!("pg_stat_all_indexes: {}", index.reason),
        created_at: now_ms,
    });
    creates.chain(drops).collect()
}

impl Worker for QueryAnalyzer {
    fn name(&self) -> &'static str {
        "query-analyzer"
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let event: QueryEvent = message.record()?;
        // A time far ahead would open a window that never closes (and never frees its memory).
        let horizon =
            i64::try_from((self.settings.window + self.settings.allowed_lateness).as_millis()).unwrap_or(i64::MAX);
        let now_ms = crate::clock::now_millis();
        if event.occurred_at > now_ms.saturating_add(horizon) {
            return Err(HandlerError::rejected(
                "implausible_time",
                format!("occurred_at {} is more than a window ahead of now ({now_ms})", event.occurred_at),
            ));
        }
        if event.calls < 1 {
            return Err(HandlerError::rejected("implausible_calls", format!("calls {} is below 1", event.calls)));
        }
        let known = self.shape_of(&event.sql);
        let (fingerprint, parsed) = (&known.fingerprint, known.parsed);
        metrics::counter!(metric::EVENTS, "parsed" => if parsed { "true" } else { "false" }).increment(1);
        // A collected event stands for `calls` runs of `duration_ms` each on average: one
        // observation of the mean keeps the histogram about statements, not about batches.
        if event.duration_ms.is_finite() && event.duration_ms >= 0.0 {
            metrics::histogram!(metric::STATEMENT_SECONDS).record(event.duration_ms / 1000.0);
        }
        let run = StatementRun {
            database: &event.database,
            fingerprint,
            sql: &event.sql,
            parsed,
            duration_ms: event.duration_ms,
            calls: u64::try_from(event.calls).unwrap_or(1),
            rows: u64::try_from(event.rows).unwrap_or(0),
            failed: event.status != QueryStatus::Ok,
            at_ms: event.occurred_at,
        };
        if !lock(&self.windows).record(&run) {
            metrics::counter!(metric::LATE_EVENTS).increment(1);
        }
        if parsed && event.database == self.database {
            self.remember(&known, &event);
        }
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.settings.evaluate_interval)
    }

    async fn tick(&self, now: SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        let now_ms = crate::clock::epoch_millis(now);
        let findings = lock(&self.windows).close_through(now_ms);
        let advise_now = findings.iter().any(|finding| finding.parsed && finding.database == self.database);
        let mut outputs = self.finding_outputs(findings, now_ms)?;
        outputs.extend(self.advise_if_due(now_ms, advise_now).await?);
        Ok(outputs)
    }
}
