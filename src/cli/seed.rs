//! `frontier seed --symbols N --days D [--seed S] [--benchmark SYMBOL]`: deterministic synthetic
//! closes into PostgreSQL, then one cache invalidation per changed symbol.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::bus::{SchemaCatalog, kafka};
use crate::health::redact;
use crate::market::seed::{SeedPlan, seed_prices, symbol_invalidation, symbols_table_invalidation};
use crate::market::{KafkaQueryEvents, PriceStore, QUERY_EVENTS_TOPIC, StoreOptions};
use crate::settings::Settings;

/// How long the query events of the run may take to be acknowledged before the command exits.
const QUERY_EVENT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// `frontier seed` options.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Symbols to generate: SYN0001, SYN0002, ...
    #[arg(long, default_value_t = 20)]
    pub symbols: usize,
    /// Closes per symbol, on consecutive weekdays from 2000-01-03.
    #[arg(long, default_value_t = 756)]
    pub days: usize,
    /// Generator seed: the same seed writes the same closes on any machine.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Names for the first symbols instead of SYN0001..., comma-separated (e.g. AAPL,MSFT).
    #[arg(long, value_delimiter = ',')]
    pub names: Vec<String>,
    /// Also store the market factor's series under this symbol (a benchmark for beta).
    #[arg(long)]
    pub benchmark: Option<String>,
    /// PostgreSQL schema for the tables (created if missing); default: the server's search path.
    #[arg(long)]
    pub schema: Option<String>,
    /// Topic for the cache invalidations.
    #[arg(long, default_value = "frontier.cache.invalidations")]
    pub invalidations_topic: String,
    /// Topic for the DB query events of the run.
    #[arg(long, default_value = QUERY_EVENTS_TOPIC)]
    pub query_events_topic: String,
}

/// Runs `frontier seed`.
pub async fn seed(settings: &Settings, args: SeedArgs) -> anyhow::Result<ExitCode> {
    let catalog = SchemaCatalog::load_dir(&settings.paths.schemas)
        .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?;
    let invalidation_schema = catalog.by_file("cache_invalidation.avsc")?;
    let query_events = Arc::new(KafkaQueryEvents::from_catalog(&settings.kafka, &catalog, &args.query_events_topic)?);
    // Check the topics before writing any row: a missing topic would otherwise surface only
    // after `kafka.delivery_timeout`, with the prices already changed and nobody told.
    let producer = kafka::producer(&settings.kafka).context("creating the Kafka producer")?;
    for topic in [&args.invalidations_topic, &args.query_events_topic] {
        require_topic(&producer, topic, settings.kafka.request_timeout)?;
    }
    let options = StoreOptions { schema: args.schema.clone(), application: "frontier seed".to_owned() };
    let store = PriceStore::connect(&settings.postgres, options, query_events.clone()).await?;

    let plan = SeedPlan {
        symbols: args.symbols,
        days: args.days,
        seed: args.seed,
        names: args.names.clone(),
        benchmark: args.benchmark.clone(),
    };
    let progress = progress_bar();
    let started = Instant::now();
    let report = seed_prices(&store, &plan, |done, total| {
        progress.set_length(total);
        progress.set_position(done);
    })
    .await?;
    progress.finish_and_clear();
    let elapsed = started.elapsed();

    let changed = report.changed_symbols();
    // Keyed by what they invalidate: one partition keeps one symbol's orders in order.
    let mut invalidations: Vec<(String, _)> = changed
        .iter()
        .map(|symbol| {
            let changed_rows = report.symbols.get(*symbol).map_or(0, |counts| counts.changed);
            ((*symbol).to_owned(), symbol_invalidation(symbol, changed_rows, args.seed))
        })
        .collect();
    if report.registered > 0 {
        invalidations.push(("table:symbols".to_owned(), symbols_table_invalidation(report.registered, args.seed)));
    }
    let mut deliveries = FuturesUnordered::new();
    for (key, invalidation) in &invalidations {
        let payload = SchemaCatalog::encode(&invalidation_schema, invalidation)?;
        let producer = &producer;
        let topic = args.invalidations_topic.as_str();
        deliveries.push(async move {
            let record = FutureRecord::<str, [u8]>::to(topic).key(key.as_str()).payload(&payload);
            (invalidation, producer.send(record, Timeout::Never).await.map_err(|(error, _)| error))
        });
    }
    let mut failed = 0usize;
    while let Some((invalidation, delivery)) = deliveries.next().await {
        if let Err(error) = delivery {
            failed += 1;
            eprintln!("invalidation of {} not delivered: {error}", invalidation.tags.join(", "));
        }
    }
    store.flush_events(QUERY_EVENT_FLUSH_TIMEOUT);

    let shown_schema = args.schema.as_deref().map(|schema| format!(" (schema {schema})")).unwrap_or_default();
    println!(
        "seeded {} symbol(s) x {} day(s) ({} to {}), seed {}: {} row(s) written, {} new or changed, into {}{} in {:.1}s",
        report.symbols.len(),
        report.days,
        report.first_day.map(|day| day.to_string()).unwrap_or_default(),
        report.last_day.map(|day| day.to_string()).unwrap_or_default(),
        args.seed,
        report.rows_written(),
        report.rows_changed(),
        redact(&settings.postgres.url),
        shown_schema,
        elapsed.as_secs_f64(),
    );
    println!(
        "published {} cache invalidation(s) to {} ({failed} failed); {} query event(s) to {} ({} failed)",
        invalidations.len() - failed,
        args.invalidations_topic,
        query_events.counts().delivered(),
        query_events.topic(),
        query_events.counts().failed(),
    );
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Fails naming `topic` when the cluster does not have it (or cannot be reached).
fn require_topic(producer: &FutureProducer, topic: &str, timeout: Duration) -> anyhow::Result<()> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("reading metadata of {topic} (is Kafka up? `ops/stack up`)"))?;
    let missing = metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic)
        .is_none_or(|found| found.error().is_some() || found.partitions().is_empty());
    if missing {
        bail!("topic {topic} does not exist (create it with `frontier topics apply`)");
    }
    Ok(())
}

/// A bar of rows written, drawn only when stderr is a terminal (never into logs or pipes).
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{spinner} seeding [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
