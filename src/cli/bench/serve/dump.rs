//! `--dump DIR`: every answer of every phase, and each stage's p99 per second, as TSV files.
//!
//! The 5 s buckets say *that* a phase stalled; finding *why* needs the single requests and
//! the wall-clock time of each, to line them up with the broker's request log, a GC log or
//! `perf` (the stalls of issue 12 were found that way).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use super::{Phase, stages};

/// Writes `<phase>.tsv` (one line per answer) and `<phase>.stages.tsv` (each probed stage's
/// p99 per second) into `dir`, creating it.
pub(super) fn write_phases(dir: &Path, phases: &[(&str, &Phase)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating the dump folder {}", dir.display()))?;
    for (label, phase) in phases {
        let name = label.replace(' ', "-");
        // One start time for both files, so their wall-clock columns line up exactly.
        let start = phase.started.zip(wall_start(phase));
        let answers = dir.join(format!("{name}.tsv"));
        write_answers(&answers, phase, start).with_context(|| format!("writing {}", answers.display()))?;
        let stages = dir.join(format!("{name}.stages.tsv"));
        write_stages(&stages, phase, start).with_context(|| format!("writing {}", stages.display()))?;
    }
    eprintln!("[bench] answers and stage timings written to {}", dir.display());
    Ok(())
}

/// The wall-clock time of the phase's start (Unix seconds), for lining answers up with logs.
fn wall_start(phase: &Phase) -> Option<f64> {
    let started = phase.started?;
    let wall = SystemTime::now().checked_sub(started.elapsed())?;
    Some(wall.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// The phase's start as an `Instant` and as Unix seconds.
type Start = Option<(Instant, f64)>;

fn write_answers(path: &Path, phase: &Phase, start: Start) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "id\tsent_unix_s\tsent_ms\tlatency_ms\tready_ms\tlayer\tstatus")?;
    let Some((started, wall)) = start else { return out.flush() };
    for answer in &phase.answered {
        let since = answer.sent.saturating_duration_since(started).as_secs_f64();
        writeln!(
            out,
            "{}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{}\t{}",
            answer.id,
            wall + since,
            since * 1000.0,
            answer.latency_ms,
            answer.ready_ms,
            answer.layer,
            answer.status
        )?;
    }
    out.flush()
}

fn write_stages(path: &Path, phase: &Phase, start: Start) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "second\tunix_s\t{}", stages::PROBED.join("\t"))?;
    let Some((started, wall)) = start else { return out.flush() };
    let seconds = phase.elapsed.as_secs() as usize + 1;
    let Some(per_stage) = phase.stages.p99_per_bucket(started, Duration::from_secs(1), seconds) else {
        return out.flush();
    };
    for second in 0..seconds {
        let cells: Vec<String> = per_stage
            .iter()
            .map(|stage| stage[second].map(|ms| format!("{ms:.3}")).unwrap_or_else(|| "-".into()))
            .collect();
        writeln!(out, "{second}\t{:.0}\t{}", wall + second as f64, cells.join("\t"))?;
    }
    out.flush()
}
