//! The start phase of `frontier bench serve`: a serving group under load while it grows and
//! restarts. One instance serves alone (warm-up, not measured); then, measured, a second
//! instance joins its group and later the first one restarts (drained, stopped, started again
//! on its own disk folder), as a scale-out and a rolling deploy would.

use std::time::Duration;

use serde_json::Value;

use super::{Bench, Phase, ScratchDir};
use crate::cli::bench::create_topics;

/// When the second instance starts and when the first restarts, as shares of the phase.
pub(super) const JOIN_AT: f64 = 0.2;
pub(super) const RESTART_AT: f64 = 0.55;

/// Runs the start phase for `seconds` at `rate`, after `warmup` seconds of the first instance
/// alone, on a requests topic of `partitions` partitions (so the group has something to
/// share). Entries live for the whole run: every stall measured comes from a start.
pub(super) async fn start_phase(
    bench: &mut Bench,
    rate: f64,
    warmup: u64,
    seconds: u64,
    partitions: i32,
    request_of: &mut impl FnMut(usize) -> (String, String, Value),
) -> anyhow::Result<Phase> {
    let requests = format!("{}.start", bench.settings.workers.serve.input_topic);
    let metrics = format!("{}.start", bench.settings.workers.serve.metrics_topic);
    let heat = format!("{}.start", bench.settings.workers.serve.heat_topic);
    create_topics(&bench.settings, &[requests, metrics, heat], partitions).await?;

    let (first_dir, second_dir) = (ScratchDir::new("start-first")?, ScratchDir::new("start-second")?);
    let lifetime = Some((Duration::from_secs(3600), Duration::ZERO));
    let first_cache = bench.cache_settings(first_dir.path(), lifetime);
    // Both instances share the first one's Redis prefix, as one deployment's instances do.
    let second_cache = crate::cache::CacheSettings { disk_dir: second_dir.path().to_path_buf(), ..first_cache.clone() };
    let launcher = bench.launcher("start");
    let group = format!("bench.serve.start.{}", uuid::Uuid::new_v4().simple());
    let first = launcher.start(&first_cache, &group).await?;
    // The warmer publishes the hot set new instances load before taking partitions.
    let (warmer_token, warmer_task) = bench.start_warmer(&first_cache, "start").await?;
    eprintln!("[bench] start: {warmup} s of one instance alone on {partitions} partitions, then {seconds} s measured");
    bench.run_phase("prestart", (rate * warmup as f64) as usize, rate, request_of).await?;

    let phase_length = Duration::from_secs(seconds);
    let script = tokio::spawn(async move {
        tokio::time::sleep(phase_length.mul_f64(JOIN_AT)).await;
        eprintln!("[bench] start: a second instance joins the group");
        let second = launcher.start(&second_cache, &group).await?;
        tokio::time::sleep(phase_length.mul_f64(RESTART_AT - JOIN_AT)).await;
        eprintln!("[bench] start: the first instance restarts");
        first.stop().await?;
        let restarted = launcher.start(&first_cache, &group).await?;
        anyhow::Ok([second, restarted])
    });
    let phase = bench.run_phase("start", (rate * seconds as f64) as usize, rate, request_of).await;
    let instances = script.await??;
    warmer_token.cancel();
    warmer_task.await??;
    for instance in instances {
        instance.stop().await?;
    }
    phase
}
