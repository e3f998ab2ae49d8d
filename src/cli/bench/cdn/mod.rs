//! `frontier bench cdn`: deploys of a generated site of a few hundred files, each editing a
//! share of them, purged at the stack's Varnish by the real purger while a steady load of page
//! fetches runs through the edge. Soft and hard purges side by side, and the optimized site
//! through the edge beside the unoptimized one straight from a plain origin.
//!
//! Needs `ops/stack up` (Kafka, Redis, Varnish) and 127.0.0.1:8088 free: the bench runs its own
//! origin there, where `ops/varnish/frontier.vcl` sends misses.

mod load;
mod site;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use dashmap::DashMap;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;

use self::load::{Load, PageLoad, Sample};
use self::site::Shape;
use super::{create_topics, median};
use crate::bus::{SchemaCatalog, kafka};
use crate::cdn::origin::{self, Origin};
use crate::cdn::publish::publish_dir;
use crate::cdn::{AssetStore, BuildOptions, BuildReport, Manifest, StoreSettings, build_site};
use crate::clock;
use crate::records::{AssetChange, PurgeResult};
use crate::settings::Settings;
use crate::workers::cdn_purger;

/// `frontier bench cdn` options.
#[derive(Debug, Args)]
pub struct CdnBenchArgs {
    /// HTML pages of the site (it has about 6.5 files per page in all).
    #[arg(long, default_value_t = 40)]
    pub pages: usize,
    /// Share of the site's files each deploy edits.
    #[arg(long, default_value_t = 0.10)]
    pub change: f64,
    /// Page fetches per second through the edge, all along.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Deploys per purge mode.
    #[arg(long, default_value_t = 5)]
    pub deploys: u32,
    /// Load watched after each deploy's purge is acknowledged.
    #[arg(long, default_value = "3s", value_parser = crate::cli::duration_arg)]
    pub settle: Duration,
    /// Purge modes to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Mode::Soft, Mode::Hard])]
    pub modes: Vec<Mode>,
    /// Page loads (the page and everything it references) timed per side.
    #[arg(long, default_value_t = 40)]
    pub page_loads: usize,
}

/// How the purger purges the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// xkey softpurge: stale kept for one background fetch (the shipped default).
    Soft,
    /// xkey purge: evicted; concurrent misses coalesce onto one fetch.
    Hard,
}

/// One published build.
struct Deployed {
    manifest: Manifest,
    report: BuildReport,
    change: AssetChange,
}

/// What one mode measured.
struct ModeFigures {
    mode: Mode,
    fresh_ms: Vec<f64>,
    ack_ms: Vec<f64>,
    origin_fetches: u64,
    objects: usize,
    most_per_object: u64,
    stale_after_ack: usize,
    requests_after_ack: usize,
    load_sent: usize,
    load_p99_ms: f64,
    changed_pages: usize,
}

pub async fn bench_cdn(settings: &Settings, args: CdnBenchArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.change) || args.pages == 0 || args.deploys == 0 {
        bail!("--change must be within 0..1, --pages and --deploys at least 1");
    }
    tokio::net::TcpStream::connect("127.0.0.1:6081")
        .await
        .context("Varnish is not listening on 127.0.0.1:6081: start the stack with `ops/stack up`")?;
    let shape =
        Shape { pages: args.pages, sections: (args.pages / 2).max(1), libraries: 10, icons: args.pages * 4 - 10 };
    println!(
        "site: {} files ({} pages), {:.0}% edited per deploy, {} deploys per mode, {} page fetches/s through Varnish",
        shape.files(),
        shape.pages,
        args.change * 100.0,
        args.deploys,
        args.rate
    );
    let mut figures = Vec::new();
    let mut last = None;
    for (index, mode) in args.modes.iter().enumerate() {
        // The page loads run on the last mode's site, while its origin is still up.
        let loads = index + 1 == args.modes.len();
        let (mode_figures, outcome) = run_mode(settings, &args, shape, *mode, loads).await?;
        figures.push(mode_figures);
        last = outcome;
    }
    let Some((report, ours, baseline)) = last else { bail!("--modes is empty") };
    print_report(&figures, &report, &ours, &baseline);
    Ok(ExitCode::SUCCESS)
}

/// One mode's deploys; also what the last build was, for the page-load comparison.
async fn run_mode(
    settings: &Settings,
    args: &CdnBenchArgs,
    shape: Shape,
    mode: Mode,
    page_loads: bool,
) -> anyhow::Result<(ModeFigures, Option<(BuildReport, Vec<PageLoad>, Vec<PageLoad>)>)> {
    let run = format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let work = Scratch::create(&run)?;
    let (changes, results) = (format!("bench.cdn.{run}.changes"), format!("bench.cdn.{run}.purges"));
    create_topics(settings, &[changes.clone(), results.clone(), format!("bench.cdn.{run}.alerts")], 1).await?;

    let mut settings = settings.clone();
    settings.assets.store = StoreSettings::file(work.path().join("store"));
    settings.assets.public_url = "http://127.0.0.1:6081".to_owned();
    let purger = &mut settings.workers.cdn_purger;
    purger.input_topic = changes.clone();
    purger.results_topic = results.clone();
    purger.alerts_topic = format!("bench.cdn.{run}.alerts");
    purger.group_id = Some(format!("bench.cdn.{run}"));
    for target in &mut purger.targets {
        target.soft = mode == Mode::Soft;
    }
    let store = AssetStore::open(&settings.assets.store)?;

    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let counts: Arc<DashMap<String, u64>> = Arc::new(DashMap::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8088")
        .await
        .context("127.0.0.1:8088 (the edge's origin) is taken: stop `frontier run asset-origin` for the bench")?;
    let app = origin::router(Origin::new(store.clone(), &settings.assets))
        .layer(axum::middleware::from_fn_with_state(counts.clone(), load::count_origin_fetch));
    let origin_shutdown = shutdown.clone();
    tokio::spawn(
        async move { axum::serve(listener, app).with_graceful_shutdown(origin_shutdown.cancelled_owned()).await },
    );
    load::wait_for_backend().await?;
    let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
    let (shared, purger_settings, token) = (settings.shared(), settings.workers.cdn_purger.clone(), shutdown.clone());
    let purger_catalog = catalog.clone();
    tokio::spawn(async move {
        if let Err(error) = cdn_purger::run(&shared, &purger_settings, purger_catalog, token).await {
            eprintln!("the purger stopped: {error}");
        }
    });
    let watcher = ResultWatcher::new(&settings, &results)?;
    let producer = kafka::producer(&settings.kafka)?;
    let send = |change: AssetChange| {
        let (catalog, producer, topic) = (catalog.clone(), producer.clone(), changes.clone());
        async move {
            let payload = catalog.encode_record(&change)?;
            producer
                .send(FutureRecord::to(&topic).key(change.id.as_bytes()).payload(&payload), Timeout::Never)
                .await
                .map_err(|(error, _)| error)?;
            anyhow::Ok(())
        }
    };

    // Deploy 0 fills the store and the edge; the load starts on it.
    let src = work.path().join("src");
    let mut edits: Vec<(String, u32)> = Vec::new();
    let mut deployed =
        build_and_publish(&src, &work.path().join("out-0"), &run, shape, &edits, &store, &settings).await?;
    send(deployed.change.clone()).await?;
    watcher.acknowledged(&deployed.change.id, Duration::from_secs(60)).await?;
    let pages: Vec<String> = (0..shape.pages).map(|p| format!("{run}/page-{p}.html")).collect();
    let load = Load::start(pages.clone(), args.rate);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut figures = ModeFigures {
        mode,
        fresh_ms: Vec::new(),
        ack_ms: Vec::new(),
        origin_fetches: 0,
        objects: 0,
        most_per_object: 0,
        stale_after_ack: 0,
        requests_after_ack: 0,
        load_sent: 0,
        load_p99_ms: 0.0,
        changed_pages: 0,
    };
    for deploy in 1..=args.deploys {
        edits.extend(site::edited(shape, deploy, args.change).into_iter().map(|file| (file, deploy)));
        let out = work.path().join(format!("out-{deploy}"));
        let next = build_and_publish(&src, &out, &run, shape, &edits, &store, &settings).await?;
        let previous = std::mem::replace(&mut deployed, next);
        let manifest = &deployed.manifest;
        let changed: BTreeMap<String, String> = pages
            .iter()
            .filter_map(|page| {
                let (before, after) = (previous.manifest.entries.get(page)?, manifest.entries.get(page)?);
                (before.hash != after.hash).then(|| (page.clone(), origin::etag(&after.hash, None)))
            })
            .collect();
        let before_counts = snapshot(&counts);
        let started = Instant::now();
        let probes = load::probe_until_fresh(&changed, started);
        send(deployed.change.clone()).await?;
        let acknowledged = watcher.acknowledged(&deployed.change.id, Duration::from_secs(60)).await?;
        figures.ack_ms.push(acknowledged.duration_since(started).as_secs_f64() * 1000.0);
        figures.fresh_ms.extend(probes.await);
        tokio::time::sleep(args.settle).await;

        let after_counts = snapshot(&counts);
        let mut objects = BTreeSet::new();
        for (key, after) in &after_counts {
            let page = key.split('|').next().unwrap_or_default().trim_start_matches('/');
            if changed.contains_key(page) {
                let fetched = after - before_counts.get(key).copied().unwrap_or(0);
                if fetched > 0 {
                    objects.insert(key.clone());
                    figures.origin_fetches += fetched;
                    figures.most_per_object = figures.most_per_object.max(fetched);
                }
            }
        }
        figures.objects += objects.len();
        figures.changed_pages += changed.len();
        let samples: Vec<Sample> = load.samples_since(acknowledged);
        for sample in samples.iter().filter(|sample| changed.contains_key(&sample.page)) {
            figures.requests_after_ack += 1;
            if !sample.etag.starts_with(changed[&sample.page].trim_end_matches('"')) {
                figures.stale_after_ack += 1;
            }
        }
    }
    let (sent, p99) = load.stop().await;
    figures.load_sent = sent;
    figures.load_p99_ms = p99;
    let loads = if page_loads {
        let (ours, baseline) = load::page_loads(&src, &deployed.manifest, &pages, args.page_loads).await?;
        Some((deployed.report, ours, baseline))
    } else {
        None
    };
    shutdown.cancel();
    Ok((figures, loads))
}

/// Writes the site with `edits`, builds it into `out` and publishes it.
async fn build_and_publish(
    src: &Path,
    out: &Path,
    run: &str,
    shape: Shape,
    edits: &[(String, u32)],
    store: &AssetStore,
    settings: &Settings,
) -> anyhow::Result<Deployed> {
    site::write(&src.join(run), shape, edits)?;
    let (src_dir, out_dir) = (src.to_owned(), out.to_owned());
    let report =
        tokio::task::spawn_blocking(move || build_site(&src_dir, &out_dir, &BuildOptions { clean: true })).await??;
    let published =
        publish_dir(store, out, &settings.assets.public_url, settings.assets.grace, clock::now_millis()).await?;
    let manifest = store.manifest(&published.manifest_id).await?;
    let change = published.change.context("a deploy that changes nothing")?;
    Ok(Deployed { manifest, report, change })
}

/// A scratch folder for one mode's site, builds and store, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn create(run: &str) -> anyhow::Result<Scratch> {
        let path = std::env::temp_dir().join(format!("frontier-bench-cdn-{run}"));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn snapshot(counts: &DashMap<String, u64>) -> BTreeMap<String, u64> {
    counts.iter().map(|entry| (entry.key().clone(), *entry.value())).collect()
}

/// Reads the results topic, to time each change's acknowledgement.
struct ResultWatcher {
    consumer: StreamConsumer,
    catalog: SchemaCatalog,
}

impl ResultWatcher {
    fn new(settings: &Settings, topic: &str) -> anyhow::Result<ResultWatcher> {
        let consumer: StreamConsumer = kafka::base_config(&settings.kafka)
            .set("group.id", format!("bench.cdn.watch.{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "5")
            .create()?;
        consumer.subscribe(&[topic])?;
        Ok(ResultWatcher { consumer, catalog: SchemaCatalog::load_dir(&settings.paths.schemas)? })
    }

    /// When the first result of `change` arrived.
    async fn acknowledged(&self, change: &str, patience: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + patience;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(wait, self.consumer.recv())
                .await
                .with_context(|| format!("no purge result for change {change} within {patience:?}"))??;
            let Some(payload) = message.payload() else { continue };
            let result: PurgeResult =
                self.catalog.identify(payload)?.deserialize(payload).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if result.change_id == change {
                return Ok(Instant::now());
            }
        }
    }
}

/// The nearest-rank quantile `q` (0 to 1) of unsorted `values`, as every benchmark reports it.
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    crate::cli::percentile(&sorted, q * 100.0)
}

fn print_report(figures: &[ModeFigures], build: &BuildReport, ours: &[PageLoad], baseline: &[PageLoad]) {
    println!();
    println!(
        "purge, per mode (change event published -> new page served at the edge; a prober polls each changed page every 10 ms):"
    );
    println!(
        "{:<6} {:>8} {:>9} {:>9} {:>9} {:>14} {:>10} {:>12} {:>10}",
        "mode",
        "changed",
        "fresh p50",
        "fresh p99",
        "ack p50",
        "origin/object",
        "max/object",
        "stale after",
        "load p99"
    );
    for f in figures {
        let per_object = if f.objects == 0 { f64::NAN } else { f.origin_fetches as f64 / f.objects as f64 };
        println!(
            "{:<6} {:>8} {:>7.0}ms {:>7.0}ms {:>7.0}ms {:>14.2} {:>10} {:>5}/{:<6} {:>8.1}ms",
            format!("{:?}", f.mode).to_lowercase(),
            f.changed_pages,
            percentile(&f.fresh_ms, 0.5),
            percentile(&f.fresh_ms, 0.99),
            percentile(&f.ack_ms, 0.5),
            per_object,
            f.most_per_object,
            f.stale_after_ack,
            f.requests_after_ack,
            f.load_p99_ms
        );
    }
    let sent: usize = figures.iter().map(|f| f.load_sent).sum();
    println!(
        "({sent} page fetches in all; 'stale after' = old pages served among fetches of changed pages sent after the purge result)"
    );
    let (ours_bytes, base_bytes) = (
        median(ours.iter().map(|l| l.bytes as f64).collect()),
        median(baseline.iter().map(|l| l.bytes as f64).collect()),
    );
    let (ours_ms, base_ms) =
        (median(ours.iter().map(|l| l.millis).collect()), median(baseline.iter().map(|l| l.millis).collect()));
    println!();
    println!("page load (the page and everything it references, 6 connections), medians of {} loads:", ours.len());
    println!("{:<44} {:>10} {:>9}", "", "bytes", "time");
    println!("{:<44} {:>10.0} {:>7.1}ms", "unoptimized site, straight from an origin", base_bytes, base_ms);
    println!("{:<44} {:>10.0} {:>7.1}ms", "built site through Varnish (br, warm edge)", ours_bytes, ours_ms);
    println!("{:<44} {:>9.1}% {:>8.2}x", "saved / ratio", (1.0 - ours_bytes / base_bytes) * 100.0, ours_ms / base_ms);
    let t = &build.totals;
    println!();
    println!(
        "build of the last deploy: {} files, source {} B, minified {} B, brotli {} B, gzip -9 {} B, zstd {} B (brotli/gzip = {:.3})",
        t.files,
        t.source_bytes,
        t.built_bytes,
        t.br_bytes,
        t.gzip_bytes,
        t.zstd_bytes,
        t.br_bytes as f64 / t.gzip_bytes as f64
    );
}
