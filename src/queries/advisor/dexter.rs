//! Dexter's rule, kept as the baseline `frontier bench queries` measures the advisor against:
//! query by query, every 1- and 2-column index on the query's columns is planned alone with
//! HypoPG, and the cheapest is kept when it at least halves a plan that costs at least 100. No
//! storage budget, no write cost, no view of the workload as a whole.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::candidates::{Candidate, columns_by_table};
use super::planner::Planner;
use super::{AdviceError, Planned, TableInfo, resolve, shapes_of};
use crate::queries::shape::StatementKind;
use crate::queries::workload::Workload;

/// Dexter's least plan cost worth indexing.
const MIN_COST: f64 = 100.0;
/// Dexter keeps an index that cuts the plan cost by at least this share.
const MIN_CUT: f64 = 0.5;

/// An index the baseline keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineIndex {
    /// Schema-qualified table.
    pub table: String,
    pub columns: Vec<String>,
    /// `CREATE INDEX ...` (plain, for a benchmark's scratch database).
    pub ddl: String,
    pub size_bytes: i64,
}

/// The indexes Dexter's rule keeps for `workload`.
pub async fn dexter(conn: &mut PgConnection, workload: &Workload) -> Result<Vec<BaselineIndex>, AdviceError> {
    let mut planner = Planner::open(conn, &workload.database).await?;
    let mut tables: Vec<TableInfo> = Vec::new();
    let mut by_name = HashMap::new();
    let mut kept: Vec<(Candidate, i64)> = Vec::new();
    for (load, shape) in shapes_of(workload, &mut Vec::new()) {
        if !matches!(shape.kind, StatementKind::Select | StatementKind::Update | StatementKind::Delete) {
            continue;
        }
        let mut resolved = Vec::with_capacity(shape.tables.len());
        for reference in &shape.tables {
            resolved.push(resolve(&mut planner, &mut tables, &mut by_name, &reference.name).await?);
        }
        let Ok(base) = planner.plan(&load.sql).await else { continue };
        if base.cost.is_nan() || base.cost < MIN_COST {
            continue;
        }
        let statement = Planned { load, shape, tables: resolved, base: base.cost, current: base.cost };
        let mut best: Option<(f64, Candidate, i64)> = None;
        for (table, uses) in columns_by_table(&statement, &tables) {
            let mut columns: Vec<String> = Vec::new();
            for (column, _) in uses {
                if !columns.contains(&column) {
                    columns.push(column);
                }
            }
            let mut candidates: Vec<Vec<String>> = columns.iter().map(|c| vec![c.clone()]).collect();
            for first in &columns {
                for second in columns.iter().filter(|c| *c != first) {
                    candidates.push(vec![first.clone(), second.clone()]);
                }
            }
            for columns in candidates {
                let candidate = Candidate::full(table, columns);
                if candidate.already_served(&tables[table]) {
                    continue;
                }
                let hypothetical = planner.create(&candidate.hypothetical_ddl(&tables[table])).await?;
                let plan = planner.plan(&statement.load.sql).await;
                planner.forget(hypothetical).await?;
                let Ok(plan) = plan else { continue };
                if plan.uses.contains(&hypothetical.oid) && best.as_ref().is_none_or(|(cost, ..)| plan.cost < *cost) {
                    best = Some((plan.cost, candidate, hypothetical.size_bytes));
                }
            }
        }
        if let Some((cost, candidate, size)) = best
            && cost <= statement.base * (1.0 - MIN_CUT)
            && !kept.iter().any(|(k, _)| *k == candidate)
        {
            kept.push((candidate, size));
        }
    }
    Ok(kept
        .into_iter()
        .map(|(candidate, size_bytes)| {
            let table = &tables[candidate.table];
            BaselineIndex {
                table: table.qualified.clone(),
                ddl: format!("CREATE INDEX ON {} ({})", table.qualified, candidate.column_list()),
                columns: candidate.columns,
                size_bytes,
            }
        })
        .collect())
}
