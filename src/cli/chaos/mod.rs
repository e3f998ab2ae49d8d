//! `frontier chaos`: faults injected into a loaded pipeline on the three-broker cluster, and
//! an account of every request.
//!
//! Each scenario gets fresh topics (replication 3, min ISR 2) on the cluster that
//! `ops/stack up --brokers 3` runs, fresh worker processes (two `serve`, one
//! `inference-batcher`, one `sla-monitor`, reaching the brokers only through toxiproxy so the
//! network between them can be broken) and a steady load from this process, which talks to
//! the brokers directly. After a warm-up the fault is injected, held, healed; the load goes on
//! a while, then stops, and every answer is waited for. The report counts per stream the
//! requests sent, answered, lost and duplicated; the time from the fault until every request
//! is answered at the steady latency again; the p99 during the fault; and the alerts the SLA
//! monitor raised from the serving workers' request-completed events, and whether they
//! resolved.

mod alerts;
mod cluster;
mod counters;
mod faults;
mod fleet;
mod load;
mod report;
mod scenario;
mod services;
mod stage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

pub use report::{AlertSeen, Report, ScenarioReport, StreamReport};
pub use scenario::Scenario;

use crate::settings::Settings;

/// `frontier chaos` arguments: a run, or `report` to print the last one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ChaosArgs {
    #[command(subcommand)]
    command: Option<ChaosCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum ChaosCommand {
    /// Print reports that `frontier chaos` (or the chaos tests) wrote, as one table.
    Report {
        /// The reports' JSON files.
        #[arg(default_value = DEFAULT_REPORT)]
        files: Vec<PathBuf>,
    },
}

const DEFAULT_REPORT: &str = "var/chaos/report.json";

/// What to run and how hard.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Every scenario, with longer faults, more load and the shipped consumer session timeout
    /// (45 s); about 30 minutes. Without it: the short suite CI runs, about 10 minutes.
    #[arg(long)]
    long: bool,
    /// Only these scenarios (comma-separated or repeated).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Analysis requests per second [default: 40, with --long 50].
    #[arg(long)]
    serve_rate: Option<f64>,
    /// Inference jobs per second [default: 0.5 (a debug build's batcher on a busy machine
    /// keeps up with about 1), with --long 2].
    #[arg(long)]
    inference_rate: Option<f64>,
    /// Where the report goes (JSON; `frontier chaos report` prints it).
    #[arg(long, default_value = DEFAULT_REPORT)]
    report: PathBuf,
}

/// Everything a chaos run needs, so tests drive it directly.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// How long each phase lasts.
    pub timing: Timing,
    /// Analysis requests per second.
    pub serve_rate: f64,
    /// Inference jobs per second.
    pub inference_rate: f64,
    /// The `frontier` binary the workers run as.
    pub binary: PathBuf,
    /// The stack script (`ops/stack`): it kills and starts brokers and restarts PostgreSQL.
    pub ops_stack: PathBuf,
    /// Logs, disk caches and the report's neighbours go under this folder.
    pub work_dir: PathBuf,
    /// The cluster's brokers, directly (the load and the accounting).
    pub direct_bootstrap: String,
    /// The same brokers through toxiproxy (the workers).
    pub proxied_bootstrap: String,
    /// toxiproxy's API.
    pub toxiproxy: String,
    /// A Redis of the run's own on this port, so killing it touches nothing else.
    pub redis_port: u16,
    /// The consumers' `session.timeout.ms`: how long a stopped or killed member keeps its
    /// partitions.
    pub session_timeout: Duration,
    /// The workers' `kafka.delivery_timeout`: how long an output may wait for the cluster
    /// before its message is consumed again (the partition outlasts it in both suites).
    pub delivery_timeout: Duration,
}

impl ChaosOptions {
    /// The short suite (CI's) or the long one, against the stack's cluster.
    pub fn new(long: bool, binary: PathBuf, repo: &std::path::Path) -> ChaosOptions {
        ChaosOptions {
            scenarios: if long { Scenario::ALL.to_vec() } else { Scenario::SHORT.to_vec() },
            timing: if long { Timing::long() } else { Timing::short() },
            serve_rate: if long { 50.0 } else { 40.0 },
            inference_rate: if long { 2.0 } else { 0.5 },
            binary,
            ops_stack: repo.join("ops/stack"),
            work_dir: repo.join("var/chaos"),
            direct_bootstrap: "127.0.0.1:9191,127.0.0.1:9192,127.0.0.1:9193".into(),
            proxied_bootstrap: "127.0.0.1:9391,127.0.0.1:9392,127.0.0.1:9393".into(),
            toxiproxy: "http://127.0.0.1:8474".into(),
            redis_port: 6391,
            // librdkafka's default is 45 s; the short suite waits for a zombie's expiry in 10.
            session_timeout: Duration::from_secs(if long { 45 } else { 10 }),
            // The shipped 30 s, which the long suite's 30 s partition outlasts. The short
            // suite's must also end before the session does (8 to 10 s after a cut, with
            // heartbeats every 2 s): a member whose session expired first has lost its
            // partitions, so nothing is left to rewind and the partition scenario would not
            // show a rewind at all (seen with 10 s in CI: 0 rewinds).
            delivery_timeout: Duration::from_secs(if long { 30 } else { 5 }),
        }
    }
}

/// How long each phase of a scenario lasts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Load before the fault; its second half is the steady baseline.
    pub warmup: Duration,
    /// How long a fault is held before it is healed (a kill's victim restarts after it).
    pub hold: Duration,
    /// Load after the heal.
    pub after: Duration,
    /// Most time to wait, after the load stops, for the last answers.
    pub drain: Duration,
    /// Most time to wait, after the drain, for firing alerts to resolve.
    pub resolve_wait: Duration,
}

impl Timing {
    /// CI's: faults of 15 s, long enough for the shipped rules to see them.
    pub fn short() -> Timing {
        Timing {
            warmup: Duration::from_secs(10),
            hold: Duration::from_secs(15),
            after: Duration::from_secs(10),
            drain: Duration::from_secs(90),
            resolve_wait: Duration::from_secs(30),
        }
    }

    /// `--long`: faults of 30 s (the partition), and time for every alert to resolve.
    pub fn long() -> Timing {
        Timing {
            warmup: Duration::from_secs(20),
            hold: Duration::from_secs(30),
            after: Duration::from_secs(30),
            drain: Duration::from_secs(120),
            resolve_wait: Duration::from_secs(75),
        }
    }
}

/// Runs `frontier chaos ...`.
pub async fn chaos(settings: &Settings, args: ChaosArgs) -> anyhow::Result<ExitCode> {
    if let Some(ChaosCommand::Report { files }) = args.command {
        let mut merged: Option<Report> = None;
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {} (write one with `frontier chaos`)", file.display()))?;
            let report: Report = serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
            match merged.as_mut() {
                Some(all) => all.scenarios.extend(report.scenarios),
                None => merged = Some(report),
            }
        }
        let Some(report) = merged else { return Ok(ExitCode::FAILURE) };
        print!("{report}");
        return Ok(if report.lost() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let args = args.run;
    let repo = std::env::current_dir().context("the working folder")?;
    let binary = std::env::current_exe().context("this binary's path")?;
    let mut options = ChaosOptions::new(args.long, binary, &repo);
    if !args.scenario.is_empty() {
        options.scenarios = args.scenario;
    }
    options.serve_rate = args.serve_rate.unwrap_or(options.serve_rate);
    options.inference_rate = args.inference_rate.unwrap_or(options.inference_rate);
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    let report = run(settings, &options, &shutdown).await?;
    report.save(&args.report)?;
    print!("{report}");
    eprintln!("[chaos] report written to {} (`frontier chaos report` prints it)", args.report.display());
    Ok(if report.lost() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs each scenario of `options` in turn and reports them all. An infrastructure failure
/// (the cluster down, a worker that cannot start) is an `Err`; what the faults did is the
/// report.
pub async fn run(settings: &Settings, options: &ChaosOptions, shutdown: &CancellationToken) -> anyhow::Result<Report> {
    let run = stage::Run::prepare(settings, options).await?;
    let mut report = Report { timing: report::TimingReport::from(&options.timing, options), scenarios: Vec::new() };
    for scenario in &options.scenarios {
        if shutdown.is_cancelled() {
            break;
        }
        eprintln!("[chaos] {}: {}", scenario.name(), scenario.describe());
        let outcome = run.scenario(*scenario, shutdown).await;
        match outcome {
            Ok(scenario_report) => {
                eprint!("{}\n{scenario_report}", report::HEADER);
                report.scenarios.push(scenario_report);
            }
            Err(error) => {
                run.finish().await;
                return Err(error.context(format!("scenario {}", scenario.name())));
            }
        }
    }
    run.finish().await;
    Ok(report)
}
