//! The greedy choice: each round plans every statement a candidate's table appears in with the
//! candidate added to the indexes chosen so far, and keeps the candidate with the most time
//! saved (less its write cost) per byte. A chosen index's widenings join the candidates; one
//! that wins replaces the narrower index.

use super::candidates::{Candidate, widenings};
use super::catalog::TableInfo;
use super::planner::{Hypothetical, Planner};
use super::{AdviceError, AdvisorSettings, IndexAdvice, Planned, Refused, ServedStatement, advice_id, quote_ident};

/// What the writes of each table cost and assign, from the workload's INSERTs and UPDATEs.
#[derive(Debug, Default)]
pub struct TableWrites {
    /// Observed milliseconds of index-maintaining writes, per table.
    pub ms: Vec<f64>,
    /// Columns the table's UPDATEs assign, per table.
    pub assigned: Vec<Vec<String>>,
}

/// An index kept by the greedy choice.
pub struct ChosenIndex {
    pub candidate: Candidate,
    hypothetical: Hypothetical,
    pub size_bytes: i64,
    overhead_ms: f64,
    /// (statement, cost per run, indexes its final plan uses) of the statements whose final
    /// plan uses this index: a statement served by two indexes credits each with half.
    served: Vec<(usize, f64, usize)>,
}

/// The choice and the candidates refused on the way.
pub struct Choice {
    pub indexes: Vec<ChosenIndex>,
    pub refused: Vec<Refused>,
}

struct Evaluation {
    size_bytes: i64,
    gain_ms: f64,
    served: Vec<(usize, f64)>,
}

/// Runs the greedy choice. Hypothetical indexes are left in the session (it ends with the run).
pub async fn greedy(
    planner: &mut Planner<'_>,
    planned: &mut [Planned],
    tables: &[TableInfo],
    writes: &TableWrites,
    mut candidates: Vec<Candidate>,
    settings: &AdvisorSettings,
) -> Result<Choice, AdviceError> {
    let mut chosen: Vec<ChosenIndex> = Vec::new();
    let mut refused: Vec<Refused> = Vec::new();
    let mut budget = i64::try_from(settings.storage_budget_mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
    let min_saving_ms = settings.min_saving_share * planned.iter().map(|p| p.load.total_ms).sum::<f64>();
    for round in 0..settings.max_indexes {
        let mut best: Option<(f64, Candidate, Evaluation, f64)> = None;
        for candidate in &candidates {
            let table = &tables[candidate.table];
            let Some(evaluation) = evaluate(planner, planned, candidate, table, settings).await? else { continue };
            let overhead_ms = writes.ms[candidate.table] * write_share(candidate, table, settings);
            let net_ms = evaluation.gain_ms - overhead_ms;
            let breaks_hot = table.hot_share() >= settings.hot_update_share
                && candidate.columns.iter().any(|c| writes.assigned[candidate.table].contains(c));
            let refusal = if breaks_hot {
                Some(format!(
                    "would end HOT updates of {} ({:.0} % of its updates are HOT and UPDATEs assign {})",
                    table.qualified,
                    table.hot_share() * 100.0,
                    candidate.column_list()
                ))
            } else if net_ms <= 0.0 {
                Some(format!(
                    "would save {:.1} ms of reads but add {:.1} ms to the writes of {}",
                    evaluation.gain_ms, overhead_ms, table.qualified
                ))
            } else if net_ms < min_saving_ms {
                // Not worth an index to maintain: said in the first round only, like the rest.
                Some(format!(
                    "would save {net_ms:.1} ms, under {:.0} % of the workload's {:.0} ms",
                    settings.min_saving_share * 100.0,
                    min_saving_ms / settings.min_saving_share.max(f64::MIN_POSITIVE)
                ))
            } else if evaluation.size_bytes > budget {
                Some(format!("its {} bytes do not fit the storage budget left ({budget} bytes)", evaluation.size_bytes))
            } else {
                None
            };
            if let Some(reason) = refusal {
                // Said once, in the first round, where every candidate is judged on its own.
                if round == 0 {
                    refused.push(Refused {
                        table: table.qualified.clone(),
                        columns: candidate.columns.clone(),
                        reason,
                    });
                }
                continue;
            }
            let score = net_ms / evaluation.size_bytes.max(1) as f64;
            if best.as_ref().is_none_or(|(top, ..)| score > *top) {
                best = Some((score, candidate.clone(), evaluation, overhead_ms));
            }
        }
        let Some((_, candidate, evaluation, overhead_ms)) = best else { break };
        candidates.retain(|c| *c != candidate);
        let table = &tables[candidate.table];
        let hypothetical = planner.create(&candidate.hypothetical_ddl(table)).await?;
        budget -= evaluation.size_bytes;
        // A widening that wins makes its narrower index a duplicate prefix: drop that one.
        if let Some(position) =
            chosen.iter().position(|c| c.candidate.table == candidate.table && is_prefix(&c.candidate, &candidate))
        {
            let narrower = chosen.remove(position);
            planner.forget(narrower.hypothetical).await?;
            budget += narrower.size_bytes;
        }
        for &(statement, cost) in &evaluation.served {
            planned[statement].current = cost;
        }
        let served: Vec<&Planned> = evaluation.served.iter().map(|&(statement, _)| &planned[statement]).collect();
        for wider in widenings(&candidate, &served, tables) {
            if wider.columns.len() <= settings.max_index_columns && !candidates.contains(&wider) {
                candidates.push(wider);
            }
        }
        chosen.push(ChosenIndex {
            candidate,
            hypothetical,
            size_bytes: evaluation.size_bytes,
            overhead_ms,
            served: Vec::new(),
        });
    }
    attribute(planner, planned, &mut chosen).await?;
    chosen.retain(|index| !index.served.is_empty());
    Ok(Choice { indexes: chosen, refused })
}

/// Plans the statements on the candidate's table with it added; `None` when it serves none.
async fn evaluate(
    planner: &mut Planner<'_>,
    planned: &[Planned],
    candidate: &Candidate,
    table: &TableInfo,
    settings: &AdvisorSettings,
) -> Result<Option<Evaluation>, AdviceError> {
    let hypothetical = planner.create(&candidate.hypothetical_ddl(table)).await?;
    let mut gain_ms = 0.0;
    let mut served = Vec::new();
    for (position, statement) in planned.iter().enumerate() {
        if !statement.tables.contains(&Some(candidate.table)) {
            continue;
        }
        // A statement planned before; if it fails now the candidate just does not serve it.
        let Ok(plan) = planner.plan(&statement.load.sql).await else { continue };
        let cut = statement.current - plan.cost;
        if plan.uses.contains(&hypothetical.oid) && cut >= statement.current * settings.min_cost_reduction {
            gain_ms += statement.load.total_ms * cut / statement.base;
            served.push((position, plan.cost));
        }
    }
    planner.forget(hypothetical).await?;
    Ok((!served.is_empty()).then_some(Evaluation { size_bytes: hypothetical.size_bytes, gain_ms, served }))
}

/// Share of each write's time an index adds: its entry's width against the row's (pganalyze's
/// measure), at least the floor.
fn write_share(candidate: &Candidate, table: &TableInfo, settings: &AdvisorSettings) -> f64 {
    let entry = 8.0 + candidate.columns.iter().map(|c| table.column(c).map_or(8.0, |c| c.width)).sum::<f64>();
    (entry / table.row_width.max(1.0)).max(settings.write_overhead_floor)
}

fn is_prefix(narrow: &Candidate, wide: &Candidate) -> bool {
    narrow.predicate == wide.predicate
        && narrow.columns.len() < wide.columns.len()
        && wide.columns.starts_with(&narrow.columns)
}

/// Plans every statement once with the final choice, so each index lists the statements that
/// really use it, with their final cost.
async fn attribute(
    planner: &mut Planner<'_>,
    planned: &mut [Planned],
    chosen: &mut [ChosenIndex],
) -> Result<(), AdviceError> {
    for (position, statement) in planned.iter_mut().enumerate() {
        let Ok(plan) = planner.plan(&statement.load.sql).await else { continue };
        if plan.cost < statement.current {
            statement.current = plan.cost;
        }
        let sharers = chosen.iter().filter(|index| plan.uses.contains(&index.hypothetical.oid)).count();
        for index in chosen.iter_mut() {
            if plan.uses.contains(&index.hypothetical.oid) {
                index.served.push((position, plan.cost, sharers));
            }
        }
    }
    Ok(())
}

impl ChosenIndex {
    /// The advice a person reads.
    pub fn into_advice(self, database: &str, tables: &[TableInfo], planned: &[Planned]) -> IndexAdvice {
        let table = &tables[self.candidate.table];
        let method = "btree".to_owned();
        let mut identity = self.candidate.columns.clone();
        if let Some(predicate) = &self.candidate.predicate {
            identity.push(format!("WHERE {}", predicate.sql()));
        }
        let id = advice_id(database, &table.qualified, &method, &identity);
        let statements: Vec<ServedStatement> = self
            .served
            .iter()
            .map(|&(position, cost_after, _)| {
                let statement = &planned[position];
                ServedStatement {
                    fingerprint: statement.shape.fingerprint.clone(),
                    sql: statement.load.sql.clone(),
                    calls: statement.load.calls,
                    mean_ms: statement.load.mean_ms(),
                    cost_before: statement.base,
                    cost_after,
                }
            })
            .collect();
        let time_saved_ms: f64 = self
            .served
            .iter()
            .map(|&(position, cost_after, sharers)| {
                let statement = &planned[position];
                statement.load.total_ms * ((statement.base - cost_after) / statement.base).max(0.0)
                    / sharers.max(1) as f64
            })
            .sum();
        let estimated_cost_before = statements.iter().map(|s| s.cost_before).sum();
        let estimated_cost_after = statements.iter().map(|s| s.cost_after).sum();
        let mut name_parts = self.candidate.columns.clone();
        if let Some(predicate) = &self.candidate.predicate {
            name_parts.push(format!("where_{}", predicate.column));
        }
        let name = index_name(table, &name_parts, &id);
        let ddl = format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {} USING btree ({}){}",
            table.qualified,
            self.candidate.column_list(),
            self.candidate.where_clause()
        );
        let reason = format!(
            "serves {} statement(s): plan cost {estimated_cost_before:.1} -> {estimated_cost_after:.1} per run, \
             ~{time_saved_ms:.0} ms saved over the observed workload against ~{:.0} ms added to writes; {:.1} MiB",
            statements.len(),
            self.overhead_ms,
            self.size_bytes as f64 / f64::from(1 << 20)
        );
        IndexAdvice {
            id,
            action: "create",
            table: table.qualified.clone(),
            columns: self.candidate.columns,
            predicate: self.candidate.predicate.as_ref().map(|predicate| predicate.sql()),
            method,
            ddl,
            estimated_cost_before,
            estimated_cost_after,
            time_saved_ms,
            write_overhead_ms: self.overhead_ms,
            size_bytes: self.size_bytes,
            statements,
            reason,
        }
    }
}

/// `<table>_<columns>_idx`, within PostgreSQL's 63 bytes (shortened with the advice id).
fn index_name(table: &TableInfo, columns: &[String], id: &str) -> String {
    let relation = table.qualified.rsplit('.').next().unwrap_or("t").trim_matches('"');
    let full = format!("{relation}_{}_idx", columns.join("_")).to_lowercase();
    let plain: String = full.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    let name = if plain.len() <= 63 { plain } else { format!("{}_{}", &plain[..46], &id[..16]) };
    quote_ident(&name)
}
