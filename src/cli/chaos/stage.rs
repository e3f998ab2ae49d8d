//! One chaos run: the shared parts (cluster checks, production topics on the cluster, seeded
//! prices, a Redis of its own) and, per scenario, fresh topics and workers, the load, the
//! fault, the drain and the accounting.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

use super::alerts::seen_alerts;
use super::cluster::{StackControl, Toxiproxy};
use super::counters;
use super::fleet::{Exit, Fleet};
use super::load::{self, AlertLog, Load, LoadPlan, Quiet, Stream};
use super::report::{self, Marks, ScenarioReport};
use super::services::{OwnRedis, SmallDisk};
use super::{ChaosOptions, Scenario};
use crate::bus::metrics as bus_metric;
use crate::bus::{SchemaCatalog, kafka};
use crate::cache::metric as cache_metric;
use crate::market::seed::{SeedPlan, seed_prices};
use crate::market::{DiscardQueryEvents, PriceStore, StoreOptions};
use crate::settings::Settings;
use crate::topics::{self, TopicSpec};

/// Partitions of the data topics (requests, answers, jobs, results, events).
pub(super) const PARTITIONS: i32 = 6;
/// Partitions of the low-volume topics (alerts, dead letters, status, ...).
const SMALL_PARTITIONS: i32 = 3;
/// Symbols seeded for the serving instances' cold reads.
const SYMBOLS: usize = 100;
/// The price schema every scenario's serving instances read.
const PRICE_SCHEMA: &str = "chaos_prices";
/// Time for the SLA monitor to join its group before the warm-up counts.
const SLA_JOIN: Duration = Duration::from_secs(3);
/// How long workers may take to start (a debug build loading the embedding model on 2 busy
/// cores).
const START_PATIENCE: Duration = Duration::from_secs(180);
/// How long a scenario's new topics may take to be fully replicated.
const REPLICA_PATIENCE: Duration = Duration::from_secs(120);

/// The shared state of a chaos run.
pub(super) struct Run {
    pub(super) options: ChaosOptions,
    /// Settings with the cluster's direct bootstrap (the load and the accounting).
    pub(super) settings: Settings,
    catalog: Arc<SchemaCatalog>,
    pub(super) stack: StackControl,
    pub(super) toxiproxy: Toxiproxy,
    redis: Mutex<OwnRedis>,
    run_id: u64,
}

impl Run {
    /// Checks the cluster and toxiproxy, creates the production topics on the cluster (so the
    /// workers' default topics exist there, with replication 3 and min ISR 2), seeds the
    /// prices and starts the run's Redis.
    pub async fn prepare(settings: &Settings, options: &ChaosOptions) -> anyhow::Result<Run> {
        let mut settings = settings.clone();
        settings.kafka.bootstrap_servers = options.direct_bootstrap.clone();
        let probe: BaseConsumer<Quiet> = kafka::base_config(&settings.kafka).create_with_context(Quiet)?;
        let brokers =
            probe.fetch_metadata(None, Duration::from_secs(10)).map(|m| m.brokers().len()).with_context(|| {
                format!(
                    "the three-broker cluster does not answer at {} (start it: `ops/stack up --brokers 3`)",
                    options.direct_bootstrap
                )
            })?;
        if brokers != 3 {
            bail!(
                "the cluster at {} has {brokers} broker(s), not 3 (`ops/stack up --brokers 3`)",
                options.direct_bootstrap
            );
        }
        let toxiproxy = Toxiproxy { base: options.toxiproxy.clone(), http: reqwest::Client::new() };
        toxiproxy.check().await?;

        let specs = topics::load_dir(&settings.paths.topics, &Default::default())?;
        let admin = kafka::admin(&settings.kafka)?;
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let existing = topics::describe(&admin, &names, settings.kafka.request_timeout).await?;
        topics::apply(&admin, &topics::plan(&specs, &existing), settings.kafka.request_timeout)
            .await
            .context("creating the production topics on the cluster")?;

        let store_options = StoreOptions { schema: Some(PRICE_SCHEMA.into()), application: "frontier chaos".into() };
        let store = PriceStore::connect(&settings.postgres, store_options, Arc::new(DiscardQueryEvents))
            .await
            .context("connecting to PostgreSQL (`ops/stack up`)")?;
        let plan = SeedPlan { symbols: SYMBOLS, days: 300, seed: 42, names: Vec::new(), benchmark: None };
        seed_prices(&store, &plan, |_, _| {}).await.context("seeding the chaos prices")?;

        let redis = OwnRedis::new(options.redis_port, &options.work_dir)?;
        Ok(Run {
            catalog: Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?),
            stack: StackControl { script: options.ops_stack.clone() },
            toxiproxy,
            redis: Mutex::new(redis),
            run_id: crate::clock::now_millis().unsigned_abs(),
            options: options.clone(),
            settings,
        })
    }

    /// The run's Redis, to kill or start.
    pub(super) fn redis(&self) -> anyhow::Result<MutexGuard<'_, OwnRedis>> {
        self.redis.lock().map_err(|_| anyhow::anyhow!("a scenario panicked holding the run's Redis"))
    }

    /// Leaves the cluster whole: toxics removed, every broker running, the run's Redis gone.
    pub async fn finish(&self) {
        let _ = self.toxiproxy.clear().await;
        for node in 1..=3 {
            let _ = self.stack.start_broker(node).await;
        }
        if let Ok(mut redis) = self.redis() {
            redis.kill();
        }
    }

    /// Runs one scenario from fresh topics and workers to its report.
    pub async fn scenario(&self, scenario: Scenario, shutdown: &CancellationToken) -> anyhow::Result<ScenarioReport> {
        let topics = ScenarioTopics::new(self.run_id, scenario);
        self.create_topics(&topics).await?;
        self.redis()?.restart()?;
        let dir = self.options.work_dir.join(format!("{}-{}", self.run_id, scenario.name()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let disk = if scenario == Scenario::DiskFull { Some(SmallDisk::mount(&dir.join("disk"))?) } else { None };
        let disk_root = disk.as_ref().map_or_else(|| dir.clone(), |d| d.path.clone());

        let mut fleet = Fleet::new(&self.options.binary, self.worker_env(&topics), dir.join("logs"))?;
        for n in 1..=2 {
            let name = format!("serve-{n}");
            let env = vec![
                ("FRONTIER_WORKERS__SERVE__INSTANCE".into(), name.clone()),
                ("FRONTIER_CACHE__DISK_DIR".into(), disk_root.join(&name).display().to_string()),
            ];
            fleet.add(&name, "serve", env)?;
        }
        fleet.add("inference-1", "inference-batcher", Vec::new())?;
        fleet.wait_started(START_PATIENCE).await?;

        let stop_readers = CancellationToken::new();
        // However the scenario ends, its readers stop with it.
        let _readers = stop_readers.clone().drop_guard();
        let load = Load::start(
            &self.settings.kafka,
            self.catalog.clone(),
            LoadPlan {
                requests_topic: topics.requests.clone(),
                jobs_topic: topics.jobs.clone(),
                serve_rate: self.options.serve_rate,
                inference_rate: self.options.inference_rate,
                symbols: SYMBOLS,
                id_prefix: format!("{}-{}", self.run_id, scenario.name()),
            },
        )?;
        let kafka = &self.settings.kafka;
        let (catalog, ledger) = (self.catalog.clone(), load.ledger.clone());
        let mut readers = vec![
            load::collect_answers(
                kafka,
                &topics.responses,
                PARTITIONS,
                Stream::Serve,
                catalog.clone(),
                ledger.clone(),
                stop_readers.clone(),
            )?,
            load::collect_answers(
                kafka,
                &topics.results,
                PARTITIONS,
                Stream::Inference,
                catalog.clone(),
                ledger.clone(),
                stop_readers.clone(),
            )?,
        ];
        let alerts: AlertLog = Arc::default();
        readers.push(load::collect_alerts(
            kafka,
            &topics.alerts,
            SMALL_PARTITIONS,
            catalog,
            alerts.clone(),
            stop_readers.clone(),
        )?);
        let dead_letters = Arc::new(AtomicU64::new(0));
        readers.push(load::count_messages(
            kafka,
            &topics.dlq,
            SMALL_PARTITIONS,
            dead_letters.clone(),
            stop_readers.clone(),
        )?);

        if let Err(error) = self.settle(&ledger, &mut fleet, shutdown).await {
            return Err(error.context(format!("the workers' logs end with:\n{}", fleet.log_tails(15))));
        }
        // The SLA monitor starts once the pipeline is warm and reads only what comes after, so
        // the cold start's misses and slow first answers (no fault of the scenario's) cannot
        // fire an alert that would be read as the fault's.
        let latest = vec![("FRONTIER_KAFKA__CLIENT__AUTO_OFFSET_RESET".to_string(), "latest".to_string())];
        fleet.add("sla-1", "sla-monitor", latest)?;
        fleet.wait_started(START_PATIENCE).await?;
        sleep_until(Instant::now() + SLA_JOIN, shutdown).await;

        let start = Instant::now();
        let scene = Scene { scenario, topics: &topics, load: &load, disk: disk.as_ref() };
        let outcome = self.break_and_heal(&scene, &mut fleet, start, shutdown).await;
        let load_end = Instant::now();
        let poison_sent = ledger.poison_sent.load(Ordering::Relaxed);
        load.stop().await;
        // Whatever happened, leave the network and brokers whole before judging.
        let _ = self.toxiproxy.clear().await;
        let (Broken { fault, mut notes, measured, .. }, marks) = match outcome {
            Ok(broken) => {
                let marks = Marks { start, fault: broken.fault_at, heal: broken.heal_at, load_end };
                (broken, marks)
            }
            Err(error) => {
                fleet.stop(Duration::from_secs(10)).await;
                return Err(error);
            }
        };

        let drained = Instant::now();
        while ledger.unanswered() > 0 && drained.elapsed() < self.options.timing.drain && !shutdown.is_cancelled() {
            for exit in fleet.supervise_until(Instant::now() + Duration::from_millis(500), shutdown).await {
                notes.push(exit.restarted());
            }
        }
        let resolving = Instant::now();
        while resolving.elapsed() < self.options.timing.resolve_wait && !shutdown.is_cancelled() {
            let firing = alerts.lock().map(|log| load::firing(&log)).unwrap_or_default();
            if firing.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for exit in fleet.exited() {
            notes.push(format!("a worker exited: {}", exit.why));
        }
        fleet.stop(Duration::from_secs(15)).await;
        stop_readers.cancel();
        for reader in readers {
            let _ = reader.await;
        }
        drop(disk);

        let entries: Vec<load::Entry> = ledger.entries.iter().map(|e| e.value().clone()).collect();
        let streams: Vec<_> =
            [Stream::Serve, Stream::Inference].map(|s| report::stream_report(s, &entries, marks)).to_vec();
        let recovered_s = streams.iter().map(|s| s.recovered_s).try_fold(0.0_f64, |worst, s| s.map(|s| worst.max(s)));
        let alerts = alerts.lock().map(|log| seen_alerts(&log, marks.fault)).unwrap_or_default();
        Ok(ScenarioReport {
            scenario: scenario.name().into(),
            fault,
            held_s: marks.heal.duration_since(marks.fault).as_secs_f64(),
            fault_at_s: marks.fault.duration_since(marks.start).as_secs_f64(),
            streams,
            recovered_s,
            poison_sent,
            dead_letters: dead_letters.load(Ordering::Relaxed),
            alerts,
            alert_expected: scenario.should_alert(),
            measured,
            notes,
        })
    }

    /// Warm-up, fault, hold, heal, after: what was done, when, and what was seen meanwhile.
    async fn break_and_heal(
        &self,
        scene: &Scene<'_>,
        fleet: &mut Fleet,
        start: Instant,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Broken> {
        let timing = self.options.timing;
        sleep_until(start + timing.warmup, shutdown).await;
        let mut exited = fleet.exited();
        if !exited.is_empty() {
            bail!("a worker died during the warm-up: {}", Exit::all(&exited));
        }
        let before = counters::scrape(fleet).await;
        let fault_at = Instant::now();
        let fault = self.inject(scene, fleet).await?;
        eprintln!("[chaos]   fault: {}", fault.what);
        let hold = scene.scenario.hold(&timing, self.options.session_timeout);
        exited.extend(fleet.supervise_until(fault_at + hold, shutdown).await);
        let heal_at = Instant::now();
        let healed = self.heal(scene, fleet, &fault).await?;
        let mut notes = Vec::new();
        if !healed.is_empty() {
            eprintln!("[chaos]   heal: {healed}");
            notes.push(format!("healed: {healed}"));
        }
        exited.extend(fleet.supervise_until(Instant::now() + timing.after, shutdown).await);
        notes.extend(exited.iter().map(Exit::restarted));
        let after = counters::scrape(fleet).await;
        let grew = |name: &str| counters::grown(&before, &after, name);
        // Redis restarts empty in its scenario: keys there at the end were written after it.
        let keys = self.redis_keys().await.unwrap_or(-1.0);
        let measured = [
            ("redis_keys_at_end", keys),
            ("disk_errors", grew(cache_metric::DISK_ERRORS)),
            ("redis_errors", grew(cache_metric::REDIS_ERRORS)),
            ("bus_rewinds", grew(bus_metric::REWINDS)),
            ("bus_resent", grew(bus_metric::RESENT)),
        ]
        .map(|(name, value)| (name.to_string(), value))
        .into();
        Ok(Broken { fault: fault.what, fault_at, heal_at, notes, measured })
    }

    /// Waits until the workers have joined their groups and answer every request of the last
    /// seconds: the warm-up measures a steady pipeline, not its start.
    async fn settle(
        &self,
        ledger: &load::Ledger,
        fleet: &mut Fleet,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let began = Instant::now();
        loop {
            let now = Instant::now();
            // Every analysis request of 8 to 3 seconds ago answered within a second (the
            // serving instances have joined and their hot set is cached), every inference job
            // within 3 s (a debug build's batcher takes a second or two per job on a busy machine).
            let within = [Duration::from_secs(1), Duration::from_secs(3)];
            let slow = ledger.slow(now - Duration::from_secs(8), now - Duration::from_secs(3), within);
            if now.duration_since(began) > Duration::from_secs(8) && slow.iter().all(|(sent, s)| *sent > 0 && *s == 0) {
                return Ok(());
            }
            let exited = fleet.exited();
            if !exited.is_empty() {
                bail!("a worker died while starting: {}", Exit::all(&exited));
            }
            if now.duration_since(began) > START_PATIENCE || shutdown.is_cancelled() {
                let [(serve, serve_slow), (jobs, jobs_slow)] = slow;
                bail!(
                    "the workers did not keep up with the load within {START_PATIENCE:?} of starting: of the last \
                     requests, {serve_slow} of {serve} analysis requests were not answered within 1 s and \
                     {jobs_slow} of {jobs} inference jobs within 3 s (logs in {})",
                    self.options.work_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// How many keys the run's Redis holds.
    async fn redis_keys(&self) -> anyhow::Result<f64> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.options.redis_port))?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let keys: i64 = redis::cmd("DBSIZE").query_async(&mut connection).await?;
        Ok(keys as f64)
    }

    async fn create_topics(&self, topics: &ScenarioTopics) -> anyhow::Result<()> {
        let admin = kafka::admin(&self.settings.kafka)?;
        let specs: Vec<TopicSpec> = topics
            .all()
            .into_iter()
            .map(|(name, partitions)| {
                let mut spec = TopicSpec::scratch(name, partitions);
                spec.replication_factor = 3;
                spec.min_insync_replicas = 2;
                spec
            })
            .collect();
        let plan = topics::plan(&specs, &Default::default());
        topics::apply(&admin, &plan, self.settings.kafka.request_timeout)
            .await
            .context("creating the scenario's topics")?;
        self.await_replicas(topics).await
    }

    /// Waits until every partition of the scenario's topics has a leader and all three
    /// replicas in sync. A broker restarted by the previous scenario (or starved of CPU while
    /// the tests built) may still be catching up: a fault on top of that would test two faults.
    async fn await_replicas(&self, topics: &ScenarioTopics) -> anyhow::Result<()> {
        let probe: BaseConsumer<Quiet> = kafka::base_config(&self.settings.kafka).create_with_context(Quiet)?;
        let names: Vec<String> = topics.all().into_iter().map(|(name, _)| name.to_owned()).collect();
        let began = Instant::now();
        loop {
            let lagging: Vec<String> =
                tokio::task::block_in_place(|| probe.fetch_metadata(None, Duration::from_secs(10)))
                    .map(|metadata| {
                        let mut lagging = Vec::new();
                        for name in &names {
                            match metadata.topics().iter().find(|t| t.name() == name) {
                                None => lagging.push(format!("{name}: not in the metadata yet")),
                                Some(topic) => lagging.extend(
                                    topic.partitions().iter().filter(|p| p.leader() < 0 || p.isr().len() < 3).map(
                                        |p| format!("{name}-{}: leader {}, in sync {:?}", p.id(), p.leader(), p.isr()),
                                    ),
                                ),
                            }
                        }
                        lagging
                    })
                    .unwrap_or_else(|error| vec![format!("no metadata: {error}")]);
            if lagging.is_empty() {
                return Ok(());
            }
            if began.elapsed() > REPLICA_PATIENCE {
                bail!(
                    "the cluster did not replicate the scenario's topics within {REPLICA_PATIENCE:?}: {}",
                    lagging.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// What every worker of a scenario is configured with: the brokers through toxiproxy, the
    /// scenario's topics and groups, the run's Redis and prices.
    fn worker_env(&self, t: &ScenarioTopics) -> Vec<(String, String)> {
        let session = self.options.session_timeout.as_millis();
        [
            ("FRONTIER_KAFKA__BOOTSTRAP_SERVERS", self.options.proxied_bootstrap.clone()),
            // The scenarios' timing (a zombie's expiry, a partition's rewinds) is built on the
            // classic protocol's client-side session; on KIP-848 the broker owns it, and
            // librdkafka refuses the two settings below. Pinned, so a caller's
            // `group.protocol = "consumer"` does not leave every worker unable to start.
            ("FRONTIER_KAFKA__CLIENT__GROUP_PROTOCOL", "classic".into()),
            ("FRONTIER_KAFKA__CLIENT__SESSION_TIMEOUT_MS", session.to_string()),
            ("FRONTIER_KAFKA__DELIVERY_TIMEOUT", format!("{}ms", self.options.delivery_timeout.as_millis())),
            ("FRONTIER_KAFKA__CLIENT__HEARTBEAT_INTERVAL_MS", (session / 5).max(500).to_string()),
            ("FRONTIER_BUS__DLQ_TOPIC", t.dlq.clone()),
            ("FRONTIER_BUS__STATUS_TOPIC", t.status.clone()),
            ("FRONTIER_REDIS__URL", format!("redis://127.0.0.1:{}/", self.options.redis_port)),
            ("FRONTIER_PRICES__SCHEMA", PRICE_SCHEMA.into()),
            ("FRONTIER_PRICES__QUERY_EVENTS_TOPIC", t.query_events.clone()),
            ("FRONTIER_CACHE__INVALIDATIONS_TOPIC", t.invalidations.clone()),
            ("FRONTIER_WORKERS__SERVE__INPUT_TOPIC", t.requests.clone()),
            ("FRONTIER_WORKERS__SERVE__RESPONSES_TOPIC", t.responses.clone()),
            ("FRONTIER_WORKERS__SERVE__METRICS_TOPIC", t.metrics.clone()),
            ("FRONTIER_WORKERS__SERVE__HEAT_TOPIC", t.heat.clone()),
            ("FRONTIER_WORKERS__SERVE__GROUP_ID", format!("{}.serve", t.prefix)),
            ("FRONTIER_WORKERS__INFERENCE__INPUT_TOPIC", t.jobs.clone()),
            ("FRONTIER_WORKERS__INFERENCE__RESULTS_TOPIC", t.results.clone()),
            ("FRONTIER_WORKERS__INFERENCE__GROUP_ID", format!("{}.inference", t.prefix)),
            ("FRONTIER_WORKERS__SLA__INPUT_TOPIC", t.metrics.clone()),
            ("FRONTIER_WORKERS__SLA__ALERTS_TOPIC", t.alerts.clone()),
            ("FRONTIER_WORKERS__SLA__GROUP_ID", format!("{}.sla", t.prefix)),
            ("FRONTIER_WORKERS__SLA__WORKER_STATUS_TOPIC", t.status.clone()),
            ("FRONTIER_WORKERS__SLA__QUERY_EVENTS_TOPIC", t.query_events.clone()),
            ("FRONTIER_WORKERS__SLA__SLO_COUNTERS_TOPIC", t.slo.clone()),
            // SLO checkpoints every 5 s (30 s shipped): the first seconds of a partition then
            // always hold a periodic output that outlasts the short suite's delivery timeout,
            // whose resend the partition scenario checks (a rewind needs a request that
            // happened to be in flight at the cut).
            ("FRONTIER_WORKERS__SLA__SLO_CHECKPOINT_INTERVAL", "5s".into()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec()
    }
}

/// What one scenario breaks with: its topics, load and (disk-full) small disk.
pub(super) struct Scene<'a> {
    pub scenario: Scenario,
    pub topics: &'a ScenarioTopics,
    pub load: &'a Load,
    pub disk: Option<&'a SmallDisk>,
}

/// What [`Run::break_and_heal`] did and saw.
struct Broken {
    /// The fault, concretely.
    fault: String,
    fault_at: Instant,
    heal_at: Instant,
    /// The heal and any worker restarted meanwhile.
    notes: Vec<String>,
    /// See [`ScenarioReport::measured`].
    measured: BTreeMap<String, f64>,
}

/// Sleeps until `deadline` or the shutdown.
async fn sleep_until(deadline: Instant, shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep_until(deadline.into()) => {}
    }
}

/// A scenario's topics, all fresh.
pub(super) struct ScenarioTopics {
    prefix: String,
    pub(super) requests: String,
    responses: String,
    metrics: String,
    jobs: String,
    results: String,
    alerts: String,
    dlq: String,
    status: String,
    invalidations: String,
    query_events: String,
    slo: String,
    heat: String,
}

impl ScenarioTopics {
    pub(super) fn new(run: u64, scenario: Scenario) -> ScenarioTopics {
        let prefix = format!("chaos.{run}.{}", scenario.name());
        let name = |what: &str| format!("{prefix}.{what}");
        ScenarioTopics {
            requests: name("requests"),
            responses: name("responses"),
            metrics: name("metrics"),
            jobs: name("jobs"),
            results: name("results"),
            alerts: name("alerts"),
            dlq: name("dlq"),
            status: name("status"),
            invalidations: name("invalidations"),
            query_events: name("query-events"),
            slo: name("slo"),
            heat: name("heat"),
            prefix,
        }
    }

    fn all(&self) -> Vec<(&str, i32)> {
        let data = [&self.requests, &self.responses, &self.metrics, &self.jobs, &self.results];
        let small =
            [&self.alerts, &self.dlq, &self.status, &self.invalidations, &self.query_events, &self.slo, &self.heat];
        data.iter()
            .map(|t| (t.as_str(), PARTITIONS))
            .chain(small.iter().map(|t| (t.as_str(), SMALL_PARTITIONS)))
            .collect()
    }
}
