//! The warmer's refresh budget: a token bucket, so it never starts more than its share of
//! recomputations however many keys come due at once.

use std::time::Instant;

/// At most `rate` refreshes per second, with up to one second of them in a burst.
#[derive(Debug)]
pub struct RefreshBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl RefreshBudget {
    /// A full bucket refilled at `rate` per second.
    pub fn new(rate: f64, now: Instant) -> RefreshBudget {
        let burst = rate.max(1.0);
        RefreshBudget { rate, burst, tokens: burst, updated: now }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_budget_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut budget = RefreshBudget::new(10.0, start);
        assert_eq!((0..20).filter(|_| budget.try_take(start)).count(), 10);
        assert!(!budget.try_take(start));
        let later = start + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| budget.try_take(later)).count(), 5);
    }
}
