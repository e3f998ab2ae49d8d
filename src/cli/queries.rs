//! `frontier queries ...`: slow-query analysis and index advice from the command line.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::health::redact;
use crate::queries::{Advice, AdvisorSettings, Workload, advise};
use crate::settings::Settings;

/// `frontier queries ...`
#[derive(Debug, Subcommand)]
pub enum QueriesAction {
    /// One-shot index advice for any PostgreSQL database, from its pg_stat_statements, proven
    /// with HypoPG's hypothetical indexes. Changes nothing in the database.
    Advise(AdviseArgs),
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
    }
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
