//! `frontier bench gateway`: the gateway's cost. The same Zipf requests to a warm serving
//! instance, first published straight to Kafka (the baseline), then posted over HTTP with an
//! API key through an in-process gateway (authentication, rate limits, Kafka, the reply topic),
//! each timed from send to answer; then a tenant over its quota, counting 429s.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{Bench, Lingers, ScratchDir, load, summary};
use crate::cli::percentile;
use crate::gateway::keys::{ApiKeyStore, Role};
use crate::gateway::ratelimit::Quota;
use crate::settings::Settings;

/// `frontier bench gateway` options.
#[derive(Debug, Args)]
pub struct GatewayBenchArgs {
    /// Symbols seeded (300 days each) into a fresh PostgreSQL schema.
    #[arg(long, default_value_t = 50)]
    pub symbols: usize,
    /// Distinct requests of the Zipf load (all cached after the warm-up).
    #[arg(long, default_value_t = 500)]
    pub keys: usize,
    /// Requests per second, both paths.
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Seconds measured per path.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Seconds of load that fill the cache first (straight to Kafka).
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Producer linger (ms) of the publisher, the gateway and the serving instance.
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u64,
    /// Keep-alive HTTP connections the clients share, as a load balancer's pool to a backend
    /// would be. A request waits for a free one, and that wait counts in its latency.
    #[arg(long, default_value_t = 128)]
    pub connections: usize,
}

/// One HTTP answer: its status and the time from when it was due to the whole body.
struct HttpAnswer {
    status: u16,
    latency_ms: f64,
}

pub(in crate::cli::bench) async fn bench_gateway(
    settings: &Settings,
    args: GatewayBenchArgs,
) -> anyhow::Result<ExitCode> {
    if args.symbols < 5 || args.keys == 0 || args.rate <= 0.0 || args.seconds == 0 {
        bail!("need at least 5 symbols, 1 key, a positive rate and 1 second");
    }
    let lingers = Lingers::all(Duration::from_millis(args.linger_ms));
    let (mut bench, symbols) = Bench::prepare(settings, "gateway", args.symbols, lingers, &["direct"]).await?;
    let dir = ScratchDir::new("gateway")?;
    let cache = bench.cache_settings(dir.path(), Some((Duration::from_secs(3600), Duration::ZERO)));
    let instance = bench.start_instance(&cache, "gateway", "direct").await?;

    let space = load::key_space(&symbols, args.keys);
    let zipf = load::Zipf::new(space.len(), 1.1);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut draws: Vec<(String, Value)> = Vec::new();
    let count = (args.rate * args.seconds as f64) as usize;
    for _ in 0..count {
        draws.push(space[zipf.sample(&mut rng)].clone());
    }
    // Every key once, then Zipf: the cache holds all of them before anything is measured.
    eprintln!("[bench] warm-up: every key once, then {} s at {}/s straight to Kafka", args.warmup, args.rate);
    let every = space.clone();
    bench
        .run_phase("fill", every.len(), args.rate.min(500.0), &mut |i| {
            (every[i].0.clone(), "acme".into(), every[i].1.clone())
        })
        .await?;
    let warm = (args.rate * args.warmup as f64) as usize;
    let mut warm_draws = draws.iter().cycle();
    bench
        .run_phase("warmup", warm, args.rate, &mut |_| {
            let (kind, params) = warm_draws.next().cloned().unwrap_or_default();
            (kind, "acme".into(), params)
        })
        .await?;

    eprintln!("[bench] direct: {count} requests at {}/s published to Kafka", args.rate);
    let direct = bench
        .run_phase("direct", count, args.rate, &mut |i| (draws[i].0.clone(), "acme".into(), draws[i].1.clone()))
        .await?;

    // The gateway: its keys in the bench's schema, quotas far above the load except for the
    // throttled tenant.
    let schema = bench.settings.prices.schema.clone();
    let mut gateway_settings = bench.settings.clone();
    let gateway = &mut gateway_settings.gateway;
    gateway.analysis_topic = bench.requests_topic.clone();
    gateway.instance = Some(format!("bench-{}", crate::clock::now_millis()));
    gateway.request_linger = Duration::from_millis(args.linger_ms);
    gateway.auth.schema = schema.clone();
    let unlimited = Quota { per_second: 1_000_000, burst: 1_000_000 };
    let throttle = Quota { per_second: ((args.rate / 10.0) as u32).max(1), burst: ((args.rate / 10.0) as u32).max(1) };
    gateway.rate_limits.default_quota = unlimited;
    gateway.rate_limits.per_key = unlimited;
    gateway.rate_limits.tenants.insert("throttled".into(), throttle);
    gateway.rate_limits.key_prefix = format!("bench:gateway:{}:", uuid::Uuid::new_v4().simple());
    let keys = ApiKeyStore::connect(&bench.settings.postgres, schema.as_deref()).await?;
    let key = keys.create("acme", Role::Operator, "bench gateway").await?.key;
    let throttled_key = keys.create("throttled", Role::Operator, "bench gateway throttled").await?.key;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let token = bench.shutdown.child_token();
    let (catalog, task_token) = (bench.catalog.clone(), token.clone());
    let server =
        tokio::spawn(async move { crate::gateway::run(&gateway_settings, catalog, listener, task_token).await });
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    wait_healthy(&http, &base).await?;

    eprintln!("[bench] gateway: {count} requests at {}/s over HTTP", args.rate);
    let bodies: Vec<(String, String)> = draws
        .iter()
        .map(|(kind, params)| (format!("{base}/v1/analysis/{kind}"), json!({ "params": params }).to_string()))
        .collect();
    // The same requests once unmeasured, so connections and the key cache are warm.
    post_at_rate(&http, &bodies[..bodies.len().min(2000)], args.rate, &key, args.connections).await;
    let started = Instant::now();
    let answers = post_at_rate(&http, &bodies, args.rate, &key, args.connections).await;
    let elapsed = started.elapsed();

    let quota_seconds = 3.0;
    let offered = (args.rate * quota_seconds) as usize;
    eprintln!(
        "[bench] throttled: {offered} requests at {}/s for a tenant allowed {}/s",
        args.rate, throttle.per_second
    );
    let cycled: Vec<(String, String)> = bodies.iter().cycle().take(offered).cloned().collect();
    let throttled = post_at_rate(&http, &cycled, args.rate, &throttled_key, args.connections).await;

    token.cancel();
    server.await.context("gateway task")??;
    instance.stop().await?;

    let direct_latencies = direct.latencies(|a| a.status == "ok");
    let mut gateway_latencies: Vec<f64> = answers.iter().filter(|a| a.status == 200).map(|a| a.latency_ms).collect();
    gateway_latencies.sort_by(f64::total_cmp);
    let failed = answers.iter().filter(|a| a.status != 200).count();
    println!(
        "frontier bench gateway: {} keys (Zipf 1.1) cached in a serving instance, {}/s for {} s per path, linger {} ms, {} HTTP connections",
        args.keys, args.rate, args.seconds, args.linger_ms, args.connections
    );
    println!(
        "direct  (publish -> answer on Kafka)         {}  throughput {:.0}/s",
        summary(&direct_latencies),
        direct.answered.len() as f64 / direct.elapsed.as_secs_f64()
    );
    println!(
        "gateway (HTTP, key, quota, Kafka, reply)     {}  throughput {:.0}/s, {failed} not 200",
        summary(&gateway_latencies),
        answers.len() as f64 / elapsed.as_secs_f64()
    );
    for (label, q) in [("p50", 50.0), ("p99", 99.0)] {
        let (through, straight) = (percentile(&gateway_latencies, q), percentile(&direct_latencies, q));
        println!(
            "gateway overhead {label}: {:+.2} ms ({:.2}x the direct path)",
            through - straight,
            through / straight.max(f64::EPSILON)
        );
    }
    println!("goal: the gateway adds at most 2 ms at p99 at 5,000 req/s");
    let refused = throttled.iter().filter(|a| a.status == 429).count();
    let passed = throttled.iter().filter(|a| a.status == 200).count();
    println!(
        "throttled tenant (quota {}/s, burst {}): {offered} offered in {quota_seconds} s, {passed} answered 200, {refused} refused 429 (the quota allows about {})",
        throttle.per_second,
        throttle.burst,
        throttle.burst as f64 + throttle.per_second as f64 * quota_seconds
    );
    bench.finish().await?;
    Ok(ExitCode::SUCCESS)
}

/// Waits until the gateway answers `/health`.
async fn wait_healthy(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the gateway did not answer /health within 30 s")
}

/// Posts every `(url, body)` at `rate` per second over at most `connections` keep-alive
/// connections, and returns each answer's status and latency. Open loop: each request is due
/// at its own time whatever came before, and its latency runs from then, so time spent waiting
/// for a connection counts (no coordinated omission). Unbounded, the client opened a
/// connection per request in flight: at 5,000/s, 12,000 sockets and their TIME_WAITs cost the
/// kernel more than the gateway cost itself.
async fn post_at_rate(
    http: &reqwest::Client,
    bodies: &[(String, String)],
    rate: f64,
    key: &str,
    connections: usize,
) -> Vec<HttpAnswer> {
    let auth = format!("Bearer {key}");
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(connections.max(1)));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0;
    while sent < bodies.len() {
        ticker.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate) as usize).min(bodies.len());
        while sent < due {
            let (url, body) = bodies[sent].clone();
            let request = http
                .post(url)
                .header("authorization", auth.clone())
                .header("content-type", "application/json")
                .body(body);
            let due_at = started + Duration::from_secs_f64(sent as f64 / rate);
            let slots = slots.clone();
            tasks.spawn(async move {
                // The semaphore is never closed, so acquiring cannot fail.
                let _slot = slots.acquire_owned().await;
                let status = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                HttpAnswer { status, latency_ms: due_at.elapsed().as_secs_f64() * 1000.0 }
            });
            sent += 1;
        }
    }
    let mut answers = Vec::with_capacity(bodies.len());
    while let Some(answer) = tasks.join_next().await {
        if let Ok(answer) = answer {
            answers.push(answer);
        }
    }
    answers
}
