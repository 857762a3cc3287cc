//! The adaptive policy's rules, built on what it learned ([`Learned`]), each explaining itself with its figures:
//!
//! - **drain**: enough threads for the flow of work (arrivals × duration, or what runs) plus the backlog cleared
//!   within the drain target at the measured job duration, over the threads of a worker: a 5,000-job backlog
//!   uses every allowed dyno;
//! - **keep-alive**: after the demand falls, keep the capacity for the window that minimises the expected cost of
//!   the idle gaps seen (ski rental: a cold start costs the billed boot plus the wait it causes), or drop at once
//!   when history says the next job is far off;
//! - **pre-warm**: where load rose at the same minute in three of the last four hours (or the same five minutes
//!   of three of the last four days), start its workers one drain target (about a boot) before it is due.

use std::time::Duration;

use serde::Serialize;

use super::learn::Learned;
use super::why::{Drain, DrainBasis, KeepAlive, Prewarm};

/// Settings of the adaptive policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adaptive {
    /// Clear a backlog within this long (default 30 s, about one dyno boot). Also the boot time the keep-alive
    /// and the pre-warm reckon with.
    #[serde(serialize_with = "crate::serde_secs::duration")]
    pub drain_target: Duration,
    /// Start workers ahead of load that recurs (default on).
    pub prewarm: bool,
    /// Threads one worker runs, where no reading of the workers says ([`threads`](super::threads)); `None`: the
    /// job system's default as the source states it, else 5.
    pub worker_threads: Option<u32>,
    /// Keep what was learned in the source's own store across restarts (default on).
    pub remember: bool,
}

impl Default for Adaptive {
    fn default() -> Self {
        Self { drain_target: Duration::from_secs(30), prewarm: true, worker_threads: None, remember: true }
    }
}

/// Idle gaps to see before the learned keep-alive replaces the configured one.
pub const MIN_GAPS: f64 = 8.0;
/// The longest keep-alive learned, seconds.
pub const KEEP_ALIVE_CAP: f64 = 1200.0;

impl Adaptive {
    fn target(&self) -> f64 {
        self.drain_target.as_secs_f64().max(1.0)
    }

    /// Workers wanted for `ready` waiting and `running` jobs, and why.
    /// `source_threads`: the job system's default threads per worker, as the source states it.
    pub(super) fn demand(&self, l: &Learned, source_threads: Option<u32>, ready: u64, running: u64) -> Drain {
        if ready == 0 && running == 0 {
            return Drain { workers: 0, threads: 0.0, per_worker: 0.0, basis: DrainBasis::Idle };
        }
        let per = super::threads::WorkerThreads::resolve(l.threads, self.worker_threads, source_threads).per_worker;
        let target = self.target();
        let (threads, basis) = match l.job_secs() {
            Some(d) if ready > 0 => {
                // The flow of work (Little: arrivals × duration) plus the backlog cleared within the target. What
                // runs now is not added: it is bounded by the capacity there is, not by what is needed.
                let flow = l.arrivals * d;
                let backlog = ready as f64 * (d / target).min(1.0);
                (flow + backlog, DrainBasis::Backlog { ready, job_secs: d, target, arrivals: l.arrivals })
            }
            Some(_) => (running as f64, DrainBasis::Running { running }),
            None => ((ready + running) as f64, DrainBasis::Unlearned { ready, running }),
        };
        let workers = (threads / per).ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
        Drain { workers, threads, per_worker: per, basis }
    }

    /// How long lower demand must last before scaling down, and why: for the whole queue going idle, from the
    /// idle gaps; for a partial decrease, from the dips (how long demand stayed below a level before it came
    /// back).
    pub(super) fn keep_alive(&self, l: &Learned, configured: Duration, idle: bool) -> (Duration, KeepAlive) {
        // A cold start from idle costs the billed boot and every job's wait through it; a worker added back to
        // others costs its boot, while the others keep taking the jobs.
        let cold = 2.0 * self.target();
        let conf = configured.as_secs_f64();
        if !idle {
            let again = self.target();
            return match l.dip_keep_alive(again, KEEP_ALIVE_CAP, MIN_GAPS) {
                Some(w) => (Duration::from_secs_f64(w), KeepAlive::Dips { secs: w, dips: l.dip_count(), again }),
                None => (configured, KeepAlive::DipsUnseen { secs: conf }),
            };
        }
        match l.keep_alive(cold, KEEP_ALIVE_CAP, MIN_GAPS) {
            Some(w) if l.gap_count() >= MIN_GAPS => {
                (Duration::from_secs_f64(w), KeepAlive::Gaps { secs: w, gaps: l.gap_count(), cold })
            }
            Some(w) => (
                Duration::from_secs_f64(w),
                KeepAlive::GapsAndArrivals { secs: w, gaps: l.gap_count(), arrivals: l.arrivals, cold },
            ),
            None => (configured, KeepAlive::GapsUnseen { secs: conf }),
        }
    }

    /// Workers to have ready now for load that recurs one drain target from `now`, and why.
    pub(super) fn prewarm(&self, l: &Learned, now: f64, demand: u32) -> Option<Prewarm> {
        if !self.prewarm {
            return None;
        }
        let due = (now + self.target()).max(0.0) as u64;
        let mut out: Option<Prewarm> = None;
        for (memory, slot) in [(&l.hourly, "minute of the hour"), (&l.daily, "five minutes of the day")] {
            // The load of that slot already came: the keep-alive looks after it now.
            if memory.served >= memory.slot_start(due) {
                continue;
            }
            let r = memory.at(due);
            if r.level <= r.before || r.level <= demand || out.as_ref().is_some_and(|o| r.level <= o.level) {
                continue;
            }
            // Counted only for a slot that would be pre-warmed: it reads every slot of four periods.
            let by_chance = memory.by_chance(due, r.level);
            if by_chance < 0.5 {
                out = Some(Prewarm {
                    level: r.level,
                    slot,
                    seen: r.seen,
                    before: r.before,
                    by_chance,
                    at_most: f64::from(r.level) * (self.target() + memory.slot as f64),
                    misses: l.prewarm_misses,
                    wasted: l.prewarm_wasted,
                });
            }
        }
        out
    }
}

/// Pre-warm bookkeeping after a decision: a pre-warm begins, is followed by the load it warmed for (a hit: at
/// least half its workers wanted, before any pre-warm), or ends without it (a miss, whose dyno-seconds are counted
/// as the extra cost paid).
pub(super) fn account(l: &mut Learned, now: f64, warming: Option<u32>, demand: u32) {
    match (l.prewarm, warming) {
        (None, Some(w)) => l.prewarm = Some((now, now, w)),
        (Some((_, _, w)), _) if demand >= w.div_ceil(2) => {
            l.prewarm_hits = l.prewarm_hits.saturating_add(1);
            l.prewarm = None;
        }
        (Some((start, _, w)), None) => {
            l.prewarm_misses = l.prewarm_misses.saturating_add(1);
            l.prewarm_wasted += f64::from(w) * (now - start).max(0.0);
            l.prewarm = None;
        }
        (Some((start, _, w)), Some(_)) => l.prewarm = Some((start, now, w)),
        (None, None) => {}
    }
}
