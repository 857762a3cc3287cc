//! Exponential backoff with full jitter, for waits that span calls or cycles.
//!
//! ```
//! use dyno_scaler_core::backoff::Backoff;
//! use std::time::Duration;
//! let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
//! assert_eq!(b.failures(), 0);
//! let first = b.fail(None);
//! assert!(first <= Duration::from_secs(1));
//! // A hint from the other side (Retry-After) is a floor, within the maximum.
//! assert_eq!(b.fail(Some(Duration::from_secs(30))), Duration::from_secs(30));
//! assert_eq!(b.fail(Some(Duration::from_secs(3600))), Duration::from_secs(60));
//! b.succeed();
//! assert_eq!(b.failures(), 0);
//! ```

use std::time::Duration;

/// Counts consecutive failures and says how long to wait after each: a random wait of up to
/// `initial × 2^(failures-1)`, at least half of it, never more than `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `initial`, doubles per failure, never waits more than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max: max.max(initial), failures: 0 }
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and returns the wait before the next attempt. `hint` (a `Retry-After`) raises the wait to
    /// at least that much, capped at the maximum.
    pub fn fail(&mut self, hint: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let cap = self.initial.saturating_mul(1u32 << (self.failures - 1).min(20)).min(self.max);
        // "Equal jitter": half fixed, half random, so the wait grows even on unlucky draws.
        let wait = cap / 2 + cap.mul_f64(fastrand::f64() / 2.0);
        wait.max(hint.unwrap_or_default()).min(self.max)
    }

    /// Records a success: the next failure starts again at `initial`.
    pub fn succeed(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_then_stay_at_the_maximum_and_reset_on_success() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut last_cap = Duration::ZERO;
        for n in 1..=12u32 {
            let w = b.fail(None);
            let cap = Duration::from_secs(1).saturating_mul(1 << (n - 1)).min(Duration::from_secs(60));
            assert!(w >= cap / 2 && w <= cap, "failure {n}: {w:?} not within [{:?}, {cap:?}]", cap / 2);
            assert!(cap >= last_cap);
            last_cap = cap;
        }
        assert_eq!(b.failures(), 12);
        b.succeed();
        assert!(b.fail(None) <= Duration::from_secs(1));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        for _ in 0..10_000 {
            assert!(b.fail(None) <= Duration::from_secs(10));
        }
    }
}
