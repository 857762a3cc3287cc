//! Load spread over every dyno. A job system hands each job to whichever thread waits for one (Sidekiq's fetch:
//! the thread blocked longest), so a steady stream of short jobs keeps every dyno busy at every heartbeat, and a
//! scale-down that waits for an idle victim can wait for ever: a cold start's overshoot (every waiting job counted
//! as a thread before any duration is known) is then paid for as long as the stream lasts. When a shrink has been
//! held by a busy victim for long after its delay, jobs are short, nothing waits, no dyno is quiet already, and
//! the dynos left cover the demand plus the arrivals' fluctuation over a boot, one busy victim goes: quieted, it
//! takes no new job and stops once it has finished those it runs ([`crate::drain`]).
//!
//! A shrink held only briefly is the tail of a burst, whose victims go idle on their own: left to the busy floor.

use std::time::{Duration, SystemTime};

use super::learn::Learned;
use super::threads::WorkerThreads;
use super::why::{Outcome, Verdict};
use super::{Policy, PolicyInput};

/// A shrink must have been held by busy victims for this many job durations (and at least a drain target)
/// after its delay before a busy victim is quieted.
pub const HELD_JOBS: f64 = 10.0;

/// Why a busy victim may be quieted: the figures the reason names.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughBusy {
    /// How long busy dynos have held every scale-down the demand wanted (through its delays).
    pub held: Duration,
    /// The learned job duration, seconds.
    pub job_secs: f64,
    /// Dynos kept above the demand for the arrivals' fluctuation over a drain target.
    pub spare: u32,
}

impl Policy {
    /// One dyno fewer through a busy victim, when the rule above allows it: the quantity and why. `peak`: the
    /// demand's peak over the lower-demand window; `held`: how long busy dynos have held every scale-down.
    pub(super) fn through_busy(
        &self,
        input: &PolicyInput<'_>,
        learned: &Learned,
        (ready, peak, held): (u64, u32, Duration),
    ) -> Option<(u32, ThroughBusy)> {
        let a = self.config.adaptive.as_ref().filter(|_| self.config.quiet_victims)?;
        let target = a.drain_target.as_secs_f64().max(1.0);
        let job_secs = learned.job_secs().filter(|d| *d <= target)?;
        let current = input.current;
        if ready > 0 || current == 0 || held.as_secs_f64() < (HELD_JOBS * job_secs).max(target) {
            return None;
        }
        // Every dyno runs a job (the load is spread, not a burst's tail on a few), and none is quiet already.
        if self.quiet_dynos(input) > 0 || self.busy_dynos(input) < current {
            return None;
        }
        let per = WorkerThreads::resolve(learned.threads, a.worker_threads, input.source_threads).per_worker;
        // Arrivals over a boot are Poisson: their standard deviation in threads, over a dyno's threads.
        let spare = ((learned.arrivals * target).sqrt() / per).ceil().max(1.0) as u32;
        let to = current - 1;
        (to >= peak.saturating_add(spare)).then_some((to, ThroughBusy { held, job_secs, spare }))
    }
}

/// Since when busy dynos have held every scale-down, after `verdict`: a hold by the busy floor starts or
/// continues it, a delay (the lower demand timing again) keeps it, anything else ends it.
pub(super) fn held_since(since: Option<SystemTime>, verdict: &Verdict, now: SystemTime) -> Option<SystemTime> {
    match verdict.why.outcome {
        Outcome::Kept if verdict.why.busy_host.is_some() => Some(since.unwrap_or(now)),
        Outcome::Delay { .. } => since,
        _ => None,
    }
}
