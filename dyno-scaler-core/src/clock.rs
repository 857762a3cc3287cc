//! Time as every rule reads it: the system clock in production, a manual clock in tests and the simulator.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to.
///
/// ```
/// use dyno_scaler_core::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::at_secs(1_000);
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.secs(), 1_005.0);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock reading `t`.
    pub fn new(t: SystemTime) -> Self {
        Self { now: Mutex::new(t) }
    }

    /// A clock reading `secs` seconds after the Unix epoch.
    pub fn at_secs(secs: u64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now += d;
    }

    /// Sets the clock.
    pub fn set(&self, t: SystemTime) {
        *self.now.lock().expect("clock lock") = t;
    }

    /// Seconds since the Unix epoch, as a float.
    pub fn secs(&self) -> f64 {
        epoch_secs(self.now())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().expect("clock lock")
    }
}

/// Seconds since the Unix epoch (negative before it).
pub fn epoch_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}
