//! `frontier bench serve`: the serving path end to end. Seeds prices for many symbols, runs an
//! in-process serving instance on fresh topics and publishes requests through Kafka, timing
//! each from publish to its response: cold requests (every key new), then a Zipf-distributed
//! load over many symbols and portfolios with the cache warmer off and on (hit ratio per
//! layer), and finally lookup latency per layer straight on the tiered cache.

mod dump;
mod expiry;
mod gateway;
mod hostile;
mod load;
mod lookups;
mod noise;
mod phase;
mod stages;
mod stalls;
mod start;

pub(super) use load::Zipf;
use phase::{Answered, BUCKET_GOAL_MS, Phase, summary};

pub use gateway::GatewayBenchArgs;
pub(super) use gateway::bench_gateway;
pub use hostile::HostileBenchArgs;
pub(super) use hostile::bench_hostile;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use dashmap::DashMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::create_topics;
use crate::bus::json::{avro_to_json, json_to_avro};
use crate::bus::{KnownSchema, SchemaCatalog, kafka};
use crate::cache::{CacheSettings, KindLifetime, TieredCache};
use crate::cli::percentile;
use crate::market::seed::{SeedPlan, seed_prices};
use crate::market::{DiscardQueryEvents, PriceStore, StoreOptions};
use crate::settings::Settings;
use crate::workers::cache_warmer::{CacheWarmer, WarmerError, run_warmer, warmer_groups};
use crate::workers::serve::{ServeError, ServeWorker, ServingLoops};

/// `frontier bench serve` options.
#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    /// Symbols seeded (300 days each) into a fresh PostgreSQL schema.
    #[arg(long, default_value_t = 200)]
    pub symbols: usize,
    /// Distinct requests of the Zipf load (volatility windows, portfolios, options).
    #[arg(long, default_value_t = 2000)]
    pub keys: usize,
    /// Zipf exponent of the load.
    #[arg(long, default_value_t = 1.1)]
    pub zipf: f64,
    /// Requests per second of the Zipf load.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Seconds of Zipf load measured for the cached latency (after the warm-up).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Seconds of Zipf load before the cached latency is measured (filling the cache).
    #[arg(long, default_value_t = 15)]
    pub warmup: u64,
    /// Seconds of Zipf load per hit-ratio phase (warmer off, warmer on).
    #[arg(long, default_value_t = 60)]
    pub expiry_seconds: u64,
    /// Pairs of hit-ratio phases (warmer off, warmer on), in alternating order: whatever grows
    /// through a run (the broker's logs, Redis, the machine's other load) weighs on the later
    /// phase of a pair, so over several rounds it falls on both sides alike, and the summary
    /// gives the median difference per percentile.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10))]
    pub warmer_rounds: u64,
    /// Runs the first round's warmer-on phase before its warmer-off one (and so every round the
    /// other way round).
    #[arg(long)]
    pub warmer_first: bool,
    /// What the warmer counts answers from: the instances' per-key counts (`heat`, as
    /// shipped) or one `RequestCompleted` event per answer (`events`, as before `CacheHeat`).
    #[arg(long, value_enum, default_value_t = WarmerReads::Heat)]
    pub warmer_reads: WarmerReads,
    /// Cold requests (every key new).
    #[arg(long, default_value_t = 1000)]
    pub cold: usize,
    /// Requests per second of the cold phase.
    #[arg(long, default_value_t = 200.0)]
    pub cold_rate: f64,
    /// Entry ttl during the hit-ratio phases (grace 0), short so expiries happen within them.
    #[arg(long, default_value = "20s", value_parser = crate::cli::duration_arg)]
    pub ttl: Duration,
    /// Grace (stale-while-revalidate) during the hit-ratio phases; 0 makes every expiry a miss.
    #[arg(long, default_value = "0s", value_parser = crate::cli::duration_arg)]
    pub grace: Duration,
    /// Producer linger (ms) of the publisher, which stands for the users' request producers,
    /// and of every producer but the serving loop's; by default the configured `[kafka]
    /// linger` (5 ms as shipped).
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// Linger (ms) of the serving instances' answers; by default the configured
    /// `[workers.serve] answer_linger` (1 ms as shipped).
    #[arg(long)]
    pub answer_linger_ms: Option<u64>,
    /// Requests per second of the high-rate phase (the cached load on the warm instance).
    #[arg(long, default_value_t = 10_000.0)]
    pub high_rate: f64,
    /// Seconds of the high-rate phase; 0 leaves it out.
    #[arg(long, default_value_t = 20)]
    pub high_seconds: u64,
    /// Seconds of the start phase (a second instance joins, then the first restarts); 0
    /// leaves it out.
    #[arg(long, default_value_t = 40)]
    pub start_seconds: u64,
    /// Partitions of the start phase's requests topic, shared by its instances.
    #[arg(long, default_value_t = 4)]
    pub start_partitions: i32,
    /// Writes every answer (id, wall-clock publish time, latency, layer) and each stage's p99
    /// per second of every phase as TSV files into this folder, to line a slow bucket up with
    /// the broker's logs.
    #[arg(long)]
    pub dump: Option<std::path::PathBuf>,
}

/// What the bench's warmer counts answers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WarmerReads {
    /// The serving instances' `CacheHeat` records (one per instance and second).
    Heat,
    /// Their `RequestCompleted` events (one per answer).
    Events,
}

/// Everything the phases share: topics, publisher, the response collector.
pub(super) struct Bench {
    pub(super) settings: Settings,
    /// What warmers count answers from.
    warmer_reads: WarmerReads,
    /// Where requests are published: the requests topic of the phase whose instance started
    /// last.
    requests_topic: String,
    catalog: Arc<SchemaCatalog>,
    request_schema: Arc<KnownSchema>,
    producer: FutureProducer,
    sent_at: Arc<DashMap<String, Instant>>,
    answers: mpsc::UnboundedReceiver<Answered>,
    /// Answers that came in during a phase but belong to other requests (late ones, or
    /// requests published outside the phase), for [`Bench::collect_answers`].
    stashed: Vec<Answered>,
    store: PriceStore,
    shutdown: CancellationToken,
    /// The response collector, stopped by [`Bench::finish`].
    collector: tokio::task::JoinHandle<()>,
    /// The process's async-thread stalls since the bench began.
    stalls: stalls::StallProbe,
    /// The serving instances' stage timings since the bench began.
    stages: stages::StageProbe,
}

pub(super) async fn bench_serve(settings: &Settings, args: ServeBenchArgs) -> anyhow::Result<ExitCode> {
    if args.symbols < 5 || args.keys == 0 || args.rate <= 0.0 || args.cold_rate <= 0.0 || args.seconds == 0 {
        bail!("need at least 5 symbols, 1 key, positive rates and 1 second");
    }
    let expiry_plan = expiry::ExpiryPlan {
        rate: args.rate,
        seconds: args.expiry_seconds,
        ttl: args.ttl,
        grace: args.grace,
        rounds: args.warmer_rounds as usize,
        warmer_first: args.warmer_first,
    };
    let mut phases = vec!["cold".to_string(), "steady".to_string()];
    phases.extend(expiry_plan.topic_names());
    let lingers = Lingers {
        requests: args.linger_ms.map(Duration::from_millis),
        answers: args.answer_linger_ms.map(Duration::from_millis),
    };
    let (mut bench, symbols) = Bench::prepare(
        settings,
        "serve",
        args.symbols,
        lingers,
        &phases.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await?;
    bench.warmer_reads = args.warmer_reads;

    // Cold: every request a new key (its own tenant), at a rate the computations can follow.
    let cache_dir = ScratchDir::new("cold")?;
    let cold_cache = bench.cache_settings(cache_dir.path(), None);
    let instance = bench.start_instance(&cold_cache, "cold", "cold").await?;
    eprintln!("[bench] cold: {} requests at {}/s, every key new", args.cold, args.cold_rate);
    let cold = bench
        .run_phase("cold", args.cold, args.cold_rate, &mut |i| {
            let symbol = &symbols[i % symbols.len()];
            ("market.volatility".to_string(), format!("cold-{i}"), json!({"symbol": symbol, "window_days": 60}))
        })
        .await?;
    instance.stop().await?;

    // The Zipf key space: ranks shuffled over volatility windows, portfolios and options.
    let space = load::key_space(&symbols, args.keys);
    let zipf = load::Zipf::new(space.len(), args.zipf);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut zipf_request = move |_| {
        let (kind, params) = &space[zipf.sample(&mut rng)];
        (kind.clone(), "acme".to_string(), params.clone())
    };

    // Cached: entries outlive the run; a warm-up fills the cache, then the load is measured.
    let dir = ScratchDir::new("steady")?;
    let steady_cache = bench.cache_settings(dir.path(), Some((Duration::from_secs(3600), Duration::ZERO)));
    let instance = bench.start_instance(&steady_cache, "steady", "steady").await?;
    eprintln!(
        "[bench] cached: {} s warm-up then {} s measured, Zipf(s={}) over {} keys at {}/s",
        args.warmup, args.seconds, args.zipf, args.keys, args.rate
    );
    bench.run_phase("warmup", (args.rate * args.warmup as f64) as usize, args.rate, &mut zipf_request).await?;
    let steady =
        bench.run_phase("steady", (args.rate * args.seconds as f64) as usize, args.rate, &mut zipf_request).await?;
    let high = if args.high_seconds > 0 {
        eprintln!("[bench] high rate: {} s at {}/s on the same warm instance", args.high_seconds, args.high_rate);
        let count = (args.high_rate * args.high_seconds as f64) as usize;
        Some(bench.run_phase("high", count, args.high_rate, &mut zipf_request).await?)
    } else {
        None
    };
    instance.stop().await?;

    // Hit ratio with entries expiring (ttl, no grace), the warmer off and on.
    let results = expiry::run_phases(&mut bench, &expiry_plan, &mut zipf_request).await?;

    let started = if args.start_seconds > 0 {
        Some(
            start::start_phase(
                &mut bench,
                args.rate,
                args.warmup,
                args.start_seconds,
                args.start_partitions,
                &mut zipf_request,
            )
            .await?,
        )
    } else {
        None
    };

    if let Some(dir) = &args.dump {
        let mut phases = vec![("cold", &cold), ("steady", &steady)];
        phases.extend(high.as_ref().map(|high| ("high", high)));
        phases.extend(results.iter().map(|expiry| (expiry.label.as_str(), &expiry.phase)));
        phases.extend(started.as_ref().map(|started| ("start", started)));
        dump::write_phases(dir, &phases)?;
    }

    eprintln!("[bench] lookup latency per layer");
    let lookups = lookups::lookup_latencies(&bench).await?;

    println!(
        "frontier bench serve: {} symbols, {} keys, Zipf s={}, linger {} ms (requests) and {} ms (answers), hit-ratio phases ttl {:?} grace {:?}; publish -> response through Kafka (in-process serving instance)",
        args.symbols,
        args.keys,
        args.zipf,
        bench.settings.kafka.linger.as_millis(),
        bench.settings.workers.serve.answer_linger.as_millis(),
        args.ttl,
        args.grace
    );
    let mut missed_buckets = Vec::new();
    let cold_latencies = cold.latencies(|a| a.status == "ok");
    println!(
        "cold   (every key new)    {}  throughput {:.0}/s (offered {}/s)",
        summary(&cold_latencies),
        cold.answered.len() as f64 / cold.elapsed.as_secs_f64(),
        args.cold_rate
    );
    missed_buckets.push(("cold".to_string(), cold.print_timeline()));
    let cached = steady.latencies(Answered::is_cached);
    let throughput = steady.answered.len() as f64 / steady.elapsed.as_secs_f64();
    println!("cached (warm, no expiry)  {}  throughput {throughput:.0}/s (offered {}/s)", summary(&cached), args.rate);
    println!("misses (warm, no expiry)  {}", summary(&steady.latencies(|a| a.layer == "none")));
    missed_buckets.push(("cached".to_string(), steady.print_timeline()));
    if let Some(high) = &high {
        let throughput = high.answered.len() as f64 / high.elapsed.as_secs_f64();
        let heading = format!("high   (warm, {:.0}/s, throughput {throughput:.0}/s)", args.high_rate);
        missed_buckets.push(("high".to_string(), high.report(&heading)));
    }
    missed_buckets.extend(expiry::report(&results, &expiry_plan));
    if let Some(started) = &started {
        let heading = format!(
            "start  (2nd instance joins at {:.0} s, 1st restarts at {:.0} s)",
            args.start_seconds as f64 * start::JOIN_AT,
            args.start_seconds as f64 * start::RESTART_AT
        );
        missed_buckets.push(("start".to_string(), started.report(&heading)));
    }
    let missed: Vec<String> = missed_buckets
        .iter()
        .map(|(phase, missed)| format!("{phase} {} ({} cached) of {}", missed.all, missed.cached, missed.buckets))
        .collect();
    println!(
        "5 s buckets with p99 over {BUCKET_GOAL_MS} ms (goal: none), all requests (cached answers): {}",
        missed.join(", ")
    );
    for (layer, sorted) in &lookups {
        println!(
            "lookup {layer:7} p50 {:8.1} us  p99 {:8.1} us  (n={})",
            percentile(sorted, 50.0),
            percentile(sorted, 99.0),
            sorted.len()
        );
    }
    let p99_of = |name: &str| lookups.iter().find(|(layer, _)| *layer == name).map(|(_, s)| percentile(s, 99.0));
    if let (Some(layer), Some(bare)) = (p99_of("redis"), p99_of("GET")) {
        println!(
            "redis layer / bare GET (each key's GET right before its lookup): p99 {:.2}x (goal <= 2x)",
            layer / bare.max(f64::MIN_POSITIVE)
        );
    }
    bench.finish().await?;
    Ok(ExitCode::SUCCESS)
}

/// A disk-layer folder under the system's temporary directory, removed on drop.
pub(super) struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    pub(super) fn new(label: &str) -> anyhow::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!(
            "frontier-bench-serve-{}-{}",
            label.replace(' ', "-"),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    pub(super) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts serving instances of one phase: what a process needs, with the phase's topics.
#[derive(Clone)]
struct Launcher {
    settings: Settings,
    catalog: Arc<SchemaCatalog>,
    store: PriceStore,
    shutdown: CancellationToken,
}

impl Launcher {
    /// An instance in consumer group `group` with a tiered cache of its own on `cache`'s Redis
    /// prefix and disk folder.
    async fn start(&self, cache: &CacheSettings, group: &str) -> anyhow::Result<RunningInstance> {
        let mut settings = self.settings.clone();
        settings.workers.serve.group_id = Some(group.to_string());
        let cache = TieredCache::connect(cache, Some(&settings.redis.url)).await?;
        let worker = Arc::new(ServeWorker::new(
            &settings.workers.serve,
            &settings.cache,
            cache,
            self.store.clone(),
            &self.catalog,
        )?);
        let loops = ServingLoops::new(&settings.shared(), &settings.workers.serve, worker, self.catalog.clone())?;
        let token = self.shutdown.child_token();
        let task = tokio::spawn(loops.run(token.clone()));
        Ok(RunningInstance { token, task })
    }
}

/// A running serving instance of the bench.
struct RunningInstance {
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<crate::bus::LoopReport, ServeError>>,
}

impl RunningInstance {
    async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        self.task.await.context("serving task")??;
        Ok(())
    }
}

/// The producer lingers a bench replaces; `None` keeps the configured one.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Lingers {
    /// `[kafka] linger`: the publisher's, and every producer's but the serving loops'.
    pub(super) requests: Option<Duration>,
    /// `[workers.serve] answer_linger`: the serving loops' producers.
    pub(super) answers: Option<Duration>,
}

impl Lingers {
    /// The same linger for every producer.
    pub(super) fn all(linger: Duration) -> Lingers {
        Lingers { requests: Some(linger), answers: Some(linger) }
    }
}

impl Bench {
    /// Fresh topics (one requests and one metrics topic per phase), a fresh price schema seeded with `symbols`
    /// symbols (300 days each), and the response collector, already reading; `lingers` replace
    /// the configured producer lingers. Returns the bench and the symbols.
    pub(super) async fn prepare(
        settings: &Settings,
        name: &str,
        symbols: usize,
        lingers: Lingers,
        phases: &[&str],
    ) -> anyhow::Result<(Bench, Vec<String>)> {
        let run = crate::clock::now_millis();
        let mut settings = settings.clone();
        if let Some(linger) = lingers.requests {
            settings.kafka.linger = linger;
        }
        if let Some(linger) = lingers.answers {
            settings.workers.serve.answer_linger = linger;
        }
        let serve = &mut settings.workers.serve;
        serve.input_topic = format!("bench.{name}.{run}.requests");
        serve.responses_topic = format!("bench.{name}.{run}.responses");
        serve.metrics_topic = format!("bench.{name}.{run}.metrics");
        serve.heat_topic = format!("bench.{name}.{run}.heat");
        settings.cache.invalidations_topic = format!("bench.{name}.{run}.invalidations");
        settings.prices.query_events_topic = None;
        settings.prices.schema = Some(format!("bench_{name}_{run}"));
        settings.workers.cache_warmer.input_topic = settings.workers.serve.heat_topic.clone();
        settings.bus.dlq_topic = format!("bench.{name}.{run}.dlq");
        let serve = &settings.workers.serve;
        let mut topics: Vec<String> =
            [&serve.input_topic, &serve.responses_topic, &settings.cache.invalidations_topic, &settings.bus.dlq_topic]
                .map(|t| t.to_string())
                .to_vec();
        // Each phase's instance reads its own requests topic: a new group starts at the earliest
        // offset, and on one shared topic it would first replay every earlier phase's requests
        // (191,000 of them before the warmer-on phase), which once read as a 30-second stall.
        topics.extend(phases.iter().map(|phase| format!("{}.{phase}", serve.metrics_topic)));
        topics.extend(phases.iter().map(|phase| format!("{}.{phase}", serve.heat_topic)));
        topics.extend(phases.iter().map(|phase| format!("{}.{phase}", serve.input_topic)));
        create_topics(&settings, &topics, 1).await?;

        let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
        let options =
            StoreOptions { schema: settings.prices.schema.clone(), application: format!("frontier bench {name}") };
        let store = PriceStore::connect(&settings.postgres, options, Arc::new(DiscardQueryEvents)).await?;
        eprintln!(
            "[bench] seeding {symbols} symbols x 300 days into schema {}",
            settings.prices.schema.as_deref().unwrap_or_default()
        );
        let plan = SeedPlan { symbols, days: 300, seed: 42, names: Vec::new(), benchmark: None };
        seed_prices(&store, &plan, |_, _| {}).await.context("seeding")?;
        let names: Vec<String> = (1..=symbols).map(|i| format!("SYN{i:04}")).collect();

        let shutdown = CancellationToken::new();
        crate::shutdown::cancel_on_signal(shutdown.clone());
        let sent_at: Arc<DashMap<String, Instant>> = Arc::default();
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let responses = settings.workers.serve.responses_topic.clone();
        let fetching = Arc::new(tokio::sync::Notify::new());
        let collector = spawn_collector(
            &settings,
            &responses,
            catalog.clone(),
            sent_at.clone(),
            answers_tx,
            fetching.clone(),
            shutdown.clone(),
        )?;
        let producer = kafka::producer(&settings.kafka)?;
        wait_until_collecting(&producer, &responses, &fetching).await?;
        let bench = Bench {
            requests_topic: settings.workers.serve.input_topic.clone(),
            request_schema: catalog.schema_of::<crate::records::AnalysisRequest>()?,
            producer,
            settings,
            catalog,
            sent_at,
            answers,
            stashed: Vec::new(),
            store,
            stalls: stalls::StallProbe::start(shutdown.clone()),
            stages: stages::StageProbe::install(),
            warmer_reads: WarmerReads::Heat,
            collector,
            shutdown,
        };
        Ok((bench, names))
    }

    /// Ends the run: stops the collector (its consumer gone before the topics are deleted,
    /// which it would otherwise report as errors) and drops the run's price schema.
    pub(super) async fn finish(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.collector.await.context("response collector")?;
        let schema = self.settings.prices.schema.clone().unwrap_or_default();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// The configured cache with a fresh Redis prefix and `dir` for the disk layer; with a
    /// `(ttl, grace)`, every kind lives that long.
    pub(super) fn cache_settings(
        &self,
        dir: &std::path::Path,
        lifetime: Option<(Duration, Duration)>,
    ) -> CacheSettings {
        let mut cache = self.settings.cache.clone();
        cache.redis_key_prefix = format!("bench:serve:{}", uuid::Uuid::new_v4().simple());
        cache.disk_dir = dir.to_path_buf();
        if let Some((ttl, grace)) = lifetime {
            cache.default_ttl = ttl;
            cache.default_grace = grace;
            cache.kinds = crate::market::requests::KNOWN_KINDS
                .iter()
                .map(|kind| (kind.to_string(), KindLifetime { ttl: Some(ttl), grace: Some(grace) }))
                .collect();
        }
        cache
    }

    /// A serving instance reading the requests topic of `phase` (where [`Bench::publish`] sends
    /// from now on) and writing its events to the metrics topic of `phase`, in a group of its own.
    async fn start_instance(
        &mut self,
        cache: &CacheSettings,
        label: &str,
        phase: &str,
    ) -> anyhow::Result<RunningInstance> {
        let group = format!("bench.serve.{}.{}", label.replace(' ', "-"), uuid::Uuid::new_v4().simple());
        let instance = self.launcher(phase).start(cache, &group).await?;
        self.wait_until_answering(label).await?;
        Ok(instance)
    }

    /// Sends a request the instance rejects without computing (`window_days` 0) and waits for
    /// its answer, so a phase measures serving, not the instance's start: requests published
    /// before the instance has joined, found its offsets and started fetching wait in Kafka for
    /// it (50-550 ms), which the start phase measures on its own, under load.
    async fn wait_until_answering(&mut self, label: &str) -> anyhow::Result<()> {
        let id = format!("ready-probe-{}-{}", label.replace(' ', "-"), uuid::Uuid::new_v4().simple());
        self.publish(&id, "market.volatility", "bench", json!({"symbol": "SYN0001", "window_days": 0}))?;
        if self.collect_answers(&id, 1, Duration::from_secs(30)).await.is_empty() {
            bail!("the {label} instance did not answer a request within 30 s of its start");
        }
        Ok(())
    }

    /// Starts instances on the topics of `phase`, and publishes there from now on.
    fn launcher(&mut self, phase: &str) -> Launcher {
        self.requests_topic = format!("{}.{phase}", self.settings.workers.serve.input_topic);
        let mut settings = self.settings.clone();
        settings.workers.serve.input_topic = self.requests_topic.clone();
        settings.workers.serve.metrics_topic = self.metrics_topic(phase);
        settings.workers.serve.heat_topic = self.heat_topic(phase);
        Launcher { settings, catalog: self.catalog.clone(), store: self.store.clone(), shutdown: self.shutdown.clone() }
    }

    /// A warmer on the heat topic of `phase`, sharing the instance's Redis prefix, on a
    /// runtime and threads of its own, as `frontier run cache-warmer` is a process of its own.
    /// Its task ends with how many keys it refreshed.
    async fn start_warmer(
        &self,
        cache: &CacheSettings,
        phase: &str,
    ) -> anyhow::Result<(CancellationToken, WarmerTask)> {
        let mut settings = self.settings.clone();
        settings.workers.cache_warmer.input_topic = match self.warmer_reads {
            WarmerReads::Heat => self.heat_topic(phase),
            WarmerReads::Events => self.metrics_topic(phase),
        };
        settings.workers.cache_warmer.group_id = Some(format!("bench.warmer.{}", uuid::Uuid::new_v4().simple()));
        let mut cache = cache.clone();
        cache.disk_bytes = 0;
        cache.memory_bytes = settings.workers.cache_warmer.memory_bytes;
        let token = self.shutdown.child_token();
        let catalog = self.catalog.clone();
        let instance = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let groups = warmer_groups(&settings.shared(), &settings.workers.cache_warmer, &instance);
        let (started_tx, started) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        let thread_token = token.clone();
        // As `frontier run cache-warmer` runs: every thread of the warmer at its `refresh_nice`
        // (its librdkafka threads inherit it from the runtime's), the instance's left as they are.
        let nice = settings.workers.cache_warmer.refresh_nice;
        std::thread::Builder::new().name("bench-warmer".into()).spawn(move || {
            crate::process::set_thread_nice(nice);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .thread_name("warmer-rt")
                .on_thread_start(move || crate::process::set_thread_nice(nice))
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started_tx.send(Err(anyhow::Error::new(error).context("the warmer's runtime")));
                    return;
                }
            };
            runtime.block_on(async move {
                let warmer = match connect_warmer(&settings, &cache, thread_token.clone()).await {
                    Ok(warmer) => warmer,
                    Err(error) => {
                        let _ = started_tx.send(Err(error));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(()));
                let shared = settings.shared();
                let warmer_settings = &settings.workers.cache_warmer;
                let report =
                    run_warmer(&shared, warmer_settings, warmer.clone(), catalog, &instance, thread_token).await;
                // The warmer (its pools and connections) is dropped here, on its own runtime.
                let _ = ended_tx.send(report.map(|_| warmer.refreshed()));
            });
        })?;
        started.await.context("the warmer's thread ended before starting it")??;
        self.wait_until_assigned(&groups).await.context("starting the warmer")?;
        Ok((token, ended))
    }

    /// Waits until each of `groups` is `Stable` with a member, so a warmer-on phase measures
    /// serving beside a running warmer, not the warmer's start: its clients connecting and its
    /// two groups joining while the phase's first requests came in kept the first 0.7 s 2-5x
    /// slower than the same empty cache without it (per 100 ms, mean 49, 29, 18, 27, 25, 25,
    /// 15 ms against 9-11; 2026-12-06, `--dump`). Waiting left the first 0.2 s (47, 17 ms).
    async fn wait_until_assigned(&self, groups: &[String]) -> anyhow::Result<()> {
        let admin = Arc::new(kafka::admin(&self.settings.kafka)?);
        let deadline = Instant::now() + Duration::from_secs(30);
        for group in groups {
            loop {
                let (admin, name) = (admin.clone(), group.clone());
                let described = tokio::task::spawn_blocking(move || {
                    crate::bus::groups::describe_group(admin.inner(), &name, Duration::from_secs(5))
                })
                .await??;
                if described.state == "Stable" && described.members > 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "group {group} is {} with {} member(s) 30 s after its start",
                        described.state,
                        described.members
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The metrics topic of one phase.
    fn metrics_topic(&self, phase: &str) -> String {
        format!("{}.{phase}", self.settings.workers.serve.metrics_topic)
    }

    /// The heat topic of one phase (the warmer counts only its own phase's answers).
    fn heat_topic(&self, phase: &str) -> String {
        format!("{}.{phase}", self.settings.workers.serve.heat_topic)
    }

    /// Publishes `count` requests at `rate` per second (`request_of(i)` giving kind, tenant and
    /// params), then waits for their answers (at most 30 s after the last one was sent).
    async fn run_phase(
        &mut self,
        label: &str,
        count: usize,
        rate: f64,
        request_of: &mut impl FnMut(usize) -> (String, String, Value),
    ) -> anyhow::Result<Phase> {
        while let Ok(answered) = self.answers.try_recv() {
            self.stashed.push(answered);
        }
        let started = Instant::now();
        let mut sent = 0;
        let mut ticker = tokio::time::interval(Duration::from_millis(1));
        while sent < count {
            tokio::select! {
                () = self.shutdown.cancelled() => bail!("interrupted"),
                _ = ticker.tick() => {}
            }
            let due = ((started.elapsed().as_secs_f64() * rate) as usize).min(count);
            while sent < due {
                let (kind, tenant, params) = request_of(sent);
                self.publish(&format!("{label}-{sent}"), &kind, &tenant, params)?;
                sent += 1;
            }
        }
        let mut phase = Phase {
            sent,
            started: Some(started),
            scheduled: Duration::try_from_secs_f64(count as f64 / rate).unwrap_or_default(),
            stalls: self.stalls.clone(),
            stages: self.stages.clone(),
            ..Phase::default()
        };
        let patience = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(patience);
        while phase.answered.len() < sent {
            tokio::select! {
                () = self.shutdown.cancelled() => bail!("interrupted"),
                () = &mut patience => {
                    eprintln!("[bench] {label}: {} of {sent} answered within 30 s of the last publish", phase.answered.len());
                    break;
                }
                Some(answered) = self.answers.recv() => {
                    if answered.id.starts_with(label) {
                        phase.answered.push(answered);
                    } else {
                        self.stashed.push(answered);
                    }
                }
            }
        }
        phase.elapsed = started.elapsed();
        Ok(phase)
    }

    /// The answers to requests whose id starts with `prefix` (published outside a phase), up to
    /// `count`, waiting at most `patience`.
    pub(super) async fn collect_answers(&mut self, prefix: &str, count: usize, patience: Duration) -> Vec<Answered> {
        let (mut found, others): (Vec<Answered>, Vec<Answered>) =
            std::mem::take(&mut self.stashed).into_iter().partition(|a| a.id.starts_with(prefix));
        self.stashed = others;
        let deadline = tokio::time::sleep(patience);
        tokio::pin!(deadline);
        while found.len() < count {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                () = &mut deadline => break,
                Some(answered) = self.answers.recv() => {
                    if answered.id.starts_with(prefix) {
                        found.push(answered);
                    } else {
                        self.stashed.push(answered);
                    }
                }
            }
        }
        found
    }

    fn publish(&self, id: &str, kind: &str, tenant: &str, params: Value) -> anyhow::Result<()> {
        self.publish_with_deadline(id, kind, tenant, params, None)
    }

    /// Publishes one request whose answer is useless after `deadline` (ms since the epoch).
    pub(super) fn publish_with_deadline(
        &self,
        id: &str,
        kind: &str,
        tenant: &str,
        params: Value,
        deadline: Option<i64>,
    ) -> anyhow::Result<()> {
        let doc = json!({
            "id": id, "tenant": tenant, "user": "bench", "kind": kind, "params": params, "priority": "normal",
            "issued_at": crate::clock::now_millis(), "deadline": deadline, "reply_to": null, "entitlements": []
        });
        let payload =
            SchemaCatalog::encode_value(&self.request_schema, json_to_avro(&doc, &self.request_schema.schema)?)?;
        self.sent_at.insert(id.to_string(), Instant::now());
        let record = FutureRecord::to(&self.requests_topic).key(id).payload(&payload);
        // The delivery future is dropped: librdkafka still delivers, and the answer is the proof.
        self.producer.send_result(record).map_err(|(error, _)| error).context("publishing a request")?;
        Ok(())
    }
}

/// Ends with the keys a bench warmer refreshed, once it stopped.
type WarmerTask = tokio::sync::oneshot::Receiver<Result<u64, WarmerError>>;

/// A warmer for the bench, as `frontier run cache-warmer` builds one: its cache and its own
/// connection pool.
async fn connect_warmer(
    settings: &Settings,
    cache: &CacheSettings,
    token: CancellationToken,
) -> anyhow::Result<Arc<CacheWarmer>> {
    let cache = TieredCache::connect(cache, Some(&settings.redis.url)).await?;
    let options =
        StoreOptions { schema: settings.prices.schema.clone(), application: "frontier bench serve warmer".into() };
    let store = PriceStore::connect(&settings.postgres, options, Arc::new(DiscardQueryEvents)).await?;
    Ok(Arc::new(CacheWarmer::new(&settings.workers.cache_warmer, cache, store, settings.cache.recipe_ttl, token)))
}

/// Publishes a record no collector decodes to the responses topic until the collector has read
/// one. Why: the collector's first offset query can go out before its metadata knows the new
/// topic, and librdkafka retries it only after a backoff; until then the answers of the first
/// phase pile up unread (a 300-400 ms cold bucket that was the bench, not the instance).
async fn wait_until_collecting(
    producer: &FutureProducer,
    topic: &str,
    fetching: &tokio::sync::Notify,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let read = fetching.notified();
    tokio::pin!(read);
    while Instant::now() < deadline {
        producer
            .send(FutureRecord::<(), _>::to(topic).payload("bench: is the collector reading?"), Duration::from_secs(5))
            .await
            .map_err(|(error, _)| error)
            .context("publishing the collector's probe")?;
        if tokio::time::timeout(Duration::from_millis(500), &mut read).await.is_ok() {
            return Ok(());
        }
    }
    bail!("the response collector read nothing from {topic} for 30 s")
}

/// Reads the responses topic and sends each answer with its latency from publish; wakes
/// `fetching` at its first record, whatever it holds.
fn spawn_collector(
    settings: &Settings,
    topic: &str,
    catalog: Arc<SchemaCatalog>,
    sent_at: Arc<DashMap<String, Instant>>,
    answers: mpsc::UnboundedSender<Answered>,
    fetching: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let consumer: StreamConsumer = kafka::base_config(&settings.kafka)
        .set("group.id", format!("bench.serve.reader.{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let collector = tokio::spawn(async move {
        let mut reading = false;
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return,
                message = consumer.recv() => message,
            };
            let received = Instant::now();
            let Ok(message) = message else { continue };
            if !reading {
                reading = true;
                fetching.notify_one();
            }
            let Some(decoded) = message.payload().and_then(|bytes| catalog.decode(bytes).ok()) else { continue };
            let value = avro_to_json(&decoded.value);
            let id = value["request_id"].as_str().unwrap_or_default().to_string();
            let Some((_, sent)) = sent_at.remove(&id) else { continue };
            let answered = Answered {
                layer: value["cache_layer"].as_str().unwrap_or("none").to_string(),
                status: value["status"].as_str().unwrap_or("error").to_string(),
                latency_ms: received.duration_since(sent).as_secs_f64() * 1000.0,
                ready_ms: value["latency_ms"].as_f64().unwrap_or(f64::NAN),
                sent,
                id,
            };
            if answers.send(answered).is_err() {
                return;
            }
        }
    });
    Ok(collector)
}
