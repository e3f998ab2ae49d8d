//! Candidate indexes from the parsed statements: every column a statement filters, joins, sorts
//! or groups on, alone, and in pairs ordered as a B-tree serves them best (equality and join
//! columns first, the more selective first, then a range or the sort).

use super::catalog::TableInfo;
use super::{AdvisorSettings, Planned};
use crate::queries::shape::{ColumnRole, ColumnUse, Shape};

/// An index that might be worth creating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index into the run's table list.
    pub table: usize,
    pub columns: Vec<String>,
    /// `column = literal` for a partial index, where every run of the statements had it.
    pub predicate: Option<Predicate>,
}

/// The `WHERE` of a partial index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    pub column: String,
    pub literal: String,
}

impl Predicate {
    /// `status = 'open'`, the column quoted where needed.
    pub fn sql(&self) -> String {
        format!("{} = {}", super::quote_ident(&self.column), self.literal)
    }
}

impl Candidate {
    /// Whether an index that exists already starts with these columns (it serves the same
    /// lookups), so creating this one adds nothing.
    pub fn already_served(&self, table: &TableInfo) -> bool {
        table.indexes.iter().filter(|index| index.method == "btree" && !index.partial).any(|index| {
            index.plain_columns().is_some_and(|existing| {
                existing.len() >= self.columns.len()
                    && existing.iter().zip(&self.columns).all(|(a, b)| *a == b.as_str())
            })
        })
    }

    /// A full index on `columns`.
    pub fn full(table: usize, columns: Vec<String>) -> Candidate {
        Candidate { table, columns, predicate: None }
    }

    /// The DDL HypoPG takes (no name, no `CONCURRENTLY`).
    pub fn hypothetical_ddl(&self, table: &TableInfo) -> String {
        format!("CREATE INDEX ON {} USING btree ({}){}", table.qualified, self.column_list(), self.where_clause())
    }

    /// ` WHERE status = 'open'` for a partial index, else nothing.
    pub fn where_clause(&self) -> String {
        self.predicate.as_ref().map_or_else(String::new, |predicate| format!(" WHERE {}", predicate.sql()))
    }

    /// `a, b` with identifiers quoted where needed.
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| super::quote_ident(c)).collect::<Vec<_>>().join(", ")
    }
}

/// The columns of `statement` on each of its tables, with their roles, in order of appearance.
pub fn columns_by_table(statement: &Planned, tables: &[TableInfo]) -> Vec<(usize, Vec<(String, ColumnRole)>)> {
    let mut out: Vec<(usize, Vec<(String, ColumnRole)>)> = Vec::new();
    for found in &statement.shape.uses {
        let Some(table) = owner(&statement.shape, &statement.tables, tables, found) else { continue };
        let position = match out.iter().position(|(t, _)| *t == table) {
            Some(position) => position,
            None => {
                out.push((table, Vec::new()));
                out.len() - 1
            }
        };
        out[position].1.push((found.column.clone(), found.role));
    }
    out
}

/// The table a column use belongs to: the one its qualifier names, or, unqualified, the only
/// table of the statement that has such a column.
fn owner(shape: &Shape, resolved: &[Option<usize>], tables: &[TableInfo], found: &ColumnUse) -> Option<usize> {
    let named: Vec<usize> = shape
        .tables_of(found)
        .filter_map(|reference| shape.tables.iter().position(|t| t == reference))
        .filter_map(|position| resolved.get(position).copied().flatten())
        .filter(|&table| tables[table].column(&found.column).is_some())
        .collect();
    match named.as_slice() {
        [one] => Some(*one),
        // The same table twice (a self-join) is still one table.
        [first, rest @ ..] if rest.iter().all(|t| t == first) => Some(*first),
        _ => None,
    }
}

/// Candidates of every planned statement, each once, leaving out those an existing index
/// already covers.
pub fn generate(planned: &[Planned], tables: &[TableInfo], settings: &AdvisorSettings) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |candidate: Candidate| {
        if candidate.columns.len() <= settings.max_index_columns
            && !out.contains(&candidate)
            && !candidate.already_served(&tables[candidate.table])
        {
            out.push(candidate);
        }
    };
    for statement in planned {
        for (table, columns) in columns_by_table(statement, tables) {
            let info = &tables[table];
            let of_role = |roles: &[ColumnRole]| -> Vec<String> {
                let mut picked: Vec<String> = Vec::new();
                for (column, role) in &columns {
                    if roles.contains(role) && !picked.contains(column) {
                        picked.push(column.clone());
                    }
                }
                picked
            };
            let mut leading = of_role(&[ColumnRole::Equality, ColumnRole::Join]);
            // More distinct values first: the first column narrows the most.
            leading.sort_by(|a, b| {
                let distinct = |c: &str| info.column(c).map_or(0.0, |c| c.distinct);
                distinct(b).total_cmp(&distinct(a))
            });
            let trailing = of_role(&[ColumnRole::Range, ColumnRole::Order, ColumnRole::Group]);
            let mut mine: Vec<Candidate> = Vec::new();
            for column in leading.iter().chain(&trailing) {
                mine.push(Candidate::full(table, vec![column.clone()]));
            }
            for (position, first) in leading.iter().enumerate().take(3) {
                for second in leading.iter().skip(position + 1).chain(&trailing).take(4) {
                    if second != first {
                        mine.push(Candidate::full(table, vec![first.clone(), second.clone()]));
                    }
                }
            }
            let order = of_role(&[ColumnRole::Order]);
            if order.len() >= 2 {
                mine.push(Candidate::full(table, order.into_iter().take(settings.max_index_columns).collect()));
            }
            // Partial versions, where every run compared a column of this table with the same
            // literal: smaller, and as fast for these statements.
            let predicates: Vec<Predicate> = statement
                .load
                .constants
                .iter()
                .filter(|constant| {
                    let probe = ColumnUse {
                        qualifier: constant.qualifier.clone(),
                        column: constant.column.clone(),
                        role: ColumnRole::Equality,
                    };
                    owner(&statement.shape, &statement.tables, tables, &probe) == Some(table)
                })
                .map(|constant| Predicate { column: constant.column.clone(), literal: constant.literal.clone() })
                .collect();
            let mut partial: Vec<Candidate> = Vec::new();
            for predicate in &predicates {
                for full in mine.iter().filter(|c| !c.columns.contains(&predicate.column)) {
                    partial.push(Candidate { predicate: Some(predicate.clone()), ..full.clone() });
                }
            }
            for candidate in mine.into_iter().chain(partial) {
                push(candidate);
            }
        }
    }
    out
}

/// Widenings of a chosen index by one more column its statements use on the same table.
pub fn widenings(chosen: &Candidate, statements: &[&Planned], tables: &[TableInfo]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for statement in statements {
        for (table, columns) in columns_by_table(statement, tables) {
            if table != chosen.table {
                continue;
            }
            for (column, _) in columns {
                let predicate_column = chosen.predicate.as_ref().map(|p| p.column.as_str());
                if !chosen.columns.contains(&column) && predicate_column != Some(column.as_str()) {
                    let mut wider = chosen.columns.clone();
                    wider.push(column);
                    let candidate = Candidate { table, columns: wider, predicate: chosen.predicate.clone() };
                    if !out.contains(&candidate) {
                        out.push(candidate);
                    }
                }
            }
        }
    }
    out
}
