//! One log line per failed cycle, and repeated identical failures summarised instead of repeated.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What to do with a cycle's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Log it: new, changed, or the first repeat after the quiet period (`repeats` identical errors were held back
    /// since the last line).
    Log {
        /// Identical errors not logged since the last line.
        repeats: u64,
    },
    /// The same error as the last line, within the quiet period: count it, do not log it.
    Quiet,
}

#[derive(Debug)]
struct Last {
    message: String,
    logged_at: Instant,
    held: u64,
    failures: u64,
}

/// Remembers the last error per key (a process type) and decides which to log.
///
/// ```
/// use dyno_scaler_core::cycle_log::{CycleLog, Verdict};
/// use std::time::Duration;
/// let mut log = CycleLog::new(Duration::from_secs(60));
/// assert_eq!(log.error("worker", "redis down"), Verdict::Log { repeats: 0 });
/// assert_eq!(log.error("worker", "redis down"), Verdict::Quiet);
/// assert_eq!(log.error("worker", "heroku down"), Verdict::Log { repeats: 1 });
/// assert_eq!(log.success("worker"), Some(3)); // recovered after three failed cycles
/// assert_eq!(log.success("worker"), None);
/// ```
#[derive(Debug)]
pub struct CycleLog {
    every: Duration,
    last: HashMap<String, Last>,
}

impl CycleLog {
    /// Repeats of one error are logged at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self { every, last: HashMap::new() }
    }

    /// A failed cycle of `key`; `message` tells repeats apart (give a fingerprint, not a text with ids in it).
    pub fn error(&mut self, key: &str, message: &str) -> Verdict {
        let now = Instant::now();
        match self.last.get_mut(key) {
            Some(l) if l.message == message && now.duration_since(l.logged_at) < self.every => {
                l.held += 1;
                l.failures += 1;
                Verdict::Quiet
            }
            Some(l) => {
                let repeats = l.held;
                l.message = message.to_owned();
                l.logged_at = now;
                l.held = 0;
                l.failures += 1;
                Verdict::Log { repeats }
            }
            None => {
                let last = Last { message: message.to_owned(), logged_at: now, held: 0, failures: 1 };
                self.last.insert(key.to_owned(), last);
                Verdict::Log { repeats: 0 }
            }
        }
    }

    /// A successful cycle of `key`: how many cycles in a row had failed before it, if any.
    pub fn success(&mut self, key: &str) -> Option<u64> {
        self.last.remove(key).map(|l| l.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_logged_again_after_the_quiet_period_with_its_count() {
        let mut log = CycleLog::new(Duration::from_millis(30));
        assert_eq!(log.error("w", "e"), Verdict::Log { repeats: 0 });
        for _ in 0..5 {
            assert_eq!(log.error("w", "e"), Verdict::Quiet);
        }
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(log.error("w", "e"), Verdict::Log { repeats: 5 });
        // Keys are independent.
        assert_eq!(log.error("other", "e"), Verdict::Log { repeats: 0 });
        assert_eq!(log.success("w"), Some(7));
    }
}
