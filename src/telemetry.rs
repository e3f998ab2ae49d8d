//! Logs (`tracing`, human or JSON) and the Prometheus `/metrics` endpoint.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// This process's instance id, `<host>-<pid>`: unique among the processes running at one time.
/// Workers report it in their status, answers and events unless configured otherwise.
pub fn instance_id() -> String {
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "unknown".into());
    format!("{host}-{}", std::process::id())
}

/// Installs the global log subscriber; `RUST_LOG` overrides the configured filter.
pub fn init_logging(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second call (tests running several commands in one process) keeps the first subscriber.
    let _ = match settings.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// 1 while a worker process runs, label `worker` (the `frontier run` name): summed by worker it
/// is the number of instances each group runs, whoever started them (ops/demo, the autoscaler,
/// Kubernetes), and a stopped instance's series goes stale with its scrape target.
pub const WORKER_UP: &str = "frontier_worker_up";

/// Marks this process as one running instance of `worker` on `/metrics`.
pub fn announce_worker(worker: &str) {
    metrics::describe_gauge!(WORKER_UP, "1 while this worker process runs (label worker).");
    metrics::gauge!(WORKER_UP, "worker" => worker.to_owned()).set(1.0);
}

/// Histogram buckets for latencies in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Serves `/metrics` on `listen` from a background task of the current runtime.
pub fn serve_metrics(listen: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install()?;
    crate::bus::metrics::describe();
    Ok(())
}
