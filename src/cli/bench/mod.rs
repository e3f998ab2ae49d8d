//! `frontier bench ...`: performance figures, each beside a baseline measured in the same run,
//! reported as medians and ratios because the machines are shared and noisy.

mod autoscale;
mod bus;
mod cdn;
mod inference;
mod queries;
mod serve;
mod sla;
mod sla_live;
mod statements;

use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use clap::Subcommand;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use crate::bus::kafka;
use crate::settings::Settings;
use crate::topics::{self, TopicSpec};

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// The passthrough worker against a bare librdkafka consume-and-produce loop.
    Bus {
        /// Messages per run. Short runs measure the clients' and broker's buffers, not a steady
        /// state: at 300,000 the bare loop read 700,000-800,000/s, at 1,500,000 about 340,000/s.
        #[arg(long, default_value_t = 1_500_000)]
        messages: u64,
        /// Runs of each contender (alternating); medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Partitions of the benchmark topics.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
    },
    /// The SLA monitor: events per second through Kafka beside the core alone, and the time
    /// from a first breaching event to its alert on the alerts topic.
    Sla {
        /// Request-completed events for the throughput run.
        #[arg(long, default_value_t = 500_000)]
        events: u64,
        /// Breaches timed for the detection latency.
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Instead: the configured rules against live-stamped traffic (time to alert and to
        /// resolve per default rule, false alerts on blips and noise); about 15 minutes.
        #[arg(long)]
        live: bool,
        /// With --live: healthy traffic before the breaches, so every window is full.
        #[arg(long, default_value = "330s", value_parser = crate::cli::duration_arg)]
        warmup: std::time::Duration,
        /// With --live: events per second of each series.
        #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 2000])]
        rates: Vec<u32>,
        /// With --live: series per rule, rate and role (breach, blip, noise).
        #[arg(long, default_value_t = 3)]
        replicas: u32,
    },
    /// The inference batcher: jobs/s through Kafka with batching off and on, beside the model's
    /// own best offline throughput, and latency per priority under a steady load.
    Inference {
        /// One-headline embed jobs per throughput run.
        #[arg(long, default_value_t = 2000)]
        jobs: usize,
        /// Rounds of offline, batching off and batching on (alternating); medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Steady load for the latency run, as a fraction of the batched throughput measured.
        #[arg(long, default_value_t = 0.7)]
        load: f64,
        /// Seconds of steady load for the latency run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// The serving path: publish-to-response latency of cold and cached requests, hit ratio per
    /// layer with the cache warmer off and on under a Zipf load, lookup latency per layer.
    Serve(serve::ServeBenchArgs),
    /// What a burst of the most expensive valid requests does to everyone else: ordinary
    /// requests' latency alone and during the burst, how the heavy ones end, threads and memory.
    Hostile(serve::HostileBenchArgs),
    /// The HTTP gateway against publishing straight to Kafka: the same cached requests both
    /// ways, p50/p99 and the gateway's overhead, then 429s for a tenant over its quota.
    Gateway(serve::GatewayBenchArgs),
    /// The index advisor against Dexter's rule on one workload with planted missing indexes
    /// and decoys: recall, decoys and harmful advice, storage, and the workload's measured
    /// time before and after each advisor's indexes, in a scratch database.
    Queries(queries::QueriesBenchArgs),
    /// The price store's statement cache against the store alone: reads per second, latency
    /// and PostgreSQL statements per read, on a Zipf load of shared reads and on reads that
    /// never repeat.
    Statements(statements::StatementsBenchArgs),
    /// The autoscaler's rate policy against KEDA's lag formula with HPA's 300 s scale-down, on
    /// real passthrough processes under a step, a burst and a ramp: time to decide, actions,
    /// reversals, rebalance pauses, peak lag and instance-seconds. About 50 minutes with the
    /// defaults.
    Autoscale(autoscale::AutoscaleBenchArgs),
    /// The CDN purger at the stack's Varnish: deploys of a few-hundred-file site, each editing
    /// 10 % of it, under a steady page load: change to fresh page (p50/p99), origin fetches
    /// per purged object, stale pages after the purge, soft beside hard purges; bytes and page
    /// load time against the unoptimized site; brotli against gzip -9. About 2 minutes.
    Cdn(cdn::CdnBenchArgs),
}

pub async fn bench(settings: &Settings, target: BenchTarget) -> anyhow::Result<ExitCode> {
    let outcome = run(settings, target).await;
    // Whatever the outcome: a failed run's topics would slow the next runs down as much.
    delete_scratch_topics(settings).await;
    outcome
}

async fn run(settings: &Settings, target: BenchTarget) -> anyhow::Result<ExitCode> {
    match target {
        BenchTarget::Bus { messages, rounds, partitions } => {
            bus::bench_bus(settings, messages, rounds, partitions).await
        }
        BenchTarget::Sla { live: true, warmup, rates, replicas, .. } => {
            sla_live::bench_sla_live(settings, sla_live::LiveOptions { warmup, rates, replicas }).await
        }
        BenchTarget::Sla { events, trials, .. } => sla::bench_sla(settings, events, trials).await,
        BenchTarget::Inference { jobs, rounds, load, seconds } => {
            inference::bench_inference(settings, jobs, rounds, load, seconds).await
        }
        BenchTarget::Serve(args) => serve::bench_serve(settings, args).await,
        BenchTarget::Hostile(args) => serve::bench_hostile(settings, args).await,
        BenchTarget::Gateway(args) => serve::bench_gateway(settings, args).await,
        BenchTarget::Queries(args) => queries::bench_queries(settings, args).await,
        BenchTarget::Statements(args) => statements::bench_statements(settings, args).await,
        BenchTarget::Autoscale(args) => autoscale::bench_autoscale(settings, args).await,
        BenchTarget::Cdn(args) => cdn::bench_cdn(settings, args).await,
    }
}

/// The median of `values` (NaN for none): the mean of the middle two for an even count, so two
/// rounds report their mean rather than the better one.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 0 => (values[middle - 1] + values[middle]) / 2.0,
        _ => values[middle],
    }
}

/// Every topic the benchmark of this process created, deleted when it ends. Left behind, they
/// piled up on the dev broker (about 4,800 partitions after a day of runs and tests): its old
/// generation stayed at 86 % of the heap, young collections took up to 220 ms, and later runs
/// measured the broker's pauses instead of the pipeline. A process runs one benchmark, so one
/// list for the process is all the bookkeeping this needs.
static SCRATCH_TOPICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Creates throwaway topics for one run (deleted when the benchmark ends).
async fn create_topics(settings: &Settings, names: &[String], partitions: i32) -> anyhow::Result<()> {
    // Recorded first: a creation that fails half-way may still have created some of them.
    SCRATCH_TOPICS.lock().unwrap_or_else(PoisonError::into_inner).extend(names.iter().cloned());
    let admin = kafka::admin(&settings.kafka)?;
    let specs: Vec<TopicSpec> = names.iter().map(|name| TopicSpec::scratch(name, partitions)).collect();
    let plan = topics::plan(&specs, &Default::default());
    topics::apply(&admin, &plan, settings.kafka.request_timeout).await.context("creating benchmark topics")
}

/// Deletes the topics [`create_topics`] made. A failure is reported, not returned: the figures
/// are already printed, and the topics are only clutter.
async fn delete_scratch_topics(settings: &Settings) {
    let names = std::mem::take(&mut *SCRATCH_TOPICS.lock().unwrap_or_else(PoisonError::into_inner));
    if names.is_empty() {
        return;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match kafka::delete_topics(&settings.kafka, &names).await {
        Ok(failed) => {
            let failed: Vec<String> = failed.into_iter().map(|(topic, code)| format!("{topic} ({code})")).collect();
            if failed.is_empty() {
                eprintln!("[bench] deleted its {} topics", names.len());
            } else {
                eprintln!(
                    "[bench] could not delete {} of its {} topics: {}",
                    failed.len(),
                    names.len(),
                    failed.join(", ")
                );
            }
        }
        Err(error) => eprintln!("[bench] could not delete its {} topics: {error}", names.len()),
    }
}

/// Produces `(key, value)` records to `topic` and waits for every acknowledgement.
async fn preload(settings: &Settings, topic: &str, records: Vec<(Vec<u8>, Vec<u8>)>) -> anyhow::Result<()> {
    let producer = kafka::producer(&settings.kafka)?;
    for chunk in records.chunks(50_000) {
        let mut pending: FuturesUnordered<_> = chunk
            .iter()
            .map(|(key, payload)| producer.send(FutureRecord::to(topic).key(key).payload(payload), Timeout::Never))
            .collect();
        while let Some(result) = pending.next().await {
            result.map_err(|(e, _)| e).context("preloading")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![0.92, 0.82]), 0.87);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
    }
}
