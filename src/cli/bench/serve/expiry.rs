//! The hit-ratio phases of `frontier bench serve`: a Zipf load whose entries expire, the cache
//! warmer off and on, in rounds whose order alternates (off then on, on then off, ...). The
//! later phase of a pair always ran on a broker, Redis and machine that had served more:
//! alternating puts that drift on both sides alike, and the median over rounds of each
//! percentile's difference, weighed against the noise ([`super::noise`]), says whether the
//! warmer is worse than none.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::noise;
use super::phase::{Answered, COMPARED, Missed, Phase, summary};
use super::{Bench, ScratchDir};
use crate::cli::percentile;

/// What the hit-ratio phases need of the bench's arguments.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExpiryPlan {
    /// Requests per second.
    pub(super) rate: f64,
    /// Seconds of each phase.
    pub(super) seconds: u64,
    /// Entry ttl and grace.
    pub(super) ttl: Duration,
    pub(super) grace: Duration,
    /// Pairs of phases (warmer off and on).
    pub(super) rounds: usize,
    /// Whether the first round runs the warmer-on phase first.
    pub(super) warmer_first: bool,
}

/// One hit-ratio phase.
pub(super) struct ExpiryPhase {
    /// `warmer off` or `warmer on`, then the round's number from the second round on.
    pub(super) label: String,
    pub(super) round: usize,
    pub(super) warmer_on: bool,
    pub(super) phase: Phase,
    /// Keys the warmer refreshed (warmer-on phases).
    pub(super) refreshed: Option<u64>,
}

impl ExpiryPlan {
    /// The phases in the order they run, as (label, round, warmer on): round `r` (from 0) runs
    /// the warmer-off phase first when `r` is even, unless `warmer_first` swaps every round.
    pub(super) fn order(&self) -> Vec<(String, usize, bool)> {
        let mut order = Vec::with_capacity(self.rounds * 2);
        for round in 0..self.rounds {
            let off_first = (round % 2 == 0) != self.warmer_first;
            let pair = if off_first { [false, true] } else { [true, false] };
            for warmer_on in pair {
                let base = if warmer_on { "warmer on" } else { "warmer off" };
                let label = if round == 0 { base.to_string() } else { format!("{base} {}", round + 1) };
                order.push((label, round, warmer_on));
            }
        }
        order
    }

    /// The phases' names as the bench names topics and dump files.
    pub(super) fn topic_names(&self) -> Vec<String> {
        self.order().into_iter().map(|(label, ..)| label.replace(' ', "-")).collect()
    }
}

/// Runs the hit-ratio phases of `plan`, each with a serving instance of its own (and a warmer
/// in the warmer-on ones), `request_of` giving the load.
pub(super) async fn run_phases(
    bench: &mut Bench,
    plan: &ExpiryPlan,
    request_of: &mut impl FnMut(usize) -> (String, String, Value),
) -> anyhow::Result<Vec<ExpiryPhase>> {
    let count = (plan.rate * plan.seconds as f64) as usize;
    let mut phases = Vec::new();
    // Every phase's disk folder is kept until the bench ends. Deleting the warmer-off phase's
    // 5,500 files right before the warmer-on phase made its first bucket the kernel's: on
    // ext4 without a journal (this project's machines) every file created then scanned the
    // inodes freed in the last seconds, and the disk writer took a third of both cores.
    let mut phase_dirs = Vec::new();
    for (label, round, warmer_on) in plan.order() {
        let dir = ScratchDir::new(&label)?;
        let cache = bench.cache_settings(dir.path(), Some((plan.ttl, plan.grace)));
        let phase_topic = label.replace(' ', "-");
        let instance = bench.start_instance(&cache, &label, &phase_topic).await?;
        let warmer = if warmer_on { Some(bench.start_warmer(&cache, &phase_topic).await?) } else { None };
        eprintln!("[bench] {label}: {count} requests at {}/s, ttl {:?}, grace {:?}", plan.rate, plan.ttl, plan.grace);
        let phase = bench.run_phase(&label, count, plan.rate, request_of).await?;
        let refreshed = match warmer {
            Some((token, task)) => {
                token.cancel();
                Some(task.await.context("the warmer's thread ended without a report")??)
            }
            None => None,
        };
        instance.stop().await?;
        phase_dirs.push(dir);
        phases.push(ExpiryPhase { label, round, warmer_on, phase, refreshed });
    }
    Ok(phases)
}

/// Prints each phase (hit ratio, latency by layer, timeline), then warmer on against off per
/// round and, over several rounds, the median difference. Returns each phase's missed buckets.
pub(super) fn report(phases: &[ExpiryPhase], plan: &ExpiryPlan) -> Vec<(String, Missed)> {
    let mut missed = Vec::new();
    for ExpiryPhase { label, phase, refreshed, .. } in phases {
        println!(
            "{label}: answered {} of {}{}",
            phase.answered.len(),
            phase.sent,
            refreshed.map(|n| format!(", {n} warmer refreshes")).unwrap_or_default()
        );
        for (part, after) in parts(plan) {
            let keep = |a: &Answered| sent_after(phase, a, after);
            let counts = phase.layer_counts(keep);
            if counts.is_empty() {
                println!("  {part:13}  no requests (the phase is shorter than the ttl)");
                continue;
            }
            let total = counts.values().sum::<usize>().max(1) as f64;
            let ratio = |layer: &str| 100.0 * counts.get(layer).copied().unwrap_or_default() as f64 / total;
            println!(
                "  {part:13}  hit ratio {:5.1} %  memory {:5.1} %  redis {:5.1} %  disk {:5.1} %  computed {:5.1} %",
                100.0 - ratio("none"),
                ratio("memory"),
                ratio("redis"),
                ratio("disk"),
                ratio("none")
            );
            println!("  {part:13}  cached {}", summary(&phase.latencies(|a| keep(a) && a.layer != "none")));
            println!("  {part:13}  computed {}", summary(&phase.latencies(|a| keep(a) && a.layer == "none")));
        }
        missed.push((label.clone(), phase.print_timeline()));
    }
    compare_rounds(phases, plan);
    missed
}

/// The parts of a phase reported apart: all of it, and after the first ttl (the first ttl
/// starts from an empty cache, every key's first request computing; after it, what remains is
/// expiry, the warmer's work).
fn parts(plan: &ExpiryPlan) -> [(&'static str, Duration); 2] {
    [("whole phase", Duration::ZERO), ("after 1st ttl", plan.ttl)]
}

fn sent_after(phase: &Phase, answered: &Answered, after: Duration) -> bool {
    phase.started.is_some_and(|started| answered.sent >= started + after)
}

/// Prints warmer on against off at each of [`COMPARED`]'s percentiles, per round, then over
/// several rounds the median of on minus off, how likely by chance, the A/A spread, and at
/// which percentiles on is worse (or better) beyond the noise (see [`noise`]).
fn compare_rounds(phases: &[ExpiryPhase], plan: &ExpiryPlan) {
    let find = |round: usize, on: bool| phases.iter().find(|p| p.round == round && p.warmer_on == on);
    // Per part and percentile, (on, off) of every round.
    let mut rounds: Vec<Vec<Vec<(f64, f64)>>> = vec![vec![Vec::new(); COMPARED.len()]; 2];
    println!("warmer on against off, all answers, on / off ms (goal: on never worse):");
    for round in 0..plan.rounds {
        let (Some(off), Some(on)) = (find(round, false), find(round, true)) else { continue };
        // The phases are in the order they ran.
        let on_first = phases.iter().find(|p| p.round == round).is_some_and(|p| p.warmer_on);
        let first = if on_first { "on" } else { "off" };
        println!("  round {} ({first} ran first)", round + 1);
        for (part_index, (part, after)) in parts(plan).into_iter().enumerate() {
            let latencies = |p: &ExpiryPhase| p.phase.latencies(|a| sent_after(&p.phase, a, after));
            let pairs = side_by_side(&latencies(off), &latencies(on));
            if pairs.is_empty() {
                println!("    {part:13}  no answers to compare");
                continue;
            }
            for (at, pair) in pairs.iter().enumerate() {
                rounds[part_index][at].push(*pair);
            }
            let worse = pairs.iter().filter(|(on, off)| on > off).count();
            let text: Vec<String> =
                COMPARED.iter().zip(&pairs).map(|(at, (on, off))| format!("{} {on:.2}/{off:.2}", name(*at))).collect();
            println!("    {part:13}  {}  on worse at {worse} of {}", text.join("  "), COMPARED.len());
        }
    }
    if plan.rounds < 2 {
        return;
    }
    println!(
        "  over {} rounds, on - off: median (ms), rounds where on was worse, the chance of as many by noise alone (sign test), and the A/A spread (median gap between two phases of one setting, ms):",
        plan.rounds
    );
    for (part_index, (part, _)) in parts(plan).into_iter().enumerate() {
        let readings: Vec<(f64, noise::Reading)> = COMPARED
            .iter()
            .zip(&rounds[part_index])
            .filter(|(_, pairs)| !pairs.is_empty())
            .map(|(at, pairs)| (*at, noise::read(pairs)))
            .collect();
        let text: Vec<String> = readings
            .iter()
            .map(|(at, r)| {
                format!(
                    "{} {:+.2} ({}/{}, p {:.2}, A/A {:.2})",
                    name(*at),
                    r.median_difference,
                    r.worse_rounds,
                    r.rounds,
                    r.p_worse,
                    r.aa_spread
                )
            })
            .collect();
        println!("    {part:13}  {}", text.join("  "));
        let with = |verdict| -> Vec<String> {
            readings.iter().filter(|(_, r)| r.verdict == verdict).map(|(at, _)| name(*at)).collect()
        };
        let listed = |names: Vec<String>| if names.is_empty() { "none".to_string() } else { names.join(", ") };
        if plan.rounds < noise::MIN_ROUNDS {
            println!(
                "    {part:13}  verdict: {} rounds cannot tell (--warmer-rounds {} at least)",
                plan.rounds,
                noise::MIN_ROUNDS
            );
        } else {
            println!(
                "    {part:13}  verdict: on worse beyond the noise at {}; better at {}",
                listed(with(noise::Verdict::Worse)),
                listed(with(noise::Verdict::Better))
            );
        }
    }
}

/// `p50`, `p99.9`, or `max` for 100.
fn name(at: f64) -> String {
    if at >= 100.0 { "max".to_string() } else { format!("p{at}") }
}

/// (candidate, baseline) at each of [`COMPARED`]'s percentiles of the sorted latencies; empty
/// when either has none.
pub(super) fn side_by_side(baseline: &[f64], candidate: &[f64]) -> Vec<(f64, f64)> {
    if baseline.is_empty() || candidate.is_empty() {
        return Vec::new();
    }
    COMPARED.iter().map(|at| (percentile(candidate, *at), percentile(baseline, *at))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rounds: usize, warmer_first: bool) -> ExpiryPlan {
        ExpiryPlan { rate: 1.0, seconds: 1, ttl: Duration::from_secs(1), grace: Duration::ZERO, rounds, warmer_first }
    }

    #[test]
    fn rounds_alternate_which_phase_runs_first() {
        let order: Vec<String> = plan(3, false).order().into_iter().map(|(label, ..)| label).collect();
        assert_eq!(order, ["warmer off", "warmer on", "warmer on 2", "warmer off 2", "warmer off 3", "warmer on 3"]);
        let swapped: Vec<bool> = plan(2, true).order().into_iter().map(|(_, _, on)| on).collect();
        assert_eq!(swapped, [true, false, false, true]);
    }

    #[test]
    fn one_round_keeps_the_phase_names_of_earlier_benches() {
        assert_eq!(plan(1, false).topic_names(), ["warmer-off", "warmer-on"]);
    }

    #[test]
    fn the_percentiles_come_side_by_side_candidate_first() {
        let baseline: Vec<f64> = (1..=1000).map(f64::from).collect();
        // Faster everywhere but in its one slowest answer.
        let mut candidate: Vec<f64> = baseline.iter().map(|ms| ms - 0.5).collect();
        candidate[999] = 2000.0;
        let pairs = side_by_side(&baseline, &candidate);
        assert_eq!(pairs.len(), COMPARED.len());
        assert_eq!(pairs[0], (499.5, 500.0));
        assert_eq!(pairs[COMPARED.len() - 1], (2000.0, 1000.0));
        assert!(side_by_side(&[], &candidate).is_empty());
    }
}
