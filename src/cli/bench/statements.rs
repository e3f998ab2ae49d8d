//! `frontier bench statements`: the price store's statement cache against the store alone, on
//! the reads the serving worker makes, in a scratch schema of the local PostgreSQL and a
//! scratch prefix of the local Redis. Two loads: a Zipf load of the reads that requests
//! differing only where a statement does not look share (an option's strike, a portfolio's
//! weights), and a load of reads that never repeat, where the doorkeeper must keep the cache
//! from costing anything. Each round runs both stores, alternating; medians are printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::median;
use super::serve::Zipf;
use crate::cache::TieredCache;
use crate::market::seed::{SeedPlan, seed_prices};
use crate::market::{PriceStore, RecordedQueryEvents, StoreOptions};
use crate::settings::Settings;

/// `frontier bench statements` options.
#[derive(Debug, Args)]
pub struct StatementsBenchArgs {
    /// Symbols seeded (300 days each).
    #[arg(long, default_value_t = 200)]
    pub symbols: usize,
    /// Reads of the Zipf load per run.
    #[arg(long, default_value_t = 20_000)]
    pub reads: usize,
    /// Reads in flight at once (the serving worker's analysis pool runs this many).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Runs of each store per load (alternating); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// One read of the load.
#[derive(Debug, Clone)]
enum Read {
    /// What `market.volatility` and `option.price` on a symbol read.
    Latest { symbol: String, count: usize },
    /// What `portfolio.risk` reads: the symbols' lookup, then their aligned closes.
    Portfolio { symbols: Vec<String>, count: usize },
}

impl Read {
    async fn run(&self, store: &PriceStore) -> anyhow::Result<()> {
        match self {
            Read::Latest { symbol, count } => {
                store.latest_closes(symbol, *count).await?;
            }
            Read::Portfolio { symbols, count } => {
                let symbols: Vec<&str> = symbols.iter().map(String::as_str).collect();
                store.existing_symbols(&symbols).await?;
                store.aligned_closes(&symbols, *count).await?;
            }
        }
        Ok(())
    }
}

/// The Zipf load: 80 % latest closes of a Zipf-ranked symbol over one of the request kinds'
/// usual windows, 20 % one of 100 portfolios, Zipf-ranked.
fn zipf_load(names: &[String], reads: usize) -> Vec<Read> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let windows = [21, 61, 121, 253];
    let portfolios: Vec<Vec<String>> = (0..100)
        .map(|_| {
            let size = rng.random_range(2..=5);
            let mut symbols: Vec<String> = (0..size).map(|_| names[rng.random_range(0..names.len())].clone()).collect();
            symbols.sort();
            symbols.dedup();
            symbols
        })
        .collect();
    let (by_symbol, by_portfolio) = (Zipf::new(names.len(), 1.1), Zipf::new(portfolios.len(), 1.1));
    (0..reads)
        .map(|_| {
            if rng.random::<f64>() < 0.8 {
                let symbol = names[by_symbol.sample(&mut rng)].clone();
                Read::Latest { symbol, count: windows[rng.random_range(0..windows.len())] }
            } else {
                Read::Portfolio { symbols: portfolios[by_portfolio.sample(&mut rng)].clone(), count: 121 }
            }
        })
        .collect()
}

/// Reads that never repeat: every symbol once per window length from 20 to 59 days.
fn distinct_load(names: &[String]) -> Vec<Read> {
    (20..60).flat_map(|count| names.iter().map(move |symbol| Read::Latest { symbol: symbol.clone(), count })).collect()
}

/// What one run measured.
struct Run {
    reads_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    statements_per_read: f64,
}

/// Runs `load` on `store` with `concurrency` reads in flight.
async fn run(
    store: &PriceStore,
    events: &RecordedQueryEvents,
    load: &Arc<Vec<Read>>,
    concurrency: usize,
) -> anyhow::Result<Run> {
    let before = events.events().len();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (store, load, next) = (store.clone(), load.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Histogram::<u64>::new(3)?;
            while let Some(read) = load.get(next.fetch_add(1, Ordering::Relaxed)) {
                let asked = Instant::now();
                read.run(&store).await?;
                latencies.record(u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX))?;
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Histogram::<u64>::new(3)?;
    while let Some(joined) = tasks.join_next().await {
        latencies.add(joined??)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let statements = events.events().len() - before;
    Ok(Run {
        reads_per_second: load.len() as f64 / elapsed,
        p50_ms: latencies.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1000.0,
        statements_per_read: statements as f64 / load.len() as f64,
    })
}

/// A cache of the configured settings with a Redis prefix and a disk folder (under `disk`) of
/// its own: every cached run starts cold.
async fn fresh_cache(settings: &Settings, disk: &std::path::Path) -> anyhow::Result<TieredCache> {
    let mut cache = settings.cache.clone();
    let run = uuid::Uuid::new_v4().simple().to_string();
    cache.redis_key_prefix = format!("bench:statements:{run}");
    cache.disk_dir = disk.join(run);
    Ok(TieredCache::connect(&cache, Some(&settings.redis.url)).await?)
}

pub async fn bench_statements(
    settings: &Settings,
    args: StatementsBenchArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let schema = format!("bench_statements_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let events = Arc::new(RecordedQueryEvents::default());
    let options = StoreOptions { schema: Some(schema.clone()), application: "frontier bench statements".into() };
    let store = PriceStore::connect(&settings.postgres, options, events.clone())
        .await
        .context("connecting the price store (start the stack with `ops/stack up`)")?;
    eprintln!("[bench] seeding {} symbols x 300 days into schema {schema}", args.symbols);
    let plan = SeedPlan { symbols: args.symbols, days: 300, seed: 42, names: Vec::new(), benchmark: None };
    seed_prices(&store, &plan, |_, _| {}).await.context("seeding")?;
    let names: Vec<String> = (1..=args.symbols).map(|i| format!("SYN{i:04}")).collect();
    let disk = settings.cache.disk_dir.join(format!("{schema}.disk"));

    let loads = [("zipf", Arc::new(zipf_load(&names, args.reads))), ("distinct", Arc::new(distinct_load(&names)))];
    println!(
        "frontier bench statements: {} symbols, {} reads in flight, {} rounds (medians; cached runs start cold)",
        args.symbols, args.concurrency, args.rounds
    );
    println!(
        "{:<9} {:>7} {:<10} {:>9} {:>9} {:>9} {:>11}",
        "load", "reads", "store", "reads/s", "p50 ms", "p99 ms", "stmts/read"
    );
    for (name, load) in &loads {
        let (mut plain, mut cached) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds.max(1) {
            plain.push(run(&store, &events, load, args.concurrency).await?);
            let cached_store = store.clone().with_statement_cache(fresh_cache(settings, &disk).await?);
            cached.push(run(&cached_store, &events, load, args.concurrency).await?);
        }
        let summary = |runs: &[Run]| {
            (
                median(runs.iter().map(|r| r.reads_per_second).collect()),
                median(runs.iter().map(|r| r.p50_ms).collect()),
                median(runs.iter().map(|r| r.p99_ms).collect()),
                median(runs.iter().map(|r| r.statements_per_read).collect()),
            )
        };
        let (plain, cached) = (summary(&plain), summary(&cached));
        for (label, (rate, p50, p99, statements)) in [("postgres", plain), ("cached", cached)] {
            println!("{name:<9} {:>7} {label:<10} {rate:>9.0} {p50:>9.2} {p99:>9.2} {statements:>11.3}", load.len());
        }
        println!(
            "{name:<9} {:>7} {:<10} {:>8.2}x {:>8.2}x {:>8.2}x {:>10.2}x",
            "",
            "ratio",
            cached.0 / plain.0,
            cached.1 / plain.1,
            cached.2 / plain.2,
            cached.3 / plain.3
        );
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
        .execute(store.pool())
        .await
        .context("dropping the scratch schema")?;
    if disk.exists() {
        std::fs::remove_dir_all(&disk).with_context(|| format!("removing {}", disk.display()))?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
