//! Why the policy decided as it did, in typed parts ([`Why`]), put into words in one place (its `Display`) and only
//! where a reason is shown: a log line, `status`, a test. The simulator makes a million decisions a day and shows
//! none of them, so it never pays for the words.

use std::fmt::{self, Display, Formatter};
use std::time::Duration;

use super::adaptive::MIN_GAPS;
use super::lag::IDLE_BEATS;

/// A decision with its typed reason, before it is put in words ([`Verdict::decision`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verdict {
    /// The current quantity.
    pub from: u32,
    /// The quantity to run.
    pub to: u32,
    /// What the demand rules want, clamped to the bounds (before delays and busy-safety).
    pub desired: u32,
    /// Why.
    pub why: Why,
}

impl Verdict {
    /// The decision with its reason in words.
    pub fn decision(&self) -> super::Decision {
        super::Decision::new(self.from, self.to, self.desired, self.to_string())
    }
}

/// The parts of a reason: the reading, what each rule wanted, the bounds, and the outcome.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Why {
    /// Jobs ready.
    pub ready: u64,
    /// Jobs running.
    pub running: u64,
    /// The oldest ready job's age.
    pub oldest: Option<Duration>,
    /// The schedule window that sets the bounds: its name and its `[min, max]`.
    pub window: Option<(String, u32, u32)>,
    /// What each configured demand rule wanted: its label and its workers.
    pub rules: Vec<(&'static str, u32)>,
    /// What the adaptive policy's drain rule wanted, if it runs.
    pub drain: Option<Drain>,
    /// A pre-warm for load that recurs.
    pub prewarm: Option<Prewarm>,
    /// The workers wanted, all rules together.
    pub want: u32,
    /// The bounds the want was clamped to, and the result, where clamping changed it.
    pub clamped: Option<(u32, u32, u32)>,
    /// The seed gem's veto: a demand above the maximum blocks a scale-up.
    pub vetoed: bool,
    /// The adaptive keep-alive in force, reckoned for a scale-down and a hold against one (`None`: the configured
    /// down delay, or no scale-down in view).
    pub keep_alive: Option<KeepAlive>,
    /// Quiet dynos are no capacity: this many are kept.
    pub quiet_keep: Option<u32>,
    /// A busy dyno (or one not yet seen idle on enough heartbeats) sets the floor of a scale-down.
    pub busy_host: Option<String>,
    /// What the decision does.
    pub outcome: Outcome,
}

/// The adaptive drain rule's figures ([`super::Adaptive`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Drain {
    /// Workers wanted.
    pub workers: u32,
    /// Threads wanted.
    pub threads: f64,
    /// Threads one worker runs.
    pub per_worker: f64,
    /// Where the threads come from.
    pub basis: DrainBasis,
}

/// What the drain rule's threads were computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum DrainBasis {
    /// Nothing ready or running.
    Idle,
    /// The flow of work plus the backlog cleared within the drain target.
    Backlog {
        /// Jobs ready.
        ready: u64,
        /// The learned job duration, seconds.
        job_secs: f64,
        /// The drain target, seconds.
        target: f64,
        /// Jobs arriving per second.
        arrivals: f64,
    },
    /// Nothing ready: what runs.
    Running {
        /// Jobs running.
        running: u64,
    },
    /// The job duration is not learned yet: every job counts as a thread.
    Unlearned {
        /// Jobs ready.
        ready: u64,
        /// Jobs running.
        running: u64,
    },
}

/// The adaptive keep-alive and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum KeepAlive {
    /// Learned from the dips of a partial decrease.
    Dips {
        /// Seconds.
        secs: f64,
        /// Dips seen.
        dips: f64,
        /// What a worker added back costs, seconds.
        again: f64,
    },
    /// The configured one, until enough dips are seen.
    DipsUnseen {
        /// Seconds.
        secs: f64,
    },
    /// Learned from the idle gaps.
    Gaps {
        /// Seconds.
        secs: f64,
        /// Idle gaps seen.
        gaps: f64,
        /// What a cold start costs, seconds.
        cold: f64,
    },
    /// From the idle gaps seen and the arrival rate.
    GapsAndArrivals {
        /// Seconds.
        secs: f64,
        /// Idle gaps seen.
        gaps: f64,
        /// Jobs arriving per second.
        arrivals: f64,
        /// What a cold start costs, seconds.
        cold: f64,
    },
    /// The configured one, until arrivals or enough idle gaps are seen.
    GapsUnseen {
        /// Seconds.
        secs: f64,
    },
}

/// A pre-warm for load that rose at the same time in earlier periods.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Prewarm {
    /// Workers started ahead of the load.
    pub level: u32,
    /// The slot: "minute of the hour" or "five minutes of the day".
    pub slot: &'static str,
    /// Periods of the last four in which load rose there.
    pub seen: usize,
    /// The level before the rise.
    pub before: u32,
    /// Slots a period that reach the level by chance.
    pub by_chance: f64,
    /// Dyno-seconds paid if the load does not come.
    pub at_most: f64,
    /// Pre-warms missed so far.
    pub misses: u32,
    /// Dyno-seconds they cost.
    pub wasted: f64,
}

/// What a decision does, and why it holds where it holds.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Outcome {
    /// Holds at the quantity wanted.
    #[default]
    Steady,
    /// Scales up past the quiet dynos, which take no jobs.
    UpPastQuiet {
        /// Quiet dynos.
        quiet: u32,
    },
    /// Scales up.
    Up,
    /// Holds: part of the queue could not be read.
    Unreadable(Vec<String>),
    /// Holds: the idle mode scales down only when nothing is ready or running.
    NotIdle,
    /// Holds: the demand has been lower for `waited` of the down delay (or keep-alive).
    Delay {
        /// How long the demand has been lower.
        waited: Duration,
        /// The delay in force.
        delay: Duration,
    },
    /// Holds: jobs run and the source cannot name their dynos.
    Unplaced {
        /// Jobs running.
        running: u64,
    },
    /// Holds: the busy dynos (or the capacity the quiet ones cannot give) keep every dyno.
    Kept,
    /// Scales down.
    Down,
    /// Scales down one dyno through a busy victim (load spread over every dyno, [`super::spread`]).
    DownThroughBusy(super::spread::ThroughBusy),
}

impl Why {
    /// The reading, the rules' wants and the bounds: the reason up to its outcome.
    fn head(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} ready, {} running", self.ready, self.running)?;
        if let Some(age) = self.oldest {
            write!(f, ", oldest {:.1}s", age.as_secs_f64())?;
        }
        if let Some((name, min, max)) = &self.window {
            write!(f, "; schedule {name:?} applies: [{min}, {max}]")?;
        }
        write!(f, "; want {} (", self.want)?;
        let mut sep = "";
        for (label, d) in &self.rules {
            write!(f, "{sep}{label} {d}")?;
            sep = ", ";
        }
        if let Some(d) = &self.drain {
            write!(f, "{sep}{d}")?;
            sep = ", ";
        }
        if let Some(p) = &self.prewarm {
            write!(f, "{sep}{p}")?;
        }
        f.write_str(")")?;
        if let Some((min, max, desired)) = self.clamped {
            write!(f, ", clamped to [{min}, {max}] = {desired}")?;
        }
        if self.vetoed {
            f.write_str("; seed veto: demand above max blocks scale-up")?;
        }
        Ok(())
    }
}

impl Display for Drain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (w, t, per) = (self.workers, self.threads, self.per_worker);
        match self.basis {
            DrainBasis::Idle => return f.write_str("drain 0 (idle)"),
            DrainBasis::Backlog { ready, job_secs: d, target, arrivals } => write!(
                f,
                "drain {w} = {ready} ready × {d:.1}s per job / {target:.0}s drain target + flow {arrivals:.2}/s × {d:.1}s"
            )?,
            DrainBasis::Running { running } => write!(f, "drain {w} = {running} running")?,
            DrainBasis::Unlearned { ready, running } => {
                write!(f, "drain {w} = {ready} ready + {running} running (duration not learned yet)")?;
            }
        }
        write!(f, " = {t:.1} threads ÷ {per:.0} per worker")
    }
}

impl Display for KeepAlive {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match *self {
            KeepAlive::Dips { secs, dips, again } => {
                write!(f, "keep-alive {secs:.0}s learned from {dips:.0} dips (a worker added back costs {again:.0}s)")
            }
            KeepAlive::DipsUnseen { secs } => {
                write!(f, "keep-alive {secs:.0}s (the configured one until {MIN_GAPS:.0} dips are seen)")
            }
            KeepAlive::Gaps { secs, gaps, cold } => {
                write!(f, "keep-alive {secs:.0}s learned from {gaps:.0} idle gaps (a cold start costs {cold:.0}s)")
            }
            KeepAlive::GapsAndArrivals { secs, gaps, arrivals, cold } => write!(
                f,
                "keep-alive {secs:.0}s from {gaps:.0} idle gaps and the gaps of {arrivals:.3} arrivals/s (a cold start \
                 costs {cold:.0}s)"
            ),
            KeepAlive::GapsUnseen { secs } => write!(
                f,
                "keep-alive {secs:.0}s (the configured one until arrivals or {MIN_GAPS:.0} idle gaps are seen)"
            ),
        }
    }
}

impl Display for Prewarm {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pre-warm {} for load that rose at this {} in {} of the last 4 periods (from {}; by chance in {:.2} slots \
             a period); at most {:.0} dyno-s if it does not come",
            self.level, self.slot, self.seen, self.before, self.by_chance, self.at_most
        )?;
        if self.misses > 0 {
            write!(f, "; {} pre-warm(s) missed so far, {:.0} dyno-s", self.misses, self.wasted)?;
        }
        Ok(())
    }
}

impl Display for Verdict {
    /// The whole reason: the parts ([`Why`]), then what the decision does.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let w = &self.why;
        let (from, to) = (self.from, self.to);
        w.head(f)?;
        match &w.outcome {
            Outcome::UpPastQuiet { quiet } => {
                return write!(f, "; {quiet} quiet dyno(s) take no jobs: scale up {from} -> {to}");
            }
            Outcome::Up => return write!(f, "; scale up {from} -> {to}"),
            Outcome::Steady => return write!(f, "; hold at {from}"),
            Outcome::Unreadable(parts) => {
                return write!(f, "; hold at {from}: part of the queue could not be read ({})", parts.join("; "));
            }
            Outcome::NotIdle => {
                return write!(f, "; hold at {from}: idle mode scales down only when nothing is ready or running");
            }
            Outcome::Delay { waited, delay } => {
                let (waited, delay) = (waited.as_secs_f64(), delay.as_secs_f64());
                write!(f, "; hold at {from}: demand lower for {waited:.1}s of the {delay:.1}s ")?;
                return match w.keep_alive {
                    Some(k) => write!(f, "{k}"),
                    None => f.write_str("down delay"),
                };
            }
            Outcome::Unplaced { .. } | Outcome::Kept | Outcome::Down | Outcome::DownThroughBusy(_) => {}
        }
        if let Some(keep) = w.quiet_keep {
            write!(f, "; quiet dynos are no capacity: keep {keep}")?;
        }
        if let Some(host) = &w.busy_host {
            write!(f, "; dyno {host} is busy (or not yet seen idle on {IDLE_BEATS} heartbeats)")?;
        }
        match &w.outcome {
            Outcome::Unplaced { running } => {
                write!(f, "; hold at {from}: {running} jobs running and the source cannot name their dynos")
            }
            Outcome::Kept => write!(f, "; hold at {from}"),
            Outcome::DownThroughBusy(t) => write!(
                f,
                "; but every dyno has stayed busy {:.0}s past the delay, with jobs of {:.1}s and nothing waiting: \
                 quiet it and scale down {from} -> {to} once its jobs finish ({} dyno(s) kept over the demand for \
                 the arrivals' fluctuation)",
                t.held.as_secs_f64(),
                t.job_secs,
                t.spare
            ),
            _ => {
                write!(f, "; scale down {from} -> {to}")?;
                match w.keep_alive {
                    Some(k) => write!(f, " after the {k}"),
                    None => Ok(()),
                }
            }
        }
    }
}
