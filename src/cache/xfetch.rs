//! XFetch (Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache Stampede
//! Prevention", VLDB 2015): recompute a fresh entry early with a probability that rises as
//! expiry nears and with how long the value takes to compute, so one request refreshes a hot
//! entry before it expires instead of a stampede after.

use std::time::Duration;

/// Whether to recompute now: `now - delta * beta * ln(draw) >= expiry`, with `draw` uniform in
/// (0, 1]. `delta` is the computation's cost; `beta` > 1 favours earlier recomputation, 0
/// turns it off.
pub fn should_recompute_early(now_ms: i64, expires_at_ms: i64, delta: Duration, beta: f64, draw: f64) -> bool {
    if beta <= 0.0 || delta.is_zero() {
        return now_ms >= expires_at_ms;
    }
    // ln of a draw in (0, 1] is <= 0, so the lead is >= 0; a draw of 0 would be infinite.
    let draw = draw.clamp(f64::MIN_POSITIVE, 1.0);
    let lead_ms = -(delta.as_secs_f64() * 1000.0) * beta * draw.ln();
    now_ms as f64 + lead_ms >= expires_at_ms as f64
}

/// A uniform draw in (0, 1] from the thread's RNG.
pub fn draw() -> f64 {
    1.0 - rand::random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn rate(now_ms: i64, seed: u64) -> f64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let trials = 10_000;
        let fired = (0..trials)
            .filter(|_| {
                should_recompute_early(now_ms, 100_000, Duration::from_millis(500), 1.0, 1.0 - rng.random::<f64>())
            })
            .count();
        fired as f64 / trials as f64
    }

    #[test]
    fn recomputation_fires_more_often_near_expiry() {
        // 10 s, 1 s and 0.1 s before expiry, with a 0.5 s computation.
        let far = rate(90_000, 1);
        let near = rate(99_000, 2);
        let nearer = rate(99_900, 3);
        assert!(far < 0.001, "far from expiry fired {far}");
        assert!(near > far && nearer > near, "{far} < {near} < {nearer} expected");
        // P(fire) = exp(-gap / delta): e^-2 = 0.135 at 1 s, e^-0.2 = 0.82 at 0.1 s.
        assert!((near - 0.135).abs() < 0.02, "{near}");
        assert!((nearer - 0.819).abs() < 0.02, "{nearer}");
        assert_eq!(rate(100_000, 4), 1.0);
    }

    #[test]
    fn costlier_values_and_higher_beta_fire_earlier() {
        let cheap = should_recompute_early(99_000, 100_000, Duration::from_millis(10), 1.0, 0.5);
        let costly = should_recompute_early(99_000, 100_000, Duration::from_secs(2), 1.0, 0.5);
        assert!(!cheap && costly);
        assert!(!should_recompute_early(99_000, 100_000, Duration::from_millis(500), 1.0, 0.5));
        assert!(should_recompute_early(99_000, 100_000, Duration::from_millis(500), 4.0, 0.5));
        assert!(!should_recompute_early(99_999, 100_000, Duration::from_secs(10), 0.0, 0.01));
        assert!(draw() > 0.0 && draw() <= 1.0);
    }
}
