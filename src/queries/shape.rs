//! The shape of a statement: SQL parsed with PostgreSQL's dialect, literals replaced by numbered
//! parameters and lists of literals squashed, so every run of one query shape has one
//! fingerprint; and the columns the statement filters, joins, sorts and groups on, which are
//! what an index can serve.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, CastKind, Expr, GroupByExpr, InTarget, ObjectName, OrderByKind, Query, SetExpr,
    Statement, TableFactor, TableObject, Value, Visit, VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::text::{normalize_text, repair_typed_literals};

/// What kind of statement a shape is; only some can be planned, and writes cost every index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    /// DDL, utility statements, transaction control...: never planned.
    Other,
}

/// How a statement uses a column, which decides where the column goes in an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnRole {
    /// Compared for equality (`=`, `IN`, `= ANY`, `IS NULL`): leading index columns.
    Equality,
    /// Joined to another table's column.
    Join,
    /// Compared by range (`<`, `>=`, `BETWEEN`): after the equality columns.
    Range,
    /// Sorted on (`ORDER BY`): an index in this order saves the sort.
    Order,
    /// Grouped on.
    Group,
}

/// One use of a column: `qualifier.column` as written (the qualifier is a table or an alias).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ColumnUse {
    pub qualifier: Option<String>,
    pub column: String,
    pub role: ColumnRole,
}

/// A table the statement reads or writes, with the alias it goes by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableRef {
    /// The name as written, lower-cased unless quoted (`public.orders`, `orders`).
    pub name: String,
    pub alias: Option<String>,
}

/// A parsed statement's shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shape {
    /// First 16 hex digits of the SHA-256 of `normalized`.
    pub fingerprint: String,
    /// The statement printed back with `$n` for every literal and parameter.
    pub normalized: String,
    pub kind: StatementKind,
    pub tables: Vec<TableRef>,
    pub uses: Vec<ColumnUse>,
    /// Columns an `UPDATE` assigns: an index on one of them ends HOT updates of the table.
    pub assigned: Vec<String>,
    /// The table an `INSERT`, `UPDATE` or `DELETE` writes: every index on it costs each write.
    pub target: Option<String>,
    /// `column = literal` comparisons as written (before normalizing): where every run of a
    /// shape has the same one, a partial index `WHERE column = literal` serves it.
    pub constants: Vec<Constant>,
}

/// A column compared for equality with a literal in the statement text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Constant {
    pub qualifier: Option<String>,
    pub column: String,
    /// The literal as SQL (`'open'`, `42`, `true`).
    pub literal: String,
}

/// SQL the parser does not understand. It still has a fingerprint, of its text (literals,
/// spacing and case normalized), so it is counted and reported, never dropped.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unparseable SQL (fingerprint {fingerprint}): {reason}")]
pub struct UnparsedSql {
    pub fingerprint: String,
    pub reason: String,
}

/// The fingerprint of any statement: of its shape when it parses, else of its normalized text.
pub fn fingerprint(sql: &str) -> String {
    match Shape::parse(sql) {
        Ok(shape) => shape.fingerprint,
        Err(unparsed) => unparsed.fingerprint,
    }
}

fn digest(text: &str) -> String {
    super::stable_id(&[text])
}

impl Shape {
    /// Parses one statement. Several statements in one text, or none, are unparseable here:
    /// a fingerprint stands for one statement.
    pub fn parse(sql: &str) -> Result<Shape, UnparsedSql> {
        let unparsed = |reason: String| UnparsedSql { fingerprint: digest(&normalize_text(sql)), reason };
        let mut statements = match Parser::parse_sql(&PostgreSqlDialect {}, sql) {
            Ok(statements) => statements,
            // `pg_stat_statements` leaves `date $2` for `date '2024-01-01'`; as `$2::date` it parses.
            Err(error) => {
                let repaired = repair_typed_literals(sql);
                if repaired == sql {
                    return Err(unparsed(error.to_string()));
                }
                Parser::parse_sql(&PostgreSqlDialect {}, &repaired).map_err(|_| unparsed(error.to_string()))?
            }
        };
        if statements.len() != 1 {
            return Err(unparsed(format!("{} statements where one was expected", statements.len())));
        }
        let mut statement = statements.remove(0);
        let mut constants = ConstantCollector::default();
        let _ = Visit::visit(&statement, &mut constants);
        let _ = VisitMut::visit(&mut statement, &mut Normalizer::default());
        let normalized = lower_outside_quotes(&statement.to_string());
        let mut collector = UseCollector::default();
        let _ = Visit::visit(&statement, &mut collector);
        // The first table an UPDATE or DELETE names is the one it writes.
        let first_table = collector.tables.first().map(|table| table.name.clone());
        let (kind, assigned, target) = match &statement {
            Statement::Query(_) => (StatementKind::Select, Vec::new(), None),
            Statement::Insert(insert) => {
                let target = match &insert.table {
                    TableObject::TableName(name) => Some(object_name_text(name)),
                    _ => None,
                };
                (StatementKind::Insert, Vec::new(), target)
            }
            Statement::Delete(_) => (StatementKind::Delete, Vec::new(), first_table),
            Statement::Update(update) => (StatementKind::Update, assigned_columns(&update.assignments), first_table),
            _ => (StatementKind::Other, Vec::new(), None),
        };
        // In order of appearance (ORDER BY a, b is an index on (a, b), not (b, a)), each once.
        let mut uses: Vec<ColumnUse> = Vec::with_capacity(collector.uses.len());
        for found in collector.uses {
            if !uses.contains(&found) {
                uses.push(found);
            }
        }
        Ok(Shape {
            fingerprint: digest(&normalized),
            normalized,
            kind,
            tables: collector.tables,
            uses,
            assigned,
            target,
            constants: constants.found,
        })
    }

    /// The tables a column use can belong to: the one its qualifier names (table or alias), or
    /// every table of the statement when it is unqualified (the catalog decides).
    pub fn tables_of<'a>(&'a self, column: &'a ColumnUse) -> impl Iterator<Item = &'a TableRef> + 'a {
        self.tables.iter().filter(move |table| match &column.qualifier {
            None => true,
            Some(qualifier) => {
                table.alias.as_deref() == Some(qualifier.as_str())
                    || table.name == *qualifier
                    || table.name.rsplit('.').next() == Some(qualifier.as_str())
            }
        })
    }
}

/// Replaces literals by `$n` (keeping a repeated parameter's number), squashes `IN` lists of
/// literals to one element and lower-cases unquoted names, as `pg_stat_statements` shapes them.
#[derive(Default)]
struct Normalizer {
    numbers: HashMap<String, usize>,
    next: usize,
}

impl Normalizer {
    fn number(&mut self, placeholder: Option<&str>) -> String {
        if let Some(existing) = placeholder.filter(|p| p.starts_with('$')).and_then(|p| self.numbers.get(p)) {
            return format!("${existing}");
        }
        self.next += 1;
        if let Some(placeholder) = placeholder.filter(|p| p.starts_with('$')) {
            self.numbers.insert(placeholder.to_owned(), self.next);
        }
        format!("${}", self.next)
    }
}

impl VisitorMut for Normalizer {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            // Before the children are numbered, so a list of 3 and one of 30 print the same.
            Expr::In { target: InTarget::List(list), .. } if list.len() > 1 && list.iter().all(is_constant) => {
                list.truncate(1);
            }
            // `date '2024-01-01'` is a constant too: `$n::date`, as pg_stat_statements and a
            // bound parameter write it. The placeholder inside is numbered when visited next.
            Expr::TypedString(typed) => {
                *expr = Expr::Cast {
                    kind: CastKind::DoubleColon,
                    expr: Box::new(Expr::Value(Value::Placeholder("?".into()).with_empty_span())),
                    data_type: typed.data_type.clone(),
                    format: None,
                };
            }
            Expr::Value(value) => {
                let placeholder = match &value.value {
                    Value::Placeholder(text) => Some(text.clone()),
                    _ => None,
                };
                value.value = Value::Placeholder(self.number(placeholder.as_deref()));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn is_constant(expr: &Expr) -> bool {
    match expr {
        Expr::Value(_) | Expr::TypedString(_) => true,
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::UnaryOp { expr, .. } => is_constant(expr),
        _ => false,
    }
}

/// Lower-cases everything outside double-quoted identifiers (quoted names are case-sensitive;
/// string literals are already parameters).
fn lower_outside_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if quoted { out.push(c) } else { out.extend(c.to_lowercase()) }
    }
    out
}

/// Tables with their aliases, and the columns in comparisons, joins, `ORDER BY` and `GROUP BY`.
#[derive(Default)]
struct UseCollector {
    tables: Vec<TableRef>,
    uses: Vec<ColumnUse>,
}

impl UseCollector {
    fn add(&mut self, expr: &Expr, role: ColumnRole) {
        if let Some((qualifier, column)) = column_of(expr) {
            self.uses.push(ColumnUse { qualifier, column, role });
        }
    }
}

impl Visitor for UseCollector {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, args: None, .. } = factor {
            let alias = alias.as_ref().map(|alias| ident_text(&alias.name));
            self.tables.push(TableRef { name: object_name_text(name), alias });
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::BinaryOp { left, op, right } => {
                let role = match op {
                    BinaryOperator::Eq => Some(ColumnRole::Equality),
                    BinaryOperator::Lt | BinaryOperator::LtEq | BinaryOperator::Gt | BinaryOperator::GtEq => {
                        Some(ColumnRole::Range)
                    }
                    _ => None,
                };
                if let Some(role) = role {
                    match (column_of(left).is_some(), column_of(right).is_some()) {
                        (true, true) => {
                            self.add(left, ColumnRole::Join);
                            self.add(right, ColumnRole::Join);
                        }
                        (true, false) => self.add(left, role),
                        (false, true) => self.add(right, role),
                        (false, false) => {}
                    }
                }
            }
            Expr::In { expr, negated: false, .. } | Expr::IsNull(expr) => self.add(expr, ColumnRole::Equality),
            Expr::AnyOp { left, compare_op: BinaryOperator::Eq, .. } => self.add(left, ColumnRole::Equality),
            Expr::Between { expr, negated: false, .. } => self.add(expr, ColumnRole::Range),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(order_by) = &query.order_by
            && let OrderByKind::Expressions(items) = &order_by.kind
        {
            for item in items {
                self.add(&item.expr, ColumnRole::Order);
            }
        }
        if let SetExpr::Select(select) = query.body.as_ref()
            && let GroupByExpr::Expressions(items, _) = &select.group_by
        {
            for item in items {
                self.add(item, ColumnRole::Group);
            }
        }
        ControlFlow::Continue(())
    }
}

/// `column = literal` comparisons of the statement as written.
#[derive(Default)]
struct ConstantCollector {
    found: Vec<Constant>,
}

impl Visitor for ConstantCollector {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = expr {
            let literal = |side: &Expr| match side {
                Expr::Value(value) if !matches!(value.value, Value::Placeholder(_) | Value::Null) => {
                    Some(side.to_string())
                }
                _ => None,
            };
            let pair = match (column_of(left), literal(right), column_of(right), literal(left)) {
                (Some(column), Some(literal), ..) | (None, None, Some(column), Some(literal)) => {
                    Some((column, literal))
                }
                _ => None,
            };
            if let Some(((qualifier, column), literal)) = pair {
                let constant = Constant { qualifier, column, literal };
                if !self.found.contains(&constant) {
                    self.found.push(constant);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `(qualifier, column)` of a plain column reference, looking through casts and parentheses.
fn column_of(expr: &Expr) -> Option<(Option<String>, String)> {
    match expr {
        Expr::Identifier(ident) => Some((None, ident_text(ident))),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let column = ident_text(&parts[parts.len() - 1]);
            Some((Some(ident_text(&parts[parts.len() - 2])), column))
        }
        Expr::Cast { expr, .. } | Expr::Nested(expr) => column_of(expr),
        _ => None,
    }
}

fn ident_text(ident: &sqlparser::ast::Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

fn object_name_text(name: &ObjectName) -> String {
    name.0.iter().filter_map(|part| part.as_ident()).map(ident_text).collect::<Vec<_>>().join(".")
}

fn assigned_columns(assignments: &[sqlparser::ast::Assignment]) -> Vec<String> {
    let mut columns = Vec::new();
    for assignment in assignments {
        let names: Vec<&ObjectName> = match &assignment.target {
            AssignmentTarget::ColumnName(name) => vec![name],
            AssignmentTarget::Tuple(names) => names.iter().collect(),
        };
        for name in names {
            if let Some(last) = name.0.last().and_then(|part| part.as_ident()) {
                columns.push(ident_text(last));
            }
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> Shape {
        Shape::parse(sql).unwrap()
    }

    #[test]
    fn in_lists_of_different_lengths_share_a_fingerprint() {
        let short = shape("SELECT * FROM orders WHERE id IN (1, 2)");
        let long = shape("select *  from ORDERS where ID in (7, 8, 9, 10, 11)");
        assert_eq!(short.fingerprint, long.fingerprint);
        assert_eq!(short.normalized, "select * from orders where id in ($1)");
    }

    #[test]
    fn literals_and_parameters_are_the_same_shape() {
        let literal = shape("SELECT name FROM users WHERE email = 'a@b.c' AND age > 30");
        let bound = shape("SELECT name FROM users WHERE email = $1 AND age > $2");
        assert_eq!(literal.fingerprint, bound.fingerprint);
    }

    #[test]
    fn a_repeated_parameter_keeps_one_number() {
        let repeated = shape("SELECT 1 FROM t WHERE a = $1 OR b = $1 AND c = 5");
        assert_eq!(repeated.normalized, "select $1 from t where a = $2 or b = $2 and c = $3");
    }

    #[test]
    fn different_columns_are_different_shapes() {
        assert_ne!(fingerprint("SELECT * FROM t WHERE a = 1"), fingerprint("SELECT * FROM t WHERE b = 1"));
    }

    #[test]
    fn quoted_names_keep_their_case() {
        assert_ne!(fingerprint(r#"SELECT * FROM "Orders""#), fingerprint("SELECT * FROM orders"));
    }

    #[test]
    fn unparseable_sql_gets_a_fingerprint_of_its_text() {
        let error = Shape::parse("SELEKT * FROM t WHERE a = 1").unwrap_err();
        let again = Shape::parse("selekt *   from t where a = 2").unwrap_err();
        assert_eq!(error.fingerprint, again.fingerprint);
        assert!(error.to_string().contains("unparseable SQL"), "{error}");
        assert_eq!(fingerprint("SELEKT * FROM t WHERE a = 1"), error.fingerprint);
    }

    #[test]
    fn an_insert_writes_its_table() {
        let shape = shape("INSERT INTO audit.events (id, body) VALUES ($1, $2)");
        assert_eq!((shape.kind, shape.target.as_deref()), (StatementKind::Insert, Some("audit.events")));
    }

    #[test]
    fn order_by_columns_keep_their_order() {
        let shape = shape("SELECT * FROM t ORDER BY b, a");
        let order: Vec<&str> =
            shape.uses.iter().filter(|u| u.role == ColumnRole::Order).map(|u| u.column.as_str()).collect();
        assert_eq!(order, ["b", "a"]);
    }

    #[test]
    fn a_typed_constant_pg_stat_statements_normalized_still_parses() {
        let normalized = shape("SELECT * FROM t WHERE d > date $1");
        assert_eq!(normalized.fingerprint, shape("SELECT * FROM t WHERE d > DATE '2024-01-01'").fingerprint);
    }

    #[test]
    fn column_equals_literal_comparisons_are_kept_as_written() {
        let shape = shape("SELECT * FROM orders o WHERE o.status = 'open' AND customer = $1 AND 7 = region");
        let constants: Vec<(Option<&str>, &str, &str)> =
            shape.constants.iter().map(|c| (c.qualifier.as_deref(), c.column.as_str(), c.literal.as_str())).collect();
        assert_eq!(constants, [(Some("o"), "status", "'open'"), (None, "region", "7")]);
    }

    #[test]
    fn two_statements_are_not_one_shape() {
        assert!(Shape::parse("SELECT 1; SELECT 2").is_err());
    }

    #[test]
    fn filter_join_order_and_group_columns_are_found_with_their_roles() {
        let shape = shape(
            "SELECT o.customer, count(*) FROM orders o JOIN customers c ON c.id = o.customer \
             WHERE o.status = $1 AND o.created >= $2 AND c.region IN (1, 2) \
             GROUP BY o.customer ORDER BY o.customer",
        );
        let roles: Vec<(Option<&str>, &str, ColumnRole)> =
            shape.uses.iter().map(|u| (u.qualifier.as_deref(), u.column.as_str(), u.role)).collect();
        assert!(roles.contains(&(Some("o"), "status", ColumnRole::Equality)), "{roles:?}");
        assert!(roles.contains(&(Some("c"), "region", ColumnRole::Equality)), "{roles:?}");
        assert!(roles.contains(&(Some("o"), "created", ColumnRole::Range)), "{roles:?}");
        assert!(roles.contains(&(Some("c"), "id", ColumnRole::Join)), "{roles:?}");
        assert!(roles.contains(&(Some("o"), "customer", ColumnRole::Join)), "{roles:?}");
        assert!(roles.contains(&(Some("o"), "customer", ColumnRole::Group)), "{roles:?}");
        assert!(roles.contains(&(Some("o"), "customer", ColumnRole::Order)), "{roles:?}");
        assert_eq!(shape.tables.len(), 2);
        assert_eq!(shape.tables[0], TableRef { name: "orders".into(), alias: Some("o".into()) });
    }

    #[test]
    fn a_qualifier_resolves_to_its_alias_or_table_name() {
        let shape = shape("SELECT * FROM sales.orders o, items WHERE o.id = items.order_id");
        let by_alias = ColumnUse { qualifier: Some("o".into()), column: "id".into(), role: ColumnRole::Join };
        let by_name = ColumnUse { qualifier: Some("items".into()), column: "order_id".into(), role: ColumnRole::Join };
        assert_eq!(shape.tables_of(&by_alias).map(|t| t.name.as_str()).collect::<Vec<_>>(), ["sales.orders"]);
        assert_eq!(shape.tables_of(&by_name).map(|t| t.name.as_str()).collect::<Vec<_>>(), ["items"]);
    }

    #[test]
    fn an_update_names_the_columns_it_assigns() {
        let shape = shape("UPDATE accounts SET balance = balance + $1, touched = now() WHERE id = $2");
        assert_eq!(shape.kind, StatementKind::Update);
        assert_eq!(shape.assigned, ["balance", "touched"]);
        assert_eq!(shape.target.as_deref(), Some("accounts"));
        assert!(shape.uses.iter().any(|u| u.column == "id" && u.role == ColumnRole::Equality));
    }
}
