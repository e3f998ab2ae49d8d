//! `frontier bench autoscale`: the controller with our rate policy against KEDA's lag formula
//! with HPA's 300 s scale-down stabilization, in the same run, each sizing real passthrough
//! processes (a per-message cost makes the work, not the machine's cores, set the size needed)
//! under the same traces: a step (an idle group suddenly receiving the peak rate), a burst (a
//! backlog arriving at once) and a ramp (arrivals rising).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;

use super::bus::analysis_requests;
use super::{create_topics, preload};
use crate::autoscale::{LagSampler, PolicySettings, Sizing};
use crate::bus::{ConsumerLoop, LoopOptions, SchemaCatalog, kafka};
use crate::records::{AutoscaleDecision, ScaleAction};
use crate::settings::Settings;
use crate::workers::WorkerGroup;
use crate::workers::autoscaler::{Actuator, Autoscaler, AutoscalerSettings, LocalActuatorSettings, LocalProcesses};

/// `frontier bench autoscale` options.
#[derive(Debug, Args)]
pub struct AutoscaleBenchArgs {
    /// Traces to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Trace::Step, Trace::Burst, Trace::Ramp])]
    pub traces: Vec<Trace>,
    /// Messages of the burst.
    #[arg(long, default_value_t = 20_000)]
    pub burst: u64,
    /// Peak arrival rate, messages per second: the step's for 180 s, and the ramp's (from a
    /// tenth of it, over 120 s, held for 60 s).
    #[arg(long, default_value_t = 500)]
    pub ramp_peak: u64,
    /// What each message costs an instance (one at a time): 10 ms is 100 msg/s per instance.
    #[arg(long, default_value = "10ms", value_parser = crate::cli::duration_arg)]
    pub work: Duration,
    /// Partitions of the input topic (and so the most instances that help).
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Our policy's `catch_up` (the shipped default is 60 s): how soon a backlog should drain.
    #[arg(long, default_value = "60s", value_parser = crate::cli::duration_arg)]
    pub catch_up: Duration,
    /// KEDA's lagThreshold for the baseline: lag one instance is expected to handle.
    #[arg(long, default_value_t = 1_000)]
    pub lag_threshold: u64,
    /// How long a run is watched after its trace ends (HPA's stabilization is 300 s of it).
    #[arg(long, default_value = "330s", value_parser = crate::cli::duration_arg)]
    pub settle: Duration,
}

/// A load shape, as `--traces` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Trace {
    /// An idle group suddenly receiving `--ramp-peak` msg/s for 180 s.
    Step,
    /// `--burst` messages at once.
    Burst,
    /// A tenth of `--ramp-peak` rising to it over 120 s, held for 60 s.
    Ramp,
}

impl std::fmt::Display for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The name `--traces` takes, padded as the table's first column asks (`{trace:<6}`).
        let value = self.to_possible_value();
        f.pad(value.as_ref().map_or("", |value| value.get_name()))
    }
}

/// What one policy did on one trace.
#[derive(Debug, Default)]
struct RunFigures {
    first_decision_s: Option<f64>,
    actions_until_drained: usize,
    reversals: usize,
    /// Times the group stopped to rebalance (its state left `Stable` while it had members),
    /// and the seconds it spent so.
    rebalances: usize,
    rebalancing_s: f64,
    peak_lag_s: f64,
    instance_seconds: f64,
    drained_s: Option<f64>,
    actions: usize,
}

pub(super) async fn bench_autoscale(settings: &Settings, args: AutoscaleBenchArgs) -> anyhow::Result<ExitCode> {
    let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
    // The shipped policy, from one instance (the baseline's minimum too); `--catch-up` is the
    // knob that trades peak lag for instances.
    let ours = PolicySettings { min_instances: 1, catch_up: args.catch_up, ..PolicySettings::default() };
    let keda = PolicySettings {
        sizing: Sizing::Lag { lag_threshold: args.lag_threshold },
        min_instances: 1,
        max_instances: 20,
        cooldown: Duration::ZERO,
        scale_down_window: Duration::from_secs(300),
        max_scale_down_share: 1.0,
        cpu_target: None,
        memory_target: None,
        ..PolicySettings::default()
    };
    println!(
        "frontier bench autoscale: {} ms per message (one instance: {:.0} msg/s), {} partitions, controller every 2 s",
        args.work.as_millis(),
        1.0 / args.work.as_secs_f64(),
        args.partitions
    );
    println!(
        "{:<6} {:<10} {:>10} {:>9} {:>9} {:>10} {:>11} {:>10} {:>9} {:>8}",
        "trace",
        "policy",
        "decide s",
        "actions",
        "to drain",
        "reversals",
        "rebalances",
        "peak lag s",
        "drained s",
        "inst-s"
    );
    for trace in &args.traces {
        for (name, policy) in [("ours", &ours), ("keda+hpa", &keda)] {
            let figures = run(settings, &catalog, &args, *trace, policy).await?;
            let show = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.1}"));
            println!(
                "{trace:<6} {name:<10} {:>10} {:>9} {:>9} {:>10} {:>11} {:>10.1} {:>9} {:>8.0}",
                show(figures.first_decision_s),
                figures.actions,
                figures.actions_until_drained,
                figures.reversals,
                format!("{} ({:.0} s)", figures.rebalances, figures.rebalancing_s),
                figures.peak_lag_s,
                show(figures.drained_s),
                figures.instance_seconds
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One policy on one trace, from an empty group to `settle` after the trace's last message.
async fn run(
    settings: &Settings,
    catalog: &Arc<SchemaCatalog>,
    args: &AutoscaleBenchArgs,
    trace: Trace,
    policy: &PolicySettings,
) -> anyhow::Result<RunFigures> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (input, output) = (format!("bench.autoscale.{id}.in"), format!("bench.autoscale.{id}.out"));
    let (decisions, status) = (format!("bench.autoscale.{id}.decisions"), format!("bench.autoscale.{id}.status"));
    create_topics(settings, std::slice::from_ref(&input), args.partitions).await?;
    create_topics(settings, &[output.clone(), decisions.clone(), status.clone()], 1).await?;
    let group = format!("bench.autoscale.{id}.group");
    let state = std::env::temp_dir().join(format!("frontier-bench-autoscale-{id}"));

    let mut shared = settings.shared();
    shared.bus.status_topic = status.clone();
    shared.bus.status_interval = Duration::from_secs(1);
    let mut controller = AutoscalerSettings {
        interval: Duration::from_secs(2),
        decisions_topic: decisions.clone(),
        local: LocalActuatorSettings {
            state_dir: state.clone(),
            first_metrics_port: 19_675,
            ..LocalActuatorSettings::default()
        },
        ..AutoscalerSettings::default()
    };
    controller.groups.insert("passthrough".into(), policy.clone());
    let env: Vec<(String, String)> = [
        ("FRONTIER_WORKERS__PASSTHROUGH__INPUT_TOPIC", input.clone()),
        ("FRONTIER_WORKERS__PASSTHROUGH__OUTPUT_TOPIC", output),
        ("FRONTIER_WORKERS__PASSTHROUGH__GROUP_ID", group.clone()),
        ("FRONTIER_WORKERS__PASSTHROUGH__WORK_PER_MESSAGE", format!("{}ms", args.work.as_millis())),
        ("FRONTIER_BUS__STATUS_TOPIC", status),
        ("FRONTIER_BUS__STATUS_INTERVAL", "1s".to_owned()),
        // An instance holds at most a second of work: a stopped one leaves at once, and the
        // backlog stays in Kafka where both policies see it.
        ("FRONTIER_BUS__MAX_IN_FLIGHT", (1.0 / args.work.as_secs_f64()).ceil().max(1.0).to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let program = std::env::current_exe().context("finding the frontier program")?;
    let actuator = Arc::new(LocalProcesses::open(&controller.local, program, env)?);
    let worker_group = WorkerGroup { worker: "passthrough", group_id: group.clone(), topics: vec![input.clone()] };
    let sampler = LagSampler::new(&settings.kafka, Duration::from_secs(5))?;
    let autoscaler = Arc::new(Autoscaler::new(
        &controller,
        vec![worker_group],
        sampler,
        Arc::new(Actuator::Local(actuator.clone())),
        catalog.clone(),
    ));
    let options = LoopOptions::new(
        &shared.bus,
        format!("bench.autoscale.{id}.controller"),
        vec![shared.bus.status_topic.clone()],
    );
    let stop = CancellationToken::new();
    let controller_task =
        tokio::spawn(ConsumerLoop::new(&shared.kafka, options, autoscaler, catalog.clone())?.run(stop.clone()));

    // The group starts at its minimum, joined and past the cooldown of that first change, as a
    // running group would be when load arrives: the trace measures reacting, not starting.
    let watcher = LagSampler::new(&settings.kafka, Duration::from_secs(5))?;
    let ready_by = Instant::now() + Duration::from_secs(120);
    loop {
        let (watch, group_id, topics) = (&watcher, group.clone(), vec![input.clone()]);
        let members = tokio::task::block_in_place(|| watch.sample(&group_id, &topics)).map_or(0, |s| s.members);
        if members >= usize::try_from(policy.min_instances).unwrap_or(1) {
            break;
        }
        anyhow::ensure!(Instant::now() < ready_by, "the group never reached its minimum of {}", policy.min_instances);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(policy.cooldown).await;

    // The trace, published while the watcher samples every second.
    let started_ms = crate::clock::now_millis();
    let publisher = {
        let (settings, catalog, input) = (settings.clone(), catalog.clone(), input.clone());
        let (burst, peak) = (args.burst, args.ramp_peak);
        tokio::spawn(async move { publish_trace(&settings, &catalog, &input, trace, burst, peak).await })
    };
    let mut figures = RunFigures::default();
    let mut trace_ended: Option<Instant> = None;
    let mut last = Instant::now();
    let mut backlog_seen = false;
    let mut drained_at_ms: Option<i64> = None;
    let mut rebalancing = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        figures.instance_seconds += f64::from(actuator.running("passthrough")) * now.duration_since(last).as_secs_f64();
        last = now;
        let (watch, group_id, topics) = (&watcher, group.clone(), vec![input.clone()]);
        let sample = tokio::task::block_in_place(|| watch.sample(&group_id, &topics));
        if let Ok(sample) = sample {
            // Sampled every second: a pause shorter than that can be missed, never invented.
            let paused = sample.members > 0 && sample.state != "Stable";
            if paused {
                figures.rebalancing_s += 1.0;
                figures.rebalances += usize::from(!rebalancing);
            }
            rebalancing = paused;
            figures.peak_lag_s = figures.peak_lag_s.max(sample.lag_seconds().unwrap_or(0.0));
            backlog_seen |= sample.backlog() > 0;
            if backlog_seen && sample.backlog() == 0 && drained_at_ms.is_none() && publisher.is_finished() {
                drained_at_ms = Some(sample.at_ms);
                figures.drained_s = Some((sample.at_ms - started_ms) as f64 / 1000.0);
            }
        }
        if publisher.is_finished() && trace_ended.is_none() {
            trace_ended = Some(now);
        }
        if trace_ended.is_some_and(|ended| now.duration_since(ended) >= args.settle) {
            break;
        }
    }
    publisher.await.context("the trace publisher")??;
    stop.cancel();
    controller_task.await.context("the controller")??;
    actuator.scale("passthrough", 0)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !actuator.instances("passthrough").is_empty() && Instant::now() < deadline {
        actuator.reap()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&state);

    // Only what the trace caused: decisions from its start on.
    let made: Vec<AutoscaleDecision> =
        read_decisions(settings, catalog, &decisions)?.into_iter().filter(|d| d.decided_at >= started_ms).collect();
    // The lag crossing: the first decision that saw messages waiting.
    let crossing = made.iter().find(|d| d.total_lag > 0);
    let mut direction: Option<ScaleAction> = None;
    for decision in made.iter().filter(|d| d.action != ScaleAction::Hold) {
        figures.actions += 1;
        if let Some(crossing) = crossing
            && figures.first_decision_s.is_none()
            && decision.action == ScaleAction::ScaleUp
            && decision.decided_at >= crossing.decided_at
        {
            figures.first_decision_s = Some((decision.decided_at - crossing.decided_at) as f64 / 1000.0);
        }
        if drained_at_ms.is_none_or(|drained| decision.decided_at <= drained) {
            figures.actions_until_drained += 1;
        }
        if direction.is_some_and(|previous| previous != decision.action) {
            figures.reversals += 1;
        }
        direction = Some(decision.action);
    }
    Ok(figures)
}

/// Publishes `trace` to `topic`: `burst` messages at once, `peak` msg/s for 180 s (a step), or
/// a ramp from a tenth of `peak` msg/s to `peak` over 120 s, held for 60 s.
async fn publish_trace(
    settings: &Settings,
    catalog: &SchemaCatalog,
    topic: &str,
    trace: Trace,
    burst: u64,
    peak: u64,
) -> anyhow::Result<()> {
    if trace == Trace::Burst {
        return preload(settings, topic, analysis_requests(catalog, burst)?).await;
    }
    let producer = kafka::producer(&settings.kafka)?;
    let records = analysis_requests(catalog, peak.saturating_mul(180))?;
    let mut next = records.iter().cycle();
    for second in 0..180u64 {
        let rate =
            if trace == Trace::Ramp && second < 120 { peak / 10 + (peak - peak / 10) * second / 120 } else { peak };
        let tick = Instant::now();
        let sends: Vec<_> = (0..rate)
            .filter_map(|_| next.next())
            .map(|(key, payload)| producer.send(FutureRecord::to(topic).key(key).payload(payload), Timeout::Never))
            .collect();
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(error, _)| error).context("publishing the ramp")?;
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed())).await;
    }
    Ok(())
}

/// Every decision on `topic`, oldest first.
fn read_decisions(settings: &Settings, catalog: &SchemaCatalog, topic: &str) -> anyhow::Result<Vec<AutoscaleDecision>> {
    let values = crate::bus::replay::read_to_end(&settings.kafka, topic, Duration::from_secs(30))?;
    let mut decisions: Vec<AutoscaleDecision> =
        values.iter().filter_map(|payload| catalog.identify(payload).ok()?.deserialize(payload).ok()).collect();
    decisions.sort_by_key(|d| d.decided_at);
    Ok(decisions)
}
