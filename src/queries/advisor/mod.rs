//! Index advice for a whole workload, proven with hypothetical indexes on the database itself.
//!
//! Dexter decides query by query and keeps any index that halves one plan. Here every
//! candidate is judged on the workload: the time it would save, summed over the statements
//! whose plans use it and weighted by their observed time, less what it would cost the table's
//! writes; the best saving per byte is taken first (Extend's greedy), under a storage budget,
//! and a chosen index may be widened by one column in a later round. Indexes that would end
//! HOT updates of a table that relies on them are refused; unused and duplicate-prefix indexes
//! are advised for dropping.

mod candidates;
mod catalog;
mod choose;
mod dexter;
mod drops;
mod planner;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::shape::{Shape, StatementKind};
use super::workload::{StatementLoad, Workload};
pub use catalog::TableInfo;
use choose::TableWrites;
pub use dexter::{BaselineIndex, dexter};
use planner::Planner;

/// How the advisor chooses. Every field has a default that suits an OLTP database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdvisorSettings {
    /// Storage all recommended indexes may take together, in MiB.
    pub storage_budget_mib: u64,
    /// Statements with fewer runs than this are left out (one-off reports, migrations).
    pub min_calls: u64,
    /// A statement counts as served by an index only if its plan cost drops by at least this
    /// share (0.1 = 10 %); smaller gains are within the planner's noise.
    pub min_cost_reduction: f64,
    /// An index must save at least this share of the analysed statements' observed time
    /// (0.01 = 1 %), after its write cost: an index that saves milliseconds a day is storage,
    /// writes and vacuum for nothing.
    pub min_saving_share: f64,
    /// Least share of a write's time each new index adds to it, whatever its width: a B-tree
    /// insert descends the tree and writes WAL even for a narrow entry.
    pub write_overhead_floor: f64,
    /// Milliseconds to write one row, for tables the workload updates but does not insert into
    /// (where it inserts, the observed insert time per row is used).
    pub row_write_ms: f64,
    /// A table whose updates are HOT at least this often keeps them: no index on a column its
    /// updates assign is recommended there.
    pub hot_update_share: f64,
    /// Most columns in one recommended index.
    pub max_index_columns: usize,
    /// Most indexes recommended in one run.
    pub max_indexes: usize,
}

impl Default for AdvisorSettings {
    fn default() -> Self {
        AdvisorSettings {
            storage_budget_mib: 1024,
            min_calls: 5,
            min_cost_reduction: 0.1,
            min_saving_share: 0.01,
            write_overhead_floor: 0.2,
            row_write_ms: 0.02,
            hot_update_share: 0.5,
            max_index_columns: 3,
            max_indexes: 10,
        }
    }
}

/// A statement an index serves, with its plan cost per run before and after all advice.
#[derive(Debug, Clone, Serialize)]
pub struct ServedStatement {
    pub fingerprint: String,
    pub sql: String,
    pub calls: u64,
    pub mean_ms: f64,
    pub cost_before: f64,
    pub cost_after: f64,
}

/// An index to create.
#[derive(Debug, Clone, Serialize)]
pub struct IndexAdvice {
    /// Stable id of (database, table, method, columns): the same advice gets the same id.
    pub id: String,
    pub action: &'static str,
    /// Schema-qualified table.
    pub table: String,
    pub columns: Vec<String>,
    /// `status = 'open'` for a partial index (every run of its statements had it).
    pub predicate: Option<String>,
    pub method: String,
    /// `CREATE INDEX CONCURRENTLY ...`, ready to run.
    pub ddl: String,
    /// Summed plan cost per run of the served statements, without and with the advice.
    pub estimated_cost_before: f64,
    pub estimated_cost_after: f64,
    /// Estimated time saved over the observed workload, in milliseconds.
    pub time_saved_ms: f64,
    /// Estimated time added to the table's writes over the same workload, in milliseconds.
    pub write_overhead_ms: f64,
    /// Size HypoPG estimates for the index.
    pub size_bytes: i64,
    pub statements: Vec<ServedStatement>,
    pub reason: String,
}

/// An index to drop.
#[derive(Debug, Clone, Serialize)]
pub struct DropAdvice {
    /// Stable id of (database, table, "drop", index name).
    pub id: String,
    pub action: &'static str,
    pub table: String,
    pub index: String,
    pub columns: Vec<String>,
    /// `DROP INDEX CONCURRENTLY ...`.
    pub ddl: String,
    pub size_bytes: i64,
    /// Why: never scanned, or a duplicate prefix of another index.
    pub kind: DropKind,
    /// Scans since statistics began (`pg_stat_all_indexes.idx_scan`).
    pub scans: i64,
    pub reason: String,
}

/// Why an index is advised away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DropKind {
    /// No scans since statistics began. A long-running analyzer also asks that it stayed so
    /// over its own observation window (a new index has no scans yet either).
    Unused,
    /// Its columns lead another index that is kept.
    Duplicate,
}

/// A candidate that helps but was refused, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub table: String,
    pub columns: Vec<String>,
    pub reason: String,
}

/// A statement that could not be analysed, and why: reported, never silently dropped.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub fingerprint: String,
    pub sql: String,
    pub reason: String,
}

/// Everything one run of the advisor found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Advice {
    pub database: String,
    pub create: Vec<IndexAdvice>,
    pub drop: Vec<DropAdvice>,
    pub refused: Vec<Refused>,
    pub skipped: Vec<Skipped>,
    /// Statements planned with and without the candidates.
    pub statements_planned: usize,
    /// Storage the recommended indexes take together.
    pub storage_bytes: i64,
}

/// Why advice could not be given at all (one statement's failure is a [`Skipped`] instead).
#[derive(Debug, thiserror::Error)]
pub enum AdviceError {
    /// HypoPG is missing in the database.
    #[error(
        "HypoPG is not installed in database `{database}`: install the package postgresql-15-hypopg \
         (or your version's) and run CREATE EXTENSION hypopg; in that database (ops/stack up does both)"
    )]
    MissingHypoPg { database: String },
    /// A catalog or HypoPG call failed.
    #[error("{operation}: {source}")]
    Query {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// A statement that plans, with the tables its columns belong to.
struct Planned {
    load: StatementLoad,
    shape: Shape,
    /// Index into the table list for each of `shape.tables`; `None` where none exists.
    tables: Vec<Option<usize>>,
    /// Plan cost per run with the indexes that exist.
    base: f64,
    /// Plan cost per run with the indexes chosen so far.
    current: f64,
}

/// Advises on `workload` over one connection to its database (see [`Planner`]: nothing is
/// changed in the database).
pub async fn advise(
    conn: &mut PgConnection,
    workload: &Workload,
    settings: &AdvisorSettings,
) -> Result<Advice, AdviceError> {
    let mut planner = Planner::open(conn, &workload.database).await?;
    let mut advice = Advice { database: workload.database.clone(), ..Advice::default() };
    let mut tables: Vec<TableInfo> = Vec::new();
    let mut by_name: HashMap<String, Option<usize>> = HashMap::new();
    let mut planned: Vec<Planned> = Vec::new();
    let mut writes: Vec<(StatementLoad, Shape)> = Vec::new();
    for (load, shape) in shapes_of(workload, &mut advice.skipped) {
        if shape.kind == StatementKind::Other || load.calls < settings.min_calls {
            continue;
        }
        let mut resolved = Vec::with_capacity(shape.tables.len());
        for reference in &shape.tables {
            resolved.push(resolve(&mut planner, &mut tables, &mut by_name, &reference.name).await?);
        }
        if let Some(target) = &shape.target {
            resolve(&mut planner, &mut tables, &mut by_name, target).await?;
        }
        if matches!(shape.kind, StatementKind::Insert | StatementKind::Update) {
            writes.push((load.clone(), shape.clone()));
        }
        if shape.kind == StatementKind::Insert {
            continue;
        }
        match planner.plan(&load.sql).await {
            Ok(plan) if plan.cost.is_finite() => {
                planned.push(Planned { load, shape, tables: resolved, base: plan.cost, current: plan.cost });
            }
            Ok(_) => advice.skipped.push(Skipped {
                fingerprint: shape.fingerprint,
                sql: load.sql.clone(),
                reason: "its plan has no cost".to_owned(),
            }),
            Err(error) => advice.skipped.push(Skipped {
                fingerprint: shape.fingerprint,
                sql: load.sql.clone(),
                reason: format!("does not plan: {}", database_message(&error)),
            }),
        }
    }
    advice.statements_planned = planned.len();
    let table_writes = table_writes(&writes, &tables, &by_name, settings);
    let candidates = candidates::generate(&planned, &tables, settings);
    let chosen = choose::greedy(&mut planner, &mut planned, &tables, &table_writes, candidates, settings).await?;
    advice.refused = chosen.refused;
    for index in chosen.indexes {
        advice.storage_bytes += index.size_bytes;
        advice.create.push(index.into_advice(&workload.database, &tables, &planned));
    }
    advice.drop = drops::find(&workload.database, &tables);
    Ok(advice)
}

/// Every statement with its shape, statements of one fingerprint merged (PostgreSQL 15's
/// `pg_stat_statements` keeps `IN ($1, $2)` and `IN ($1, $2, $3)` apart; they are one shape),
/// under the text of the heaviest. Unparseable ones go to `skipped`.
fn shapes_of(workload: &Workload, skipped: &mut Vec<Skipped>) -> Vec<(StatementLoad, Shape)> {
    let mut merged: Vec<(StatementLoad, Shape, f64)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for load in &workload.statements {
        // `pg_stat_statements` leaves `date $2` for `date '2024-01-01'`: repaired, it parses.
        let repaired = crate::queries::repair_typed_literals(&load.sql);
        let parsed = Shape::parse(&load.sql)
            .or_else(|error| if repaired == load.sql { Err(error) } else { Shape::parse(&repaired) });
        let load =
            &StatementLoad { sql: if repaired == load.sql { load.sql.clone() } else { repaired }, ..load.clone() };
        match parsed {
            Ok(shape) => match position.get(&shape.fingerprint) {
                Some(&at) => {
                    let (kept, kept_shape, heaviest) = &mut merged[at];
                    if load.total_ms > *heaviest {
                        kept.sql = load.sql.clone();
                        *kept_shape = shape;
                        *heaviest = load.total_ms;
                    }
                    kept.calls += load.calls;
                    kept.total_ms += load.total_ms;
                    kept.rows += load.rows;
                }
                None => {
                    position.insert(shape.fingerprint.clone(), merged.len());
                    merged.push((load.clone(), shape, load.total_ms));
                }
            },
            Err(unparsed) => skipped.push(Skipped {
                fingerprint: unparsed.fingerprint,
                sql: load.sql.clone(),
                reason: format!("unparseable: {}", unparsed.reason),
            }),
        }
    }
    merged.into_iter().map(|(load, shape, _)| (load, shape)).collect()
}

/// The table a statement calls `name`, loaded once per run.
async fn resolve(
    planner: &mut Planner<'_>,
    tables: &mut Vec<TableInfo>,
    by_name: &mut HashMap<String, Option<usize>>,
    name: &str,
) -> Result<Option<usize>, AdviceError> {
    if let Some(known) = by_name.get(name) {
        return Ok(*known);
    }
    let loaded = match TableInfo::load(planner.connection(), name).await? {
        Some(info) => match tables.iter().position(|t| t.oid == info.oid) {
            Some(existing) => Some(existing),
            None => {
                tables.push(info);
                Some(tables.len() - 1)
            }
        },
        None => None,
    };
    by_name.insert(name.to_owned(), loaded);
    Ok(loaded)
}

/// Per table, the time of the writes that maintain every index, and the columns its updates
/// assign. An INSERT's time is its writing; an UPDATE's is mostly finding its rows (a slow
/// UPDATE is slow for want of an index, not for writing), so updated rows that were not HOT (a
/// HOT update touches no index) are charged at the table's observed insert time per row, or
/// `row_write_ms` where the workload inserts nothing into it.
fn table_writes(
    writes: &[(StatementLoad, Shape)],
    tables: &[TableInfo],
    by_name: &HashMap<String, Option<usize>>,
    settings: &AdvisorSettings,
) -> TableWrites {
    let mut out = TableWrites { ms: vec![0.0; tables.len()], assigned: vec![Vec::new(); tables.len()] };
    let target_of = |shape: &Shape| shape.target.as_ref().and_then(|name| by_name.get(name).copied().flatten());
    let mut inserted = vec![(0.0, 0u64); tables.len()];
    for (load, shape) in writes.iter().filter(|(_, shape)| shape.kind == StatementKind::Insert) {
        let Some(table) = target_of(shape) else { continue };
        out.ms[table] += load.total_ms;
        inserted[table].0 += load.total_ms;
        inserted[table].1 += load.rows;
    }
    for (load, shape) in writes.iter().filter(|(_, shape)| shape.kind == StatementKind::Update) {
        let Some(table) = target_of(shape) else { continue };
        let per_row = match inserted[table] {
            (ms, rows) if rows > 0 => ms / rows as f64,
            _ => settings.row_write_ms,
        };
        out.ms[table] += load.rows as f64 * per_row * (1.0 - tables[table].hot_share());
        for column in &shape.assigned {
            if !out.assigned[table].contains(column) {
                out.assigned[table].push(column.clone());
            }
        }
    }
    out
}

/// The server's message of a statement error, without the driver's wrapping.
fn database_message(error: &sqlx::Error) -> String {
    error.as_database_error().map_or_else(|| error.to_string(), |e| e.message().to_owned())
}

/// Stable advice id (first 16 hex digits of a SHA-256) of (database, table, method or
/// action, columns or index name).
pub fn advice_id(database: &str, table: &str, method: &str, columns: &[String]) -> String {
    let parts: Vec<&str> = [database, table, method].into_iter().chain(columns.iter().map(String::as_str)).collect();
    crate::queries::stable_id(&parts)
}

/// PostgreSQL's reserved keywords and those reserved as names of columns (`kwlist.h`:
/// RESERVED_KEYWORD and TYPE_FUNC_NAME_KEYWORD), lower-case and sorted: as a column or table
/// name, only these need quotes.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// An identifier as SQL needs it: bare when it is a plain lower-case name that is not reserved.
fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let reserved = RESERVED.binary_search(&name).is_ok();
    if plain && !reserved { name.to_owned() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_list_is_sorted_for_its_binary_search() {
        assert!(RESERVED.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn identifiers_are_quoted_only_when_they_must_be() {
        assert_eq!(quote_ident("customer_id"), "customer_id");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("where"), "\"where\"");
        assert_eq!(quote_ident("status"), "status", "not reserved in PostgreSQL");
        assert_eq!(quote_ident("CreatedAt"), "\"CreatedAt\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn advice_ids_depend_on_every_part() {
        let columns = vec!["a".to_owned(), "b".to_owned()];
        let id = advice_id("db", "public.t", "btree", &columns);
        assert_eq!(id, advice_id("db", "public.t", "btree", &columns));
        assert_ne!(id, advice_id("db", "public.t", "btree", &["b".to_owned(), "a".to_owned()]));
        assert_ne!(id, advice_id("other", "public.t", "btree", &columns));
    }
}
