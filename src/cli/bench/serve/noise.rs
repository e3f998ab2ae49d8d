//! Whether a setting is worse than another at one percentile, from paired rounds on a noisy
//! machine. Two phases of the *same* setting land a fraction of a millisecond apart on these
//! shared 2-core machines, so "on minus off is positive in most rounds" says little by itself.
//! A difference counts only when it is both unlikely by chance (a one-sided sign test over the
//! rounds) and larger than the A/A spread: the median gap between two phases of one setting,
//! measured in the same run.

use crate::cli::bench::median;

/// A sign test over fewer rounds than this cannot reach [`SIGNIFICANT`] (2^-4 = 0.0625).
pub(super) const MIN_ROUNDS: usize = 5;

/// The sign test's threshold: as many rounds on one side happen by chance less often than this.
const SIGNIFICANT: f64 = 0.05;

/// What paired rounds say about a candidate against its baseline at one percentile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Slower beyond the noise.
    Worse,
    /// Faster beyond the noise.
    Better,
    /// No difference both unlikely by chance and larger than the A/A spread.
    WithinNoise,
}

/// One percentile over the rounds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    /// Median over the rounds of candidate minus baseline (ms).
    pub(super) median_difference: f64,
    /// Rounds where the candidate was slower.
    pub(super) worse_rounds: usize,
    /// Rounds compared.
    pub(super) rounds: usize,
    /// The chance of at least `worse_rounds` slower rounds if the settings were alike.
    pub(super) p_worse: f64,
    /// Median gap between two phases of the same setting (ms), over every such pair.
    pub(super) aa_spread: f64,
    pub(super) verdict: Verdict,
}

/// Reads `rounds`, each `(candidate, baseline)` at one percentile.
pub(super) fn read(rounds: &[(f64, f64)]) -> Reading {
    let differences: Vec<f64> = rounds.iter().map(|(candidate, baseline)| candidate - baseline).collect();
    let worse = differences.iter().filter(|d| **d > 0.0).count();
    let better = differences.iter().filter(|d| **d < 0.0).count();
    // Ties say nothing either way: the sign test runs over the rounds that differ.
    let decided = worse + better;
    let (p_worse, p_better) = (at_least(worse, decided), at_least(better, decided));
    let median_difference = if differences.is_empty() { 0.0 } else { median(differences) };
    let aa_spread = aa_spread(rounds);
    let verdict = if p_worse < SIGNIFICANT && median_difference > aa_spread {
        Verdict::Worse
    } else if p_better < SIGNIFICANT && -median_difference > aa_spread {
        Verdict::Better
    } else {
        Verdict::WithinNoise
    };
    Reading { median_difference, worse_rounds: worse, rounds: rounds.len(), p_worse, aa_spread, verdict }
}

/// The chance of `k` or more heads in `n` fair coin tosses (1 when `k` is 0).
fn at_least(k: usize, n: usize) -> f64 {
    let mut choose = 1.0; // C(n, 0)
    let mut total = 0.0;
    for i in 0..=n {
        if i >= k {
            total += choose;
        }
        choose = choose * (n - i) as f64 / (i + 1) as f64;
    }
    // n is at most the bench's 10 rounds: 2^n is exact.
    total / 2f64.powi(i32::try_from(n).unwrap_or(i32::MAX))
}

/// Median of |a - b| over every pair of phases of one setting (candidates with candidates,
/// baselines with baselines); 0 with fewer than two rounds.
fn aa_spread(rounds: &[(f64, f64)]) -> f64 {
    let mut gaps = Vec::new();
    for (i, first) in rounds.iter().enumerate() {
        for second in &rounds[i + 1..] {
            gaps.push((first.0 - second.0).abs());
            gaps.push((first.1 - second.1).abs());
        }
    }
    if gaps.is_empty() { 0.0 } else { median(gaps) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_test_gives_the_binomial_tail() {
        assert_eq!(at_least(0, 10), 1.0);
        assert!((at_least(7, 10) - 176.0 / 1024.0).abs() < 1e-12);
        assert!((at_least(10, 10) - 1.0 / 1024.0).abs() < 1e-12);
        assert!(at_least(4, 4) > SIGNIFICANT, "four rounds can never tell");
        assert!(at_least(MIN_ROUNDS, MIN_ROUNDS) < SIGNIFICANT);
    }

    #[test]
    fn slower_in_every_round_by_more_than_the_spread_is_worse() {
        // Baselines 10.0-10.9 ms (A/A spread about 0.3), the candidate 1 ms slower each time.
        let rounds: Vec<(f64, f64)> = (0..10).map(|i| 10.0 + f64::from(i) * 0.1).map(|b| (b + 1.0, b)).collect();
        let reading = read(&rounds);
        assert_eq!(reading.verdict, Verdict::Worse);
        assert_eq!(reading.worse_rounds, 10);
        assert!((reading.median_difference - 1.0).abs() < 1e-9);
    }

    #[test]
    fn seven_rounds_of_ten_slightly_slower_is_within_the_noise() {
        // Like the 10 rounds of 2026-12-08 at p50: a few hundredths of a millisecond slower in
        // 7 of 10, phases of one setting tenths of a millisecond apart.
        let offsets = [0.05, 0.1, -0.2, 0.08, 0.12, -0.3, 0.09, 0.02, -0.4, 0.1];
        let rounds: Vec<(f64, f64)> =
            offsets.iter().enumerate().map(|(i, d)| (5.6 + (i % 4) as f64 * 0.2, d)).map(|(b, d)| (b + d, b)).collect();
        let reading = read(&rounds);
        assert_eq!(reading.worse_rounds, 7);
        assert!(reading.p_worse > SIGNIFICANT);
        assert_eq!(reading.verdict, Verdict::WithinNoise);
    }

    #[test]
    fn consistently_but_negligibly_slower_is_within_the_noise() {
        // Slower in all ten rounds, but by less than two phases of one setting differ.
        let rounds: Vec<(f64, f64)> = (0..10).map(|i| 6.0 + f64::from(i % 5) * 0.3).map(|b| (b + 0.01, b)).collect();
        let reading = read(&rounds);
        assert!(reading.p_worse < SIGNIFICANT);
        assert!(reading.aa_spread > 0.01);
        assert_eq!(reading.verdict, Verdict::WithinNoise);
    }

    #[test]
    fn faster_in_every_round_by_more_than_the_spread_is_better() {
        let rounds: Vec<(f64, f64)> = (0..6).map(|i| 20.0 + f64::from(i) * 0.1).map(|b| (b - 2.0, b)).collect();
        assert_eq!(read(&rounds).verdict, Verdict::Better);
    }

    #[test]
    fn ties_count_for_neither_side() {
        let rounds = [(5.0, 5.0), (5.0, 5.0), (5.0, 5.0), (5.0, 5.0), (5.0, 5.0)];
        let reading = read(&rounds);
        assert_eq!((reading.worse_rounds, reading.p_worse), (0, 1.0));
        assert_eq!(reading.verdict, Verdict::WithinNoise);
    }
}
