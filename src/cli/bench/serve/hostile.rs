//! `frontier bench hostile`: what a burst of the most expensive valid requests does to everyone
//! else. The same Zipf load of ordinary requests runs twice through an in-process serving
//! instance, once alone (the baseline) and once while `heavy` maximum-cost analyses (all
//! symbols, the most Monte-Carlo paths, distinct seeds, another tenant) arrive at once at its
//! start; it prints the ordinary requests' latency in both, how the heavy ones ended, and the
//! process's threads and memory before, at the peak and after.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{Bench, Lingers, ScratchDir, load, summary};
use crate::cli::percentile;
use crate::settings::Settings;

/// `frontier bench hostile` options.
#[derive(Debug, Args)]
pub struct HostileBenchArgs {
    /// Symbols seeded; a heavy request holds every one of them.
    #[arg(long, default_value_t = 52)]
    pub symbols: usize,
    /// Heavy requests arriving at once at the start of the hostile phase.
    #[arg(long, default_value_t = 150)]
    pub heavy: usize,
    /// Monte-Carlo paths of each heavy request (the most a request may ask for: 1,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    pub paths: u64,
    /// How long a heavy request's answer stays useful (its deadline).
    #[arg(long, default_value = "60s", value_parser = crate::cli::duration_arg)]
    pub heavy_deadline: Duration,
    /// Ordinary requests per second (a Zipf load over volatilities, portfolios and options).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Distinct ordinary requests.
    #[arg(long, default_value_t = 500)]
    pub keys: usize,
    /// Seconds of each measured phase (baseline, hostile).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Producer linger (ms) of the publisher and the serving instance.
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u64,
}

/// Threads and memory of this process (the serving instance runs in it), from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct ProcessFigures {
    threads: u64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

impl ProcessFigures {
    fn now() -> ProcessFigures {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        ProcessFigures {
            threads: field("Threads:") as u64,
            rss_mib: field("VmRSS:") / 1024.0,
            peak_rss_mib: field("VmHWM:") / 1024.0,
        }
    }
}

pub(in crate::cli::bench) async fn bench_hostile(
    settings: &Settings,
    args: HostileBenchArgs,
) -> anyhow::Result<ExitCode> {
    if args.symbols < 5 || args.heavy == 0 || args.rate <= 0.0 || args.seconds == 0 || args.keys == 0 {
        bail!("need at least 5 symbols, 1 heavy request, a positive rate, 1 key and 1 second");
    }
    let lingers = Lingers::all(Duration::from_millis(args.linger_ms));
    let (mut bench, symbols) = Bench::prepare(settings, "hostile", args.symbols, lingers, &["all"]).await?;
    let dir = ScratchDir::new("hostile")?;
    let cache = bench.cache_settings(dir.path(), Some((Duration::from_secs(3600), Duration::ZERO)));
    let instance = bench.start_instance(&cache, "hostile", "all").await?;

    let space = load::key_space(&symbols, args.keys);
    let zipf = load::Zipf::new(space.len(), 1.1);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut ordinary = move |_| {
        let (kind, params) = &space[zipf.sample(&mut rng)];
        (kind.clone(), "acme".to_string(), params.clone())
    };
    let count = (args.rate * args.seconds as f64) as usize;
    eprintln!("[bench] warm-up: {count} ordinary requests at {}/s", args.rate);
    bench.run_phase("warmup", count, args.rate, &mut ordinary).await?;
    let before = ProcessFigures::now();
    eprintln!("[bench] baseline: {count} ordinary requests at {}/s", args.rate);
    let baseline = bench.run_phase("baseline", count, args.rate, &mut ordinary).await?;

    eprintln!(
        "[bench] hostile: {} requests of {} symbols x {} paths at once, then {count} ordinary requests at {}/s",
        args.heavy, args.symbols, args.paths, args.rate
    );
    let weights: BTreeMap<&String, f64> = symbols.iter().map(|s| (s, 1.0 / symbols.len() as f64)).collect();
    let deadline = crate::clock::now_millis() + i64::try_from(args.heavy_deadline.as_millis()).unwrap_or(i64::MAX);
    for seed in 0..args.heavy {
        let params = json!({"weights": weights, "paths": args.paths, "seed": seed, "window_days": 250});
        bench.publish_with_deadline(&format!("heavy-{seed}"), "portfolio.risk", "mallory", params, Some(deadline))?;
    }
    let hostile = bench.run_phase("hostile", count, args.rate, &mut ordinary).await?;
    let during = ProcessFigures::now();

    // The heavy requests end one way or another by their deadline (computed, refused, timed out).
    let heavy_outcomes =
        bench.collect_answers("heavy", args.heavy, args.heavy_deadline + Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = ProcessFigures::now();
    instance.stop().await?;
    bench.finish().await?;

    let base = baseline.latencies(|a| a.status == "ok");
    let under = hostile.latencies(|a| a.status == "ok");
    println!(
        "frontier bench hostile: {} ordinary requests/s over {} keys, {} heavy requests ({} symbols x {} paths, deadline {:?}) at once",
        args.rate, args.keys, args.heavy, args.symbols, args.paths, args.heavy_deadline
    );
    println!("ordinary requests, publish -> response through Kafka:");
    println!("  baseline (alone)        {}", summary(&base));
    println!("  with the heavy burst    {}", summary(&under));
    let ratio = percentile(&under, 99.0) / percentile(&base, 99.0);
    println!("  p99 with the burst / p99 alone: {ratio:.2} (goal <= 2.0)");
    println!(
        "  answered: baseline {} of {}, with the burst {} of {}",
        baseline.answered.len(),
        baseline.sent,
        hostile.answered.len(),
        hostile.sent
    );
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for answered in &heavy_outcomes {
        *by_outcome.entry(answered.status.clone()).or_default() += 1;
    }
    println!("heavy requests: {} answered of {}, by status {by_outcome:?}", heavy_outcomes.len(), args.heavy);
    println!("process (the serving instance runs in it):");
    for (label, figures) in
        [("before the burst", before), ("end of the burst phase", during), ("after the burst", after)]
    {
        println!(
            "  {label:24} threads {:4}  rss {:8.1} MiB  peak rss {:8.1} MiB",
            figures.threads, figures.rss_mib, figures.peak_rss_mib
        );
    }
    Ok(ExitCode::SUCCESS)
}
