//! One session that plans statements with and without hypothetical indexes (HypoPG). The
//! session is read-only and statements only ever go through `PREPARE` and `EXPLAIN EXECUTE`,
//! never run, so advising on a production database changes nothing in it.

use sqlx::PgConnection;

use super::AdviceError;

/// The one prepared statement's name; re-prepared for every plan, because a prepared
/// statement keeps its cached plan when a hypothetical index appears (HypoPG sends no
/// invalidation).
const STATEMENT: &str = "frontier_advice";

/// A hypothetical index, alive until [`Planner::forget`] or the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hypothetical {
    pub oid: u32,
    pub size_bytes: i64,
}

/// A statement's plan: its total cost and the hypothetical indexes it uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub cost: f64,
    pub uses: Vec<u32>,
}

/// The planning session.
pub struct Planner<'c> {
    conn: &'c mut PgConnection,
    prepared: bool,
}

impl<'c> Planner<'c> {
    /// Readies the session: HypoPG present (else an error naming what to install), generic
    /// plans for `$n` statements (PostgreSQL 15 has no `EXPLAIN (GENERIC_PLAN)`), read-only.
    pub async fn open(conn: &'c mut PgConnection, database: &str) -> Result<Planner<'c>, AdviceError> {
        let installed: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg')")
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| AdviceError::Query { operation: "looking for HypoPG", source })?;
        if !installed {
            return Err(AdviceError::MissingHypoPg { database: database.to_owned() });
        }
        for setting in [
            "SET plan_cache_mode = force_generic_plan",
            "SET default_transaction_read_only = on",
            "SET statement_timeout = '10s'",
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(setting))
                .execute(&mut *conn)
                .await
                .map_err(|source| AdviceError::Query { operation: "setting up the planning session", source })?;
        }
        sqlx::query("SELECT hypopg_reset()")
            .execute(&mut *conn)
            .await
            .map_err(|source| AdviceError::Query { operation: "clearing hypothetical indexes", source })?;
        Ok(Planner { conn, prepared: false })
    }

    /// Plans `sql` as it would run now. An error here is the statement's (it does not plan:
    /// a dropped table, a syntax PostgreSQL refuses), not the session's.
    pub async fn plan(&mut self, sql: &str) -> Result<Plan, sqlx::Error> {
        if self.prepared {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DEALLOCATE {STATEMENT}"))).execute(&mut *self.conn).await?;
            self.prepared = false;
        }
        // The extended protocol takes exactly one command, so a text that is really two
        // statements is refused here whatever the parser upstream made of it.
        sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE {STATEMENT} AS {sql}"))).execute(&mut *self.conn).await?;
        self.prepared = true;
        let parameters: i32 =
            sqlx::query_scalar("SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1")
                .bind(STATEMENT)
                .fetch_one(&mut *self.conn)
                .await?;
        // A generic plan does not look at the values: NULL stands for each.
        let arguments = if parameters > 0 {
            format!("({})", vec!["NULL"; usize::try_from(parameters).unwrap_or(0)].join(", "))
        } else {
            String::new()
        };
        let explained: serde_json::Value =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) EXECUTE {STATEMENT}{arguments}")))
                .fetch_one(&mut *self.conn)
                .await?;
        let root = &explained[0]["Plan"];
        let cost = root["Total Cost"].as_f64().unwrap_or(f64::NAN);
        let mut uses = Vec::new();
        collect_hypothetical(root, &mut uses);
        Ok(Plan { cost, uses })
    }

    /// Creates a hypothetical index from its DDL.
    pub async fn create(&mut self, ddl: &str) -> Result<Hypothetical, AdviceError> {
        let (oid, size_bytes): (i64, i64) = sqlx::query_as(
            "SELECT h.indexrelid::int8, hypopg_relation_size(h.indexrelid)::int8 FROM hypopg_create_index($1) h",
        )
        .bind(ddl)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(|source| AdviceError::Query { operation: "creating a hypothetical index", source })?;
        Ok(Hypothetical { oid: u32::try_from(oid).unwrap_or_default(), size_bytes })
    }

    /// Drops a hypothetical index.
    pub async fn forget(&mut self, index: Hypothetical) -> Result<(), AdviceError> {
        sqlx::query("SELECT hypopg_drop_index($1::int8::oid)")
            .bind(i64::from(index.oid))
            .execute(&mut *self.conn)
            .await
            .map_err(|source| AdviceError::Query { operation: "dropping a hypothetical index", source })?;
        Ok(())
    }

    /// The connection, for catalog reads between plans.
    pub fn connection(&mut self) -> &mut PgConnection {
        self.conn
    }
}

/// HypoPG names its indexes `<oid>btree_...`: the oids of those a plan uses.
fn collect_hypothetical(node: &serde_json::Value, out: &mut Vec<u32>) {
    if let Some(name) = node["Index Name"].as_str()
        && let Some(rest) = name.strip_prefix('<')
        && let Some((oid, _)) = rest.split_once('>')
        && let Ok(oid) = oid.parse()
    {
        out.push(oid);
    }
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            collect_hypothetical(child, out);
        }
    }
}
