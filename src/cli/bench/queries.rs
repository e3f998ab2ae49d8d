//! `frontier bench queries`: the index advisor against Dexter's rule on one workload with
//! planted missing indexes and decoys, in a scratch database of the local PostgreSQL. Both
//! advisors read the same `pg_stat_statements`; each one's indexes are built for real, the
//! workload is run again and timed, and the indexes are dropped before the other's turn.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::{Connection, PgConnection};

use crate::health::redact;
use crate::queries::{AdvisorSettings, Workload, advise, dexter};
use crate::settings::Settings;

/// `frontier bench queries` options.
#[derive(Debug, Args)]
pub struct QueriesBenchArgs {
    /// Size of the tables: 1 is 200,000 accounts, 150,000 orders and 600,000 line items.
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Runs of each read statement per timed pass (writes run 20 times as often).
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Keep the scratch database afterwards (its name is printed).
    #[arg(long)]
    pub keep: bool,
}

/// The schema: pgbench's tables without keys, TPC-H-style orders and line items, and a tiny
/// nation table. Nothing is indexed.
fn schema(scale: u32) -> Vec<String> {
    let s = scale.max(1);
    vec![
        "SELECT setseed(0.42)".into(),
        "CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int NOT NULL, abalance int NOT NULL, filler char(84))"
            .into(),
        format!(
            "INSERT INTO pgbench_accounts SELECT g, (g - 1) / 100000 + 1, 0, '' FROM generate_series(1, {}) g",
            200_000 * s
        ),
        "CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22))".into(),
        "INSERT INTO pgbench_history SELECT (random() * 99)::int + 1, 1, (random() * 199999)::int + 1, 1, now(), '' \
         FROM generate_series(1, 50000)"
            .into(),
        "CREATE TABLE nation (n_nationkey int NOT NULL, n_name text NOT NULL, n_regionkey int NOT NULL)".into(),
        "INSERT INTO nation SELECT g, 'NATION ' || g, g % 5 FROM generate_series(0, 24) g".into(),
        "CREATE TABLE orders (o_orderkey int NOT NULL, o_custkey int NOT NULL, o_orderstatus char(1) NOT NULL, \
         o_totalprice numeric NOT NULL, o_orderdate date NOT NULL, o_comment text)"
            .into(),
        format!(
            "INSERT INTO orders SELECT g, (random() * {}) ::int + 1, (ARRAY['F', 'O', 'P'])[g % 3 + 1], \
             round((random() * 100000)::numeric, 2), date '1992-01-01' + (random() * 2400)::int, 'comment ' || g \
             FROM generate_series(1, {}) g",
            15_000 * s - 1,
            150_000 * s
        ),
        "CREATE TABLE lineitem (l_orderkey int NOT NULL, l_partkey int NOT NULL, l_quantity int NOT NULL, \
         l_extendedprice numeric NOT NULL, l_shipdate date NOT NULL, l_comment text)"
            .into(),
        format!(
            "INSERT INTO lineitem SELECT (g - 1) / 4 + 1, (random() * 20000)::int, (random() * 49)::int + 1, \
             round((random() * 10000)::numeric, 2), date '1992-01-01' + (random() * 2500)::int, 'item ' || g \
             FROM generate_series(1, {}) g",
            600_000 * s
        ),
        "VACUUM ANALYZE".into(),
    ]
}

/// Planted missing indexes, as (table, leading column): what a good advisor finds.
const PLANTED: [(&str, &str); 4] = [
    ("public.pgbench_accounts", "aid"),
    ("public.orders", "o_custkey"),
    ("public.lineitem", "l_orderkey"),
    ("public.lineitem", "l_shipdate"),
];
/// Decoys, as (table, leading column or `*`): an index there helps nothing, or costs more
/// than it saves.
const DECOYS: [(&str, &str); 3] =
    [("public.orders", "o_orderstatus"), ("public.nation", "*"), ("public.pgbench_history", "*")];

/// One statement of the workload with its parameters for every run (the same in every pass).
struct Statement {
    sql: &'static str,
    params: Vec<Vec<i64>>,
    /// Whether it writes (timed apart: the harm an index does shows there).
    writes: bool,
}

fn workload(scale: u32, runs: usize) -> Vec<Statement> {
    let s = i64::from(scale.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut params = |count: usize, draw: &mut dyn FnMut(&mut ChaCha8Rng) -> Vec<i64>| -> Vec<Vec<i64>> {
        (0..count).map(|_| draw(&mut rng)).collect()
    };
    let (accounts, customers) = (200_000 * s, 15_000 * s);
    vec![
        Statement {
            sql: "SELECT abalance FROM pgbench_accounts WHERE aid = $1::int",
            params: params(runs, &mut |r| vec![r.random_range(1..=accounts)]),
            writes: false,
        },
        Statement {
            sql: "UPDATE pgbench_accounts SET abalance = abalance + $1::int WHERE aid = $2::int",
            params: params(runs, &mut |r| vec![r.random_range(-5000..=5000), r.random_range(1..=accounts)]),
            writes: false,
        },
        Statement {
            sql: "SELECT o_orderkey, o_totalprice FROM orders WHERE o_custkey = $1::int ORDER BY o_orderdate DESC LIMIT 10",
            params: params(runs, &mut |r| vec![r.random_range(1..=customers)]),
            writes: false,
        },
        Statement {
            sql: "SELECT sum(l.l_quantity) FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey \
                  WHERE o.o_custkey = $1::int",
            params: params(runs / 2, &mut |r| vec![r.random_range(1..=customers)]),
            writes: false,
        },
        Statement {
            // A week of ship dates. (Written `+ 7`, pg_stat_statements would keep `+ $4`, whose
            // type PostgreSQL cannot infer in a generic plan: the advisor reports such a
            // statement as not analysed.)
            sql: "SELECT count(*), sum(l_extendedprice) FROM lineitem \
                  WHERE l_shipdate BETWEEN date '1992-01-01' + $1::int AND date '1992-01-01' + $2::int",
            params: params(runs / 2, &mut |r| {
                let first = r.random_range(0..2400);
                vec![first, first + 7]
            }),
            writes: false,
        },
        // Decoys: a third of the orders (no index beats the scan), a 25-row table, and a
        // table written 20 times per read of it.
        Statement {
            sql: "SELECT o_orderkey, o_totalprice FROM orders WHERE o_orderstatus = chr($1::int)",
            params: params(runs / 4, &mut |r| vec![[70, 79, 80][r.random_range(0..3)]]),
            writes: false,
        },
        Statement {
            sql: "SELECT n_name FROM nation WHERE n_nationkey = $1::int",
            params: params(runs, &mut |r| vec![r.random_range(0..25)]),
            writes: false,
        },
        Statement {
            sql: "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, filler) \
                  VALUES ($1::int, 1, $2::int, $3::int, now(), '')",
            params: params(runs * 20, &mut |r| {
                vec![r.random_range(1..=100), r.random_range(1..=accounts), r.random_range(-5000..=5000)]
            }),
            writes: true,
        },
        Statement {
            sql: "SELECT count(*) FROM pgbench_history WHERE tid = $1::int",
            params: params(3, &mut |r| vec![r.random_range(1..=100)]),
            writes: false,
        },
    ]
}

/// Milliseconds the reads and the writes of one pass took.
#[derive(Debug, Clone, Copy, Default)]
struct Pass {
    read_ms: f64,
    write_ms: f64,
}

async fn run_pass(conn: &mut PgConnection, statements: &[Statement]) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    for statement in statements {
        let started = Instant::now();
        for params in &statement.params {
            let mut query = sqlx::query(statement.sql);
            for value in params {
                query = query.bind(*value);
            }
            query.execute(&mut *conn).await.with_context(|| format!("running {}", statement.sql))?;
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if statement.writes {
            pass.write_ms += ms;
        } else {
            pass.read_ms += ms;
        }
    }
    Ok(pass)
}

/// One advisor's indexes, as (table, columns, DDL that builds it here, estimated bytes).
type Choice = Vec<(String, Vec<String>, String, i64)>;

/// What an advisor's choice did.
struct Outcome {
    name: &'static str,
    choice: Choice,
    advice_ms: f64,
    after: Pass,
    storage_bytes: i64,
}

pub async fn bench_queries(settings: &Settings, args: QueriesBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let admin_url = &settings.postgres.url;
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {} (start the stack with `ops/stack up`)", redact(admin_url)))?;
    let name = format!("frontier_bench_queries_{}", crate::clock::now_millis());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => anyhow::bail!("the [postgres] url names no database"),
    };
    let result = run(&url, &args).await;
    if args.keep {
        println!("kept database {name}");
    } else {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&mut admin)
            .await?;
    }
    result
}

async fn run(url: &str, args: &QueriesBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut conn = PgConnection::connect(url).await?;
    let built = Instant::now();
    for statement in ["CREATE EXTENSION hypopg", "CREATE EXTENSION pg_stat_statements"]
        .into_iter()
        .map(str::to_owned)
        .chain(schema(args.scale))
    {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone())).execute(&mut conn).await.with_context(|| statement)?;
    }
    println!("scratch database built in {:.1} s (scale {})", built.elapsed().as_secs_f64(), args.scale);
    let statements = workload(args.scale, args.runs);
    sqlx::query("SELECT pg_stat_statements_reset()").execute(&mut conn).await?;
    let before = run_pass(&mut conn, &statements).await?;
    println!("workload without indexes: reads {:.0} ms, writes {:.0} ms", before.read_ms, before.write_ms);

    let workload_seen = Workload::from_stat_statements(&mut conn, 200).await?;
    let mut outcomes = Vec::new();
    // Ours.
    let started = Instant::now();
    let mut advice_conn = PgConnection::connect(url).await?;
    let advice = advise(&mut advice_conn, &workload_seen, &AdvisorSettings::default()).await?;
    let advice_ms = started.elapsed().as_secs_f64() * 1000.0;
    let ours: Choice = advice
        .create
        .iter()
        .map(|index| (index.table.clone(), index.columns.clone(), index.ddl.clone(), index.size_bytes))
        .collect();
    outcomes.push(measure(&mut conn, "frontier", ours, advice_ms, &statements).await?);
    // Dexter's rule.
    let started = Instant::now();
    let mut baseline_conn = PgConnection::connect(url).await?;
    let baseline = dexter(&mut baseline_conn, &workload_seen).await?;
    let baseline_ms = started.elapsed().as_secs_f64() * 1000.0;
    let chosen: Choice =
        baseline.into_iter().map(|index| (index.table, index.columns, index.ddl, index.size_bytes)).collect();
    outcomes.push(measure(&mut conn, "dexter", chosen, baseline_ms, &statements).await?);

    report(&before, &outcomes);
    Ok(std::process::ExitCode::SUCCESS)
}

/// Builds `choice`, runs the workload again, drops what it built.
async fn measure(
    conn: &mut PgConnection,
    name: &'static str,
    choice: Choice,
    advice_ms: f64,
    statements: &[Statement],
) -> anyhow::Result<Outcome> {
    let mut built = Vec::new();
    let mut storage_bytes = 0;
    for (i, (table, columns, _, _)) in choice.iter().enumerate() {
        // Named here so it can be dropped; the advisor's own DDL may differ only in its name.
        let index = format!("bench_{name}_{i}");
        let columns: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let ddl = format!("CREATE INDEX {index} ON {table} ({})", columns.join(", "));
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl.clone())).execute(&mut *conn).await.with_context(|| ddl)?;
        let size: i64 = sqlx::query_scalar("SELECT pg_relation_size($1::regclass)::int8")
            .bind(&index)
            .fetch_one(&mut *conn)
            .await?;
        storage_bytes += size;
        built.push(index);
    }
    sqlx::raw_sql("ANALYZE").execute(&mut *conn).await?;
    let after = run_pass(conn, statements).await?;
    for index in built {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX {index}"))).execute(&mut *conn).await?;
    }
    Ok(Outcome { name, choice, advice_ms, after, storage_bytes })
}

fn is(table: &str, columns: &[String], (want_table, want_column): (&str, &str)) -> bool {
    table == want_table && (want_column == "*" || columns.first().map(String::as_str) == Some(want_column))
}

fn report(before: &Pass, outcomes: &[Outcome]) {
    println!();
    println!(
        "{:<9} {:>7} {:>7} {:>7} {:>8} {:>11} {:>10} {:>9} {:>7} {:>10}",
        "advisor", "indexes", "recall", "decoys", "harmful", "storage MiB", "workload ms", "cut", "writes", "advice ms"
    );
    let before_total = before.read_ms + before.write_ms;
    for outcome in outcomes {
        let found = PLANTED.iter().filter(|&&p| outcome.choice.iter().any(|(t, c, ..)| is(t, c, p))).count();
        let decoys = outcome.choice.iter().filter(|(t, c, ..)| DECOYS.iter().any(|&d| is(t, c, d))).count();
        // Harmful: measured write time added beyond the read time saved, on the written table.
        let on_written = outcome.choice.iter().any(|(t, ..)| t == "public.pgbench_history");
        let write_added = outcome.after.write_ms - before.write_ms;
        let harmful =
            usize::from(on_written && write_added > 0.0 && write_added > before.read_ms - outcome.after.read_ms);
        let total = outcome.after.read_ms + outcome.after.write_ms;
        println!(
            "{:<9} {:>7} {:>6.0}% {:>7} {:>8} {:>11.1} {:>10.0} {:>8.1}% {:>+6.0}% {:>10.0}",
            outcome.name,
            outcome.choice.len(),
            100.0 * found as f64 / PLANTED.len() as f64,
            decoys,
            harmful,
            outcome.storage_bytes as f64 / f64::from(1 << 20),
            total,
            100.0 * (1.0 - total / before_total),
            100.0 * (outcome.after.write_ms / before.write_ms.max(1e-9) - 1.0),
            outcome.advice_ms
        );
    }
    for outcome in outcomes {
        for (table, columns, ddl, _) in &outcome.choice {
            println!("  {:<8} {table} ({}): {ddl}", outcome.name, columns.join(", "));
        }
    }
    println!(
        "\nworkload without indexes: {before_total:.0} ms. Goal: frontier cuts at least as much as dexter with no \
         more storage, recall >= 90 %, 0 harmful, advice within 10 s (the analyzer advises as soon as a window has a \
         finding)."
    );
}
