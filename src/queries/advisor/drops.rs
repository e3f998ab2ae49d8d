//! Indexes to drop: those never scanned since statistics began, and those whose columns are a
//! leading part of another index on the same table (the wider one serves every lookup they do).
//! Indexes that back a constraint (primary key, unique, exclusion) are never advised away.

use super::catalog::{ExistingIndex, TableInfo};
use super::{DropAdvice, DropKind, advice_id};

/// Drop advice over the tables the workload touched.
pub fn find(database: &str, tables: &[TableInfo]) -> Vec<DropAdvice> {
    let mut out = Vec::new();
    for table in tables {
        for index in table.indexes.iter().filter(|index| !index.constraint && !index.unique) {
            let (kind, reason) = if index.scans == 0 {
                (DropKind::Unused, "no scans since statistics began (pg_stat_all_indexes.idx_scan = 0)".to_owned())
            } else if let Some(wider) = covering(table, index) {
                (DropKind::Duplicate, format!("its columns lead {wider}, which serves every lookup it does"))
            } else {
                continue;
            };
            out.push(DropAdvice {
                id: advice_id(database, &table.qualified, "drop", std::slice::from_ref(&index.name)),
                action: "drop",
                table: table.qualified.clone(),
                index: index.name.clone(),
                columns: index.columns.iter().map(|c| c.clone().unwrap_or_else(|| "(expression)".to_owned())).collect(),
                ddl: format!("DROP INDEX CONCURRENTLY IF EXISTS {}", index.name),
                size_bytes: index.size_bytes,
                kind,
                scans: index.scans,
                reason,
            });
        }
    }
    out
}

/// Another plain B-tree index of the table whose columns start with all of `index`'s, and which
/// is kept (scanned, or backing a constraint): two unused ones are both advised away as unused.
fn covering<'t>(table: &'t TableInfo, index: &ExistingIndex) -> Option<&'t str> {
    let columns = index.plain_columns().filter(|_| index.method == "btree" && !index.partial)?;
    table
        .indexes
        .iter()
        .filter(|other| other.name != index.name && other.method == "btree" && !other.partial)
        .filter(|other| other.scans > 0 || other.constraint)
        .find(|other| {
            other.plain_columns().is_some_and(|wider| {
                wider.len() > columns.len() || (wider.len() == columns.len() && other.name < index.name)
            }) && other.plain_columns().is_some_and(|wider| wider.starts_with(&columns))
        })
        .map(|other| other.name.as_str())
}
